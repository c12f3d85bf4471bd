"""An interactive circuit graph: one self-contained HTML page with inline SVG (no graphviz, no CDN, no network).

Nodes sit by layer, the input at the bottom and the logits at the top; each layer has a row of heads
(side by side, with q/k/v input ports) and its MLP above them. Edges are coloured by sign (blue +, red -),
as wide as their |score|, and show their score on hover; a slider keeps the top n edges, a box the circuit.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping
from pathlib import Path

from mechscope.circuits.edge_truth import top_k
from mechscope.circuits.mib import node_parts, split_edge
from mechscope.data.atomic import atomic_file
from mechscope.errors import MechscopeError

ROW, HEAD_WIDTH, BOX_W, BOX_H = 90, 96, 64, 26

_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>{title}</title><style>
body{{font:13px system-ui,sans-serif;margin:16px}} svg text{{font-size:10px;text-anchor:middle;pointer-events:none}}
rect{{fill:#f4f4f4;stroke:#555}} rect.c{{fill:#ffe9a8}} circle{{fill:#fff;stroke:#555}}
path{{fill:none}} path.off{{display:none}} path:hover{{stroke-opacity:1 !important}}
</style></head><body><h2>{title}</h2><p>{subtitle}</p>
<label>top <input id="n" type="range" min="1" max="{total}" value="{shown}"> <input id="nv" type="number" min="1"
max="{total}" value="{shown}" style="width:6em"> edges by |score|</label>
<label><input id="only" type="checkbox"> circuit edges only</label>
<div>{svg}</div><script>
const edges = Array.from(document.querySelectorAll('path[data-rank]'));
const n = document.getElementById('n'), nv = document.getElementById('nv'), only = document.getElementById('only');
function draw(value) {{ n.value = nv.value = value;
  edges.forEach(e => e.classList.toggle('off', +e.dataset.rank >= value || (only.checked && !e.classList.contains('c')))); }}
n.oninput = () => draw(n.value); nv.oninput = () => draw(nv.value); only.onchange = () => draw(n.value); draw({shown});
</script></body></html>"""


def _shape(names: Iterable[str]) -> tuple[int, int]:
    """(n_layers, n_heads) spanned by the nodes of these edge names."""
    layers, heads = 0, 0
    for edge in names:
        for node in split_edge(edge):
            _, layer, head, _ = node_parts(node)
            layers = max(layers, (layer or 0) + 1)
            heads = max(heads, (head or 0) + 1)
    return layers, heads


def _positions(n_layers: int, n_heads: int) -> tuple[dict[str, tuple[float, float]], float, float]:
    """Centre of every node box, and the page's width and height (rows go upwards)."""
    width = max(n_heads * HEAD_WIDTH, 4 * HEAD_WIDTH) + 40
    height = (2 * n_layers + 2) * ROW
    centre = width / 2
    y = lambda row: height - ROW / 2 - row * ROW  # noqa: E731
    spots = {"input": (centre, y(0)), "logits": (centre, y(2 * n_layers + 1))}
    for layer in range(n_layers):
        left = centre - (n_heads - 1) * HEAD_WIDTH / 2
        for head in range(n_heads):
            spots[f"a{layer}.h{head}"] = (left + head * HEAD_WIDTH, y(2 * layer + 1))
        spots[f"m{layer}"] = (centre, y(2 * layer + 2))
    return spots, width, height


def _port(spots: dict, destination: str) -> tuple[float, float]:
    """Where an edge ends: a head's q/k/v port, or the bottom of an MLP or the logits."""
    node, _, port = destination.partition("<")
    x, y = spots[node]
    offset = {"q": -BOX_W / 3, "k": 0.0, "v": BOX_W / 3}.get(port.rstrip(">"), 0.0)
    return x + offset, y + BOX_H / 2


def write_graph_view(scores: Mapping[str, float], path: str | Path, circuit: Iterable[str] = (), *,
                     title: str = "circuit graph", max_edges: int = 2000, shown: int = 50) -> Path:
    """Write the page for edge `scores` {MIB edge name: score}; `circuit` edges are highlighted and always drawn.

    Only the `max_edges` top edges by |score| (plus the circuit) are drawn; the slider starts at `shown`.
    """
    circuit = set(circuit)
    if not scores and not circuit:
        raise MechscopeError("a circuit graph needs edge scores or circuit edges; got neither")
    scores = {**{edge: 0.0 for edge in circuit}, **{e: float(v) for e, v in scores.items()}}
    drawn = top_k(scores, max_edges)
    drawn += sorted(circuit - set(drawn))
    n_layers, n_heads = _shape(scores)
    spots, width, height = _positions(n_layers, n_heads)
    limit = max((abs(scores[e]) for e in drawn), default=1.0) or 1.0
    parts = []
    for rank, edge in enumerate(drawn):
        source, destination = split_edge(edge)
        (x1, y1), (x2, y2) = (spots[source][0], spots[source][1] - BOX_H / 2), _port(spots, destination)
        value = scores[edge]
        colour = "#2166ac" if value >= 0 else "#b2182b"
        opacity = 0.9 if edge in circuit else 0.35
        parts.append(f'<path class="{"c" if edge in circuit else ""}" data-rank="{rank}" d="M{x1:.1f},{y1:.1f} '
                     f'C{x1:.1f},{(y1 + y2) / 2:.1f} {x2:.1f},{(y1 + y2) / 2:.1f} {x2:.1f},{y2:.1f}" '
                     f'stroke="{colour}" stroke-opacity="{opacity}" stroke-width="{0.6 + 5 * abs(value) / limit:.2f}">'
                     f'<title>{html.escape(edge)}: {value:.4g}</title></path>')
    in_circuit = {node for edge in circuit for node in (split_edge(edge)[0], split_edge(edge)[1].split("<")[0])}
    for name, (x, y) in spots.items():
        parts.append(f'<rect class="{"c" if name in in_circuit else ""}" x="{x - BOX_W / 2:.1f}" '
                     f'y="{y - BOX_H / 2:.1f}" width="{BOX_W}" height="{BOX_H}" rx="4"><title>{name}</title></rect>'
                     f'<text x="{x:.1f}" y="{y + 3:.1f}">{name}</text>')
        if node_parts(name)[0] == "attention":
            parts += [f'<circle cx="{px:.1f}" cy="{py:.1f}" r="3"><title>{name}&lt;{p}&gt;</title></circle>'
                      for p in "qkv" for px, py in [_port(spots, f"{name}<{p}>")]]
    svg = f'<svg width="{width:.0f}" height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}">{"".join(parts)}</svg>'
    subtitle = (f"{len(drawn)} of {len(scores)} edges drawn ({len(circuit)} in the circuit, highlighted); "
                f"hover an edge for its score")
    page = _PAGE.format(title=html.escape(title), subtitle=html.escape(subtitle), total=len(drawn),
                        shown=min(shown, len(drawn)) or 1, svg=svg)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as handle:
        handle.write(page.encode())
    return path

