"""A self-contained HTML viewer for an attribution graph (Neuronpedia JSON inside; inline SVG and JS, no CDN).

Nodes sit at (prompt position, layer): tokens at the bottom, logits at the top. Edges are blue (+) or red (-)
and as wide as their |weight|. Click a node for its label and edges; shift-click several and "group" them into a
supernode (by hand); the automatic groups come preloaded, and "export" prints the supernodes in Neuronpedia's
qParams form for pasting back.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

from mechscope.data.atomic import atomic_file

_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>{title}</title><style>
body{{font:13px system-ui,sans-serif;margin:12px;display:flex;gap:16px}} #side{{width:300px;flex:none}}
svg text{{font-size:9px;text-anchor:middle;pointer-events:none}} line{{stroke-opacity:.45}}
line.dim{{stroke-opacity:.04}} circle{{stroke:#333;cursor:pointer}} circle.sel{{stroke:#f80;stroke-width:3}}
textarea{{width:100%;height:90px}} .sn{{margin:2px 0}}
</style></head><body><div><h3>{title}</h3><svg id="g"></svg></div><div id="side">
<div id="info">click a node; shift-click to select several</div><p>
<button id="group">group selected</button> <button id="export">export supernodes</button></p>
<div id="sns"></div><textarea id="out" readonly></textarea></div>
<script id="data" type="application/json">{data}</script><script>
const D = JSON.parse(document.getElementById('data').textContent), NS = 'http://www.w3.org/2000/svg';
const svg = document.getElementById('g'), colours = ['#e6194b','#3cb44b','#4363d8','#f58231','#911eb4','#42d4f4',
  '#f032e6','#bfef45','#469990','#9A6324'];
const rank = l => l === 'E' ? 0 : +l + 1, nPos = D.metadata.prompt_tokens.length;
const highest = Math.max(...D.nodes.map(n => rank(n.layer))), W = 80, H = 70;
const cells = {{}}; D.nodes.forEach(n => (cells[n.ctx_idx + ':' + n.layer] ||= []).push(n));
Object.values(cells).forEach(c => c.forEach((n, i) => {{
  n.x = 40 + n.ctx_idx * W + (i + 1) * W / (c.length + 1) - W / 2; n.y = 30 + (highest - rank(n.layer)) * H; }}));
svg.setAttribute('width', 80 + nPos * W); svg.setAttribute('height', 80 + highest * H);
const byId = Object.fromEntries(D.nodes.map(n => [n.node_id, n]));
const maxW = Math.max(...D.links.map(l => Math.abs(l.weight)), 1e-9);
const el = (tag, attrs) => {{ const e = document.createElementNS(NS, tag);
  Object.entries(attrs).forEach(([k, v]) => e.setAttribute(k, v)); svg.appendChild(e); return e; }};
D.links.forEach(l => {{ const s = byId[l.source], t = byId[l.target];
  l.el = el('line', {{x1: s.x, y1: s.y, x2: t.x, y2: t.y, stroke: l.weight > 0 ? '#2060d0' : '#d03020',
    'stroke-width': 0.5 + 5 * Math.abs(l.weight) / maxW}}); }});
D.metadata.prompt_tokens.forEach((t, p) => {{ const e = el('text', {{x: 40 + p * W, y: 55 + highest * H}});
  e.textContent = t; }});
const fill = {{embedding: '#ddd', logit: '#fd6', 'mlp reconstruction error': '#aaa'}};
D.nodes.forEach(n => {{ n.el = el('circle', {{cx: n.x, cy: n.y, r: 7, fill: fill[n.feature_type] || '#9cf'}});
  const tip = document.createElementNS(NS, 'title'); tip.textContent = n.clerp || n.node_id; n.el.appendChild(tip);
  n.el.onclick = ev => click(n, ev.shiftKey); }});
let selected = new Set(), supernodes = D.qParams.supernodes || [];
function click(n, add) {{
  if (!add) selected.clear(); selected.has(n.node_id) ? selected.delete(n.node_id) : selected.add(n.node_id);
  D.nodes.forEach(m => m.el.classList.toggle('sel', selected.has(m.node_id)));
  D.links.forEach(l => l.el.classList.toggle('dim', selected.size > 0 && !selected.has(l.source) &&
    !selected.has(l.target)));
  const into = D.links.filter(l => l.target === n.node_id).sort((a, b) => Math.abs(b.weight) - Math.abs(a.weight));
  document.getElementById('info').innerHTML = '<b>' + n.node_id + '</b> ' + (n.clerp || n.feature_type) +
    (n.activation != null ? '<br>activation ' + n.activation.toFixed(3) : '') + '<br>influence ' +
    (n.influence ?? 0).toFixed(3) + '<br>top inputs:<br>' + into.slice(0, 8).map(l => l.source + ' ' +
    l.weight.toFixed(3)).join('<br>'); }}
function drawGroups() {{
  D.nodes.forEach(n => n.el.setAttribute('stroke', '#333'));
  document.getElementById('sns').innerHTML = '';
  supernodes.forEach(([name, ...ids], i) => {{ const c = colours[i % colours.length];
    ids.forEach(id => byId[id] && byId[id].el.setAttribute('stroke', c));
    const d = document.createElement('div'); d.className = 'sn'; d.style.color = c;
    d.textContent = name + ' (' + ids.length + ') ✕'; d.onclick = () => {{ supernodes.splice(i, 1); drawGroups(); }};
    document.getElementById('sns').appendChild(d); }}); }}
document.getElementById('group').onclick = () => {{ if (selected.size < 2) return;
  const name = prompt('supernode name', 'group ' + (supernodes.length + 1)); if (!name) return;
  supernodes.push([name, ...selected]); drawGroups(); }};
document.getElementById('export').onclick = () => {{
  document.getElementById('out').value = JSON.stringify(supernodes); }};
drawGroups();
</script></body></html>
"""


def write_graph_viewer(data: dict, path: str | Path, title: str | None = None) -> Path:
    """One offline HTML page showing a Neuronpedia graph JSON (as `neuronpedia_graph` builds it)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    title = title or f"attribution graph: {data['metadata']['prompt']}"
    embedded = json.dumps(data).replace("</", "<\\/")
    page = _PAGE.format(title=html.escape(title), data=embedded)
    with atomic_file(path) as handle:
        handle.write(page.encode())
    return path
