/* mechscope feature dashboards: renders the index (renderIndex) and latent pages (renderLatent) from inline
   data. No network, no dependencies; every string from the data is inserted as text, never as HTML. */
"use strict";

function el(tag, attrs, children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === "text") node.textContent = value;
    else if (key === "cls") node.className = value;
    else node.setAttribute(key, value);
  }
  for (const child of children || []) if (child != null) node.appendChild(child);
  return node;
}

function fmt(x) {
  if (x === null || x === undefined) return "–";
  if (x === 0) return "0";
  const a = Math.abs(x);
  return a >= 1e4 || a < 1e-3 ? x.toExponential(2) : Number(x.toPrecision(3)).toString();
}

function pct(x) { return x === null ? "–" : (100 * x).toPrecision(3) + "%"; }

function visible(token) { return token.replace(/\n/g, "\u21b5").replace(/\t/g, "\u21e5"); }

/* Byte-level BPE pieces carry their own spaces; WordPiece pieces do not ("##" continues a word). */
function spacer(tokens) {
  const bpe = tokens.some((t) => /^\s/.test(t));
  return bpe ? (t) => t : (t, i) => (t.startsWith("##") ? t.slice(2) : (i > 0 ? " " : "") + t);
}

function card(title, children) { return el("div", {cls: "card"}, [el("h2", {text: title}), ...children]); }

/* ----- latent page ----------------------------------------------------------------------------- */

function histogram(h) {
  const [lower, ratio, counts] = h;
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("class", "hist");
  svg.setAttribute("viewBox", `0 0 ${Math.max(counts.length, 1)} 100`);
  svg.setAttribute("preserveAspectRatio", "none");
  const top = Math.max(1, ...counts);
  counts.forEach((c, i) => {
    const bar = document.createElementNS(ns, "rect");
    const height = 100 * c / top;
    bar.setAttribute("x", i + 0.08); bar.setAttribute("width", 0.84);
    bar.setAttribute("y", 100 - height); bar.setAttribute("height", height);
    const low = lower * Math.pow(ratio, i);
    const tip = document.createElementNS(ns, "title");
    tip.textContent = `${c} activations in [${fmt(low)}, ${fmt(low * ratio)})`;
    bar.appendChild(tip);
    svg.appendChild(bar);
  });
  const axis = el("div", {cls: "axis"}, [el("span", {text: fmt(lower)}),
    el("span", {text: "activation (log scale)"}), el("span", {text: fmt(lower * Math.pow(ratio, counts.length))})]);
  return el("div", {}, [svg, axis]);
}

function logitTable(rows, cls) {
  return el("table", {cls: "logits"}, rows.map(([tok, w]) => el("tr", {}, [
    el("td", {}, [el("span", {cls: "tok-pill", text: visible(tok)})]),
    el("td", {cls: "v " + cls, text: fmt(w)})])));
}

function contextRow(ctx, tokens, max, label, space) {
  const [ids, acts, focus, value, split] = ctx;
  const row = el("div", {cls: "ctx"}, [el("span", {cls: "meta", text: `${label} ${fmt(value)}`,
                                                  title: split === "te" ? "held-out (test) window" : "train window"})]);
  ids.forEach((id, i) => {
    const alpha = Math.max(0, Math.min(1, acts[i] / 100));
    const span = el("span", {cls: "t" + (i === focus ? " f" : ""), text: visible(space(tokens[id], i)),
                             title: `${fmt(acts[i] * max / 100)}`});
    if (alpha > 0) span.style.background = `rgba(242, 113, 28, ${0.12 + 0.88 * alpha})`;
    row.appendChild(span);
  });
  return row;
}

function neighbourList(rows, what, link) {
  if (!rows.length) return el("div", {cls: "note", text: "none"});
  return el("ul", {cls: "nb"}, rows.map(([j, v]) => el("li", {}, [
    el("a", {href: link(j), text: `#${j}`}), document.createTextNode(` ${what} ${fmt(v)}`)])));
}

function labels(list) {
  if (!list.length) return el("div", {cls: "note", text: "no labels yet (auto-interp writes them into the catalogue)"});
  return el("div", {}, list.map((l) => el("div", {cls: "label"}, [
    el("div", {cls: "text", text: l.t}),
    el("div", {cls: "by", text: `${l.x}${l.m ? " · " + l.m : ""}`}),
    el("div", {}, l.s.map(([scorer, v, lo, hi, base]) => el("span", {cls: "score",
      text: `${scorer} ${fmt(v)}${lo !== null ? ` [${fmt(lo)}, ${fmt(hi)}]` : ""}${base !== null ? ` vs ${fmt(base)}` : ""}`})))
  ])));
}

/* Links of the static bundle's latent pages; the web app passes its own (and its own container). */
const BUNDLE_LINKS = {latent: (j) => `${j}.html`, index: "../index.html"};

function renderLatent(d, links = BUNDLE_LINKS, app = document.getElementById("app")) {
  document.title = `latent ${d.i}`;
  const link = links.latent;
  app.appendChild(el("header", {}, [el("h1", {text: `Latent ${d.i}`}),
    el("span", {cls: "status-" + d.st, text: d.st === "ok" ? "" : d.st}),
    el("span", {cls: "note", text: d.lb.length ? d.lb[0].t : d.tt.join(" ")}),
    el("span", {cls: "nav"}, [el("a", {href: links.index, text: "all latents"}),
      d.i > 0 ? document.createTextNode(" · ") : null, d.i > 0 ? el("a", {href: link(d.i - 1), text: "prev"}) : null,
      d.i + 1 < d.L ? document.createTextNode(" · ") : null,
      d.i + 1 < d.L ? el("a", {href: link(d.i + 1), text: "next"}) : null])]));
  const stats = el("dl", {cls: "stats"}, []);
  for (const [k, v] of [["density", pct(d.d)], ["activations", String(d.n)], ["max", fmt(d.m)],
                        ["mean", fmt(d.mean)], ["quantile edges", d.qe.map(fmt).join(" ")]]) {
    stats.appendChild(el("dt", {text: k}));
    stats.appendChild(el("dd", {text: v}));
  }
  const left = el("div", {}, [
    card("Activation density", [stats]),
    card("Activation histogram", [d.n ? histogram(d.h) : el("div", {cls: "note", text: "never fired"})]),
    card("Top promoted tokens (logit weight)", [logitTable(d.pl, "up")]),
    card("Top suppressed tokens", [logitTable(d.nl, "down")]),
    card("Decoder neighbours (cosine)", [neighbourList(d.dn, "cos", link)]),
    card("Co-firing neighbours (Jaccard)", [neighbourList(d.cn, "J", link)]),
  ]);
  const space = spacer(d.tk);
  const top = el("div", {}, d.top.map((c, r) => contextRow(c, d.tk, d.m, `#${r + 1}`, space)));
  const bins = el("div", {});
  let current = null;
  for (const [bin, ...c] of d.q) {
    if (bin !== current) {
      bins.appendChild(el("div", {cls: "bin", text: `quantile bin ${bin + 1}/${d.qe.length - 1}: ` +
                                                    `${fmt(d.qe[bin])} – ${fmt(d.qe[bin + 1])}`}));
      current = bin;
    }
    bins.appendChild(contextRow(c, d.tk, d.m, "sample", space));
  }
  const right = el("div", {}, [
    card("Labels and scores", [labels(d.lb)]),
    card("Top activations", [d.top.length ? top : el("div", {cls: "note", text: "no activations"})]),
    card("Samples across the activation distribution", [d.q.length ? bins : el("div", {cls: "note", text: "none"})]),
  ]);
  app.appendChild(el("main", {}, [el("div", {cls: "grid"}, [left, right])]));
}

/* ----- index page ------------------------------------------------------------------------------ */

const COLUMNS = [  // [title, row index, numeric]
  ["latent", 0, true], ["label / top tokens", 5, false], ["density", 1, true], ["max act", 2, true],
  ["count", 3, true], ["score", 4, true]];

function renderIndex(data) {
  const app = document.getElementById("app");
  let sortBy = 1, ascending = false, shown = 200, filter = "";
  app.appendChild(el("header", {}, [el("h1", {text: "Feature catalogue"}),
    el("span", {cls: "note", text: `${data.title} · ${data.tokens.toLocaleString()} tokens mined`})]));
  const input = el("input", {type: "search", placeholder: "filter by label or token"});
  const count = el("span", {cls: "note"});
  const table = el("table", {cls: "index"});
  const more = el("button", {cls: "more", text: "show more"});
  app.appendChild(el("main", {}, [el("div", {cls: "controls"}, [input, count]), table, more]));
  const head = el("tr", {}, COLUMNS.map(([title, column], i) => {
    const th = el("th", {text: title, "data-column": String(column)});
    th.addEventListener("click", () => {
      ascending = sortBy === column ? !ascending : !COLUMNS[i][2];
      sortBy = column;
      draw();
    });
    return th;
  }));
  table.appendChild(el("thead", {}, [head]));
  const body = el("tbody");
  table.appendChild(body);
  function draw() {
    const needle = filter.toLowerCase();
    const rows = data.rows.filter((r) => !needle || r[5].toLowerCase().includes(needle) || String(r[0]) === needle);
    const sign = ascending ? 1 : -1;
    rows.sort((a, b) => {
      const x = a[sortBy], y = b[sortBy];
      if (x === y) return a[0] - b[0];
      if (x === null) return 1;
      if (y === null) return -1;
      return (x < y ? -1 : 1) * sign;
    });
    head.querySelectorAll("th").forEach((th) => {
      const on = Number(th.dataset.column) === sortBy;
      th.className = on ? "sorted" + (ascending ? " asc" : "") : "";
    });
    body.replaceChildren(...rows.slice(0, shown).map((r) => el("tr", {}, [
      el("td", {cls: "num"}, [el("a", {href: `latents/${r[0]}.html`, text: String(r[0])})]),
      el("td", {cls: r[6] ? "" : "note", text: r[5] + (r[7] === "ok" ? "" : ` (${r[7]})`)}),
      el("td", {cls: "num", text: pct(r[1])}), el("td", {cls: "num", text: fmt(r[2])}),
      el("td", {cls: "num", text: String(r[3])}), el("td", {cls: "num", text: fmt(r[4])})])));
    count.textContent = `${Math.min(shown, rows.length)} of ${rows.length} latents`;
    more.style.display = rows.length > shown ? "" : "none";
  }
  input.addEventListener("input", () => { filter = input.value; shown = 200; draw(); });
  more.addEventListener("click", () => { shown += 500; draw(); });
  draw();
}
