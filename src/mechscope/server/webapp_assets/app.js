/* mechscope web app: feature browser, steering playground, graph and circuit viewers over this server's API.
   Hash routes: #/features, #/latent/N, #/steer, #/graphs, #/graph/ID, #/circuits, #/circuit/ID. Every string
   from the server is inserted as text, never as HTML. el, fmt, pct, card and renderLatent come from dashboard.js. */
"use strict";

const app = {
  info: null, token: sessionStorage.getItem("mechscope-token") || "",
  browse: {q: "", order_by: "rank", status: "", min_density: "", max_density: "", min_score: ""},
  steer: {prompt: "", model: null, max_tokens: 32, temperature: 0, edits: [],
          monitor: {kind: "none", watch: "generated"}},
};
const PAGE_SIZE = 100;

/* ----- plumbing -------------------------------------------------------------------------------- */

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function request(path, options = {}) {
  const headers = Object.assign({}, options.headers);
  if (app.token) headers.Authorization = `Bearer ${app.token}`;
  const response = await fetch(path, Object.assign({}, options, {headers}));
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try { message = (await response.json()).error.message; } catch (_) { /* not an error object */ }
    throw new ApiError(response.status, message);
  }
  return response;
}

async function getJson(path) { return (await request(path)).json(); }

function query(params) {
  return new URLSearchParams(Object.entries(params).filter(([, v]) => v !== "" && v !== null)).toString();
}

function show(...children) { document.getElementById("view").replaceChildren(...children); }
function panel(...children) { return el("div", {cls: "panel"}, children); }
function errorBox(err) { return el("div", {cls: "error", text: err.message}); }

function button(text, onClick, cls) {
  const node = el("button", {type: "button", text, cls: cls || ""});
  node.addEventListener("click", onClick);
  return node;
}

function select(options, value, onChange) {  // options: [value, text] pairs or plain values
  const node = el("select", {}, options.map((o) => {
    const [v, text] = Array.isArray(o) ? o : [o, o];
    const option = el("option", {value: String(v), text});
    if (String(v) === String(value)) option.selected = true;
    return option;
  }));
  if (onChange) node.addEventListener("change", () => onChange(node.value));
  return node;
}

function field(text, input) { return el("label", {}, [document.createTextNode(text), input]); }

function input(attrs, value, onInput) {
  const node = el("input", attrs);
  node.value = value;
  if (onInput) node.addEventListener("input", () => onInput(node.value));
  return node;
}

/* ----- feature browser ------------------------------------------------------------------------- */

async function featuresPage() {
  if (!app.info.catalog) return show(panel(el("p", {cls: "note", text: "This server has no feature catalogue; " +
                                                    "start it with --catalog DIR."})));
  const b = app.browse;
  const body = el("tbody");
  const count = el("span", {cls: "note"});
  const problem = el("div");
  const more = button("show more", () => load(true), "more");
  let offset = 0, shown = 0, serial = 0, timer = null;
  async function load(append) {
    offset = append ? offset + PAGE_SIZE : 0;
    const mine = ++serial;
    const percent = (v) => (v === "" ? "" : Number(v) / 100);
    try {
      const page = await getJson(`/v1/features?${query({q: b.q.trim(), order_by: b.order_by, status: b.status,
        min_density: percent(b.min_density), max_density: percent(b.max_density), min_score: b.min_score,
        limit: PAGE_SIZE, offset})}`);
      if (mine !== serial) return;
      const rows = page.data.map((r) => el("tr", {}, [
        el("td", {cls: "num"}, [el("a", {href: `#/latent/${r.latent}`, text: String(r.latent)})]),
        el("td", {cls: r.labelled ? "" : "note", text: r.text + (r.status === "ok" ? "" : ` (${r.status})`)}),
        el("td", {cls: "num", text: pct(r.density)}), el("td", {cls: "num", text: fmt(r.max_activation)}),
        el("td", {cls: "num", text: String(r.count)}), el("td", {cls: "num", text: fmt(r.best_score)})]));
      if (append) body.append(...rows); else body.replaceChildren(...rows);
      shown = (append ? shown : 0) + rows.length;
      count.textContent = `${shown}${page.has_more ? "+" : ""} of ${page.latents} latents`;
      more.style.display = page.has_more ? "" : "none";
      problem.replaceChildren();
    } catch (err) {
      problem.replaceChildren(errorBox(err));
    }
  }
  const later = (key) => (value) => {  // typing: reload once the keys rest
    b[key] = value;
    clearTimeout(timer);
    timer = setTimeout(() => load(false), 200);
  };
  const now = (key) => (value) => { b[key] = value; load(false); };
  const number = (key, step) => input({type: "number", step, min: "0"}, b[key], later(key));
  const c = app.info.catalog;
  show(panel(
    el("h1", {text: "Feature catalogue"}),
    el("p", {cls: "note", text: `${c.model || ""} · ${c.hook} · ${c.latents} latents · ${c.tokens} tokens mined`}),
    el("div", {cls: "controls"}, [
      field("search", input({type: "search", placeholder: "labels and tokens"}, b.q, later("q"))),
      field("order", select([["rank", "relevance / latent"], "latent", "density", "max_activation", "count",
                             "score"], b.order_by, now("order_by"))),
      field("status", select([["", "any"], "ok", "rare", "dead"], b.status, now("status"))),
      field("density ≥ %", number("min_density", "any")), field("density ≤ %", number("max_density", "any")),
      field("label score ≥", number("min_score", "any")), count]),
    problem,
    el("table", {cls: "index"}, [el("thead", {}, [el("tr", {}, ["latent", "label / top tokens", "density",
      "max act", "count", "score"].map((t) => el("th", {text: t})))]), body]),
    more));
  await load(false);
}

function catalogueDictionary() {  // the loaded dictionary the catalogue describes (same hook), else the first
  const all = app.info.dictionaries;
  const hook = app.info.catalog && app.info.catalog.hook;
  return all.find((d) => d.hook === hook) || all[0] || null;
}

async function latentPage(index) {
  const data = await getJson(`/v1/features/${index}?examples=10`);
  const container = el("div", {id: "latent"});
  const dictionary = catalogueDictionary();
  const steer = () => {
    const s = app.steer;
    s.edits.push({kind: "latent", dictionary: dictionary.name, index: Number(index), vector: "", op: "add",
                  value: 8, where: "all"});
    if (s.monitor.kind === "none") Object.assign(s.monitor, {kind: "latent", dictionary: dictionary.name,
                                                             index: Number(index)});
    location.hash = "#/steer";
  };
  show(el("div", {cls: "toolbar"}, [dictionary ? button("steer with this latent", steer, "primary") :
                                    el("span", {cls: "note", text: "no dictionary loaded to steer with"})]),
       container);
  renderLatent(data.dashboard, {latent: (j) => `#/latent/${j}`, index: "#/features"}, container);
}

/* ----- steering playground --------------------------------------------------------------------- */

function targetOf(entry) {  // a request's target object for a latent or a vector row
  if (entry.kind === "vector") return {vector: entry.vector};
  const index = Number(entry.index);
  return {latent: app.info.dictionaries.length === 1 ? index : {dictionary: entry.dictionary, index}};
}

function targetInputs(entry, redraw) {
  const info = app.info;
  const kinds = [info.dictionaries.length ? "latent" : null, info.vectors.length ? "vector" : null].filter(Boolean);
  const kind = select(kinds, entry.kind, (v) => {
    entry.kind = v;
    entry.dictionary = entry.dictionary || (catalogueDictionary() || {}).name;
    entry.vector = entry.vector || (info.vectors[0] || {}).name;
    redraw();
  });
  if (entry.kind === "vector") {
    return [kind, select(info.vectors.map((v) => [v.name, `${v.name} (layers ${v.layers.join(",")})`]), entry.vector,
                         (v) => { entry.vector = v; })];
  }
  const parts = [kind];
  if (info.dictionaries.length > 1) parts.push(select(info.dictionaries.map((d) => d.name), entry.dictionary,
                                                      (v) => { entry.dictionary = v; }));
  parts.push(input({type: "number", min: "0", step: "1", cls: "index", title: "latent index"}, entry.index,
                   (v) => { entry.index = v; }));
  return parts;
}

function editsTable(redraw) {
  const s = app.steer, info = app.info;
  return el("table", {cls: "edits"}, s.edits.map((edit, i) => el("tr", {}, [
    ...targetInputs(edit, redraw).map((node) => el("td", {}, [node])),
    el("td", {}, [select(info.ops, edit.op, (v) => { edit.op = v; })]),
    el("td", {}, [input({type: "number", step: "any", cls: "value", title: "coefficient"}, edit.value,
                        (v) => { edit.value = v; })]),
    el("td", {}, [select(info.scopes, edit.where, (v) => { edit.where = v; })]),
    el("td", {}, [button("remove", () => { s.edits.splice(i, 1); redraw(); })])])));
}

function addEdit(kind) {
  app.steer.edits.push({kind, dictionary: (catalogueDictionary() || {}).name, index: 0,
                        vector: (app.info.vectors[0] || {}).name, op: "add", value: 8, where: "all"});
}

function monitorInputs(redraw) {
  const m = app.steer.monitor, info = app.info;
  const kinds = [["none", "no monitor"], info.dictionaries.length ? "latent" : null,
                 info.vectors.length ? "vector" : null].filter(Boolean);
  const parts = [select(kinds, m.kind, (v) => {
    m.kind = v;
    m.dictionary = m.dictionary || (catalogueDictionary() || {}).name;
    m.vector = m.vector || (info.vectors[0] || {}).name;
    m.index = m.index || 0;
    redraw();
  })];
  if (m.kind !== "none") {
    parts.push(...targetInputs(m, redraw).slice(1));
    parts.push(select(info.watches, m.watch, (v) => { m.watch = v; }));
  }
  return parts;
}

async function streamChat(body, onText) {
  /* POST a streaming chat completion; onText(delta) per text chunk; resolves to the closing choice. */
  const response = await request("/v1/chat/completions", {method: "POST", headers: {"Content-Type": "application/json"},
                                                          body: JSON.stringify(Object.assign({stream: true}, body))});
  const reader = response.body.getReader(), decoder = new TextDecoder();
  let buffer = "", closing = null;
  for (;;) {
    const {done, value} = await reader.read();
    if (done) return closing;
    buffer += decoder.decode(value, {stream: true});
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      if (!event.startsWith("data: ") || event === "data: [DONE]") continue;
      for (const choice of JSON.parse(event.slice(6)).choices) {
        if (choice.delta && choice.delta.content) onText(choice.delta.content);
        if (choice.finish_reason) closing = choice;
      }
    }
  }
}

function scoreColour(value, peak) {
  if (value === null) return "transparent";
  const alpha = peak > 0 ? Math.min(1, Math.abs(value) / peak) : 0;
  return value >= 0 ? `rgba(242, 113, 28, ${0.08 + 0.92 * alpha})` : `rgba(9, 105, 218, ${0.08 + 0.92 * alpha})`;
}

function monitorStrip(monitor, peak) {
  const offset = monitor.prompt_scores.length;
  const alerts = new Set(monitor.alerts.map((a) => a.position - offset));
  const tokens = monitor.completion_tokens || [];
  return el("div", {}, [
    el("div", {cls: "strip"}, monitor.completion_scores.map((score, k) => {
      const unscored = score === null;  // the last token: generation stops before the model reads it
      const cell = el("span", {cls: alerts.has(k) ? "alert" : unscored ? "unscored" : "",
                               text: visible(tokens[k] || " "),
                               title: unscored ? `token ${k + 1}: not scored (never read by the model)`
                                 : `token ${k + 1}: ${fmt(score)}`});
      if (!unscored) cell.style.background = scoreColour(score, peak);
      return cell;
    })),
    el("div", {cls: "legend", text: `monitor: ${monitor.name} at ${monitor.hook}: orange +, blue −, ` +
      `full colour at ±${fmt(peak)}` + (monitor.threshold === null ? "" : `, threshold ${fmt(monitor.threshold)}`) +
      "; hatched: not scored"})]);
}

async function generate(sides, problem) {
  const s = app.steer;
  const m = s.monitor;
  const name = m.kind === "vector" ? m.vector : `latent ${m.index}`;
  const monitor = m.kind === "none" ? [] : [Object.assign(targetOf(m), {name, watch: m.watch})];
  const base = {messages: [{role: "user", content: s.prompt}], max_tokens: Number(s.max_tokens),
                temperature: Number(s.temperature), monitors: monitor};
  const runs = [["unsteered", app.info.model, []], ["steered", s.model, s.edits.map((e) => Object.assign(
    targetOf(e), {op: e.op, value: Number(e.value), where: e.where}))]];
  problem.replaceChildren();
  const outputs = runs.map(([title]) => {
    const text = el("div", {cls: "completion"}), strip = el("div");
    return {text, strip, box: card(title, [text, strip])};
  });
  sides.replaceChildren(...outputs.map((o) => o.box));
  try {
    const closings = await Promise.all(runs.map(([, model, steering], i) => streamChat(
      Object.assign({}, base, {model, steering}), (delta) => { outputs[i].text.textContent += delta; })));
    outputs.forEach((o, i) => o.box.appendChild(el("div", {cls: "note",
                                                           text: `finish: ${closings[i].finish_reason}`})));
    if (!monitor.length) return;
    const scores = closings.flatMap((c) => c.monitors[0].completion_scores).filter((v) => v !== null);
    const peak = Math.max(0, ...scores.map(Math.abs));  // one colour scale for both sides
    closings.forEach((c, i) => outputs[i].strip.replaceChildren(monitorStrip(c.monitors[0], peak)));
  } catch (err) {
    problem.replaceChildren(errorBox(err));
  }
}

function steerPage() {
  const s = app.steer, info = app.info;
  s.model = s.model || info.model;
  const edits = el("div"), monitor = el("div", {cls: "controls"}), sides = el("div", {cls: "sides"});
  const problem = el("div");
  const redraw = () => {
    edits.replaceChildren(editsTable(redraw));
    monitor.replaceChildren(el("strong", {text: "monitor"}), ...monitorInputs(redraw));
  };
  const adders = [info.dictionaries.length ? button("+ latent", () => { addEdit("latent"); redraw(); }) : null,
                  info.vectors.length ? button("+ vector", () => { addEdit("vector"); redraw(); }) : null];
  const prompt = el("textarea", {cls: "prompt", placeholder: "a user message"});
  prompt.value = s.prompt;
  prompt.addEventListener("input", () => { s.prompt = prompt.value; });
  redraw();
  show(panel(
    el("h1", {text: "Steering playground"}),
    el("p", {cls: "note", text: "The same prompt generated twice, unsteered and with the edits below, streamed " +
                                "side by side; a monitor colours each generated token by its score."}),
    prompt,
    el("div", {cls: "controls"}, [
      field("model / variant", select(info.models, s.model, (v) => { s.model = v; })),
      field("max tokens", input({type: "number", min: "1", step: "1"}, s.max_tokens, (v) => { s.max_tokens = v; })),
      field("temperature", input({type: "number", min: "0", max: "2", step: "0.1"}, s.temperature,
                                 (v) => { s.temperature = v; }))]),
    el("h2", {text: "Edits"}), edits, el("div", {cls: "controls"}, adders), monitor,
    el("div", {cls: "controls"}, [button("generate", () => generate(sides, problem), "primary generate")]),
    problem, sides));
}

/* ----- saved graphs and circuits --------------------------------------------------------------- */

function summaryText(item, skip) {
  return Object.entries(item).filter(([k, v]) => !skip.includes(k) && typeof v !== "object")
    .map(([k, v]) => `${k} ${typeof v === "number" ? fmt(v) : v}`).join(" · ");
}

async function listPage(collection, title, empty, columns) {
  const list = (await getJson(`/v1/${collection}`)).data;
  const single = collection.slice(0, -1);
  show(panel(el("h1", {text: title}), list.length ? el("table", {cls: "index"}, [
    el("thead", {}, [el("tr", {}, ["name", ...columns.map(([t]) => t)].map((t) => el("th", {text: t})))]),
    el("tbody", {}, list.map((item) => el("tr", {}, [
      el("td", {}, [el("a", {href: `#/${single}/${encodeURIComponent(item.id)}`, text: item.id})]),
      ...columns.map(([, value]) => el("td", {text: value(item)}))])))]) : el("p", {cls: "note", text: empty})));
}

function graphsPage() {
  return listPage("graphs", "Attribution graphs", "No saved graphs; start the server with --graphs DIR.",
                  [["summary", (g) => summaryText(g, ["id", "object", "viewer"])]]);
}

function circuitsPage() {
  return listPage("circuits", "Circuit results", "No saved circuit results; start the server with --circuits DIR.", [
    ["kind", (c) => c.kind], ["axes", (c) => `${c.axes.join(" × ")} (${c.shape.join(" × ")})`],
    ["clean / corrupted", (c) => `${fmt(c.clean)} / ${fmt(c.corrupted)}`],
    ["top entry", (c) => (c.top.length ? `${c.top[0].entry}: ${fmt(c.top[0].value)}` : "–")]]);
}

function viewerPage(collection, name, extra, above) {
  const path = `/${collection}/${encodeURIComponent(name)}`;
  show(panel(el("h1", {text: name}), el("p", {}, [el("a", {href: `#/${collection}`, text: `all ${collection}`}),
    document.createTextNode(" · "), el("a", {href: path, target: "_blank", text: "open alone"}), ...extra]),
  above || null, el("iframe", {cls: "viewer", src: path, title: `${collection} ${name}`})));
}

function graphPage(name) {
  viewerPage("graphs", name, [document.createTextNode(" · "),
    el("a", {href: `/v1/graphs/${encodeURIComponent(name)}`, target: "_blank", text: "Neuronpedia JSON"})]);
}

async function circuitPage(name) {
  const result = (await getJson("/v1/circuits")).data.find((item) => item.id === name);
  if (!result) throw new Error(`no circuit result named ${name}`);
  const entries = result.top.slice(0, 10).map((t) => `${t.entry}: ${fmt(t.value)}`).join(" · ");
  const scores = result.cpr == null ? "" : `; CPR ${fmt(result.cpr)}, CMD ${fmt(result.cmd)}`;
  viewerPage("circuits", name, [document.createTextNode(" · "),
    el("a", {href: `/v1/circuits/${encodeURIComponent(name)}`, target: "_blank", text: "JSON"})],
  el("p", {cls: "note", text: `${result.kind}${scores}; largest |value|: ${entries}`}));
}

/* ----- start ----------------------------------------------------------------------------------- */

const ROUTES = [[/^#\/latent\/(\d+)$/, latentPage, "features"], [/^#\/steer$/, steerPage, "steer"],
                [/^#\/graphs$/, graphsPage, "graphs"], [/^#\/graph\/(.+)$/, graphPage, "graphs"],
                [/^#\/circuits$/, circuitsPage, "circuits"], [/^#\/circuit\/(.+)$/, circuitPage, "circuits"],
                [/^/, featuresPage, "features"]];

async function route() {
  for (const [pattern, page, tab] of ROUTES) {
    const match = (location.hash || "#/features").match(pattern);
    if (!match) continue;
    document.querySelectorAll("nav.top a").forEach((a) => a.classList.toggle("on", a.dataset.tab === tab));
    try {
      await page(...match.slice(1).map(decodeURIComponent));
    } catch (err) {
      show(panel(errorBox(err)));
    }
    return;
  }
}

function tokenForm(err) {
  const box = input({type: "password", placeholder: "bearer token"}, "");
  show(panel(el("h1", {text: "This server needs a bearer token"}), errorBox(err), el("div", {cls: "controls"}, [
    box, button("use", () => {
      sessionStorage.setItem("mechscope-token", box.value);
      location.reload();
    }, "primary")])));
}

async function start() {
  try {
    app.info = await getJson("/v1/resources");
  } catch (err) {
    return err.status === 401 ? tokenForm(err) : show(panel(errorBox(err)));
  }
  const c = app.info.catalog;
  document.getElementById("served").textContent = `${app.info.model}` + (c ? ` · ${c.latents} latents` : "") +
    ` · ${app.info.graphs.length} graphs · ${app.info.circuits.length} circuit results`;
  window.addEventListener("hashchange", route);
  await route();
}

start();
