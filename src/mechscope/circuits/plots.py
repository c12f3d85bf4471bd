"""Heatmaps of circuit results: a PNG (matplotlib) and a self-contained interactive HTML page (no CDN)."""

from __future__ import annotations

import html
import json
from pathlib import Path

from mechscope.data.atomic import atomic_file


def _matrix(result) -> tuple[list[list[float]], list[str], list[str]]:
    """Rows x columns for display: the first axis down; the remaining axes flattened across."""
    values = result.values.detach().float().cpu()
    if values.ndim == 1:
        values = values[None]
        rows, cols = [result.kind], result.labels[result.axes[0]]
        return values.tolist(), rows, cols
    rows = result.labels[result.axes[0]]
    rest = result.axes[1:]
    cols = [""]
    for axis in rest:
        cols = [f"{c} {axis}={label}".strip() for c in cols for label in result.labels[axis]]
    return values.reshape(values.shape[0], -1).tolist(), rows, cols


def heatmap_png(result, path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    matrix, rows, cols = _matrix(result)
    limit = max((abs(v) for row in matrix for v in row), default=1.0) or 1.0
    fig, ax = plt.subplots(figsize=(min(4 + 0.25 * len(cols), 24), min(2 + 0.3 * len(rows), 16)))
    image = ax.imshow(matrix, cmap="RdBu", vmin=-limit, vmax=limit, aspect="auto")
    fig.colorbar(image, ax=ax, fraction=0.03)
    ax.set_yticks(range(len(rows)), [f"{result.axes[0]} {r}" if len(result.axes) > 1 else r for r in rows],
                  fontsize=7)
    if len(cols) <= 64:
        ax.set_xticks(range(len(cols)), cols, rotation=90, fontsize=6)
    ax.set_title(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>{title}</title><style>
body{{font:13px system-ui,sans-serif;margin:16px}} table{{border-collapse:collapse}}
td{{width:18px;height:18px;padding:0}} th{{font-weight:normal;font-size:11px;text-align:right;padding-right:4px}}
#tip{{position:fixed;background:#fff;border:1px solid #888;padding:3px 6px;display:none;pointer-events:none}}
</style></head><body><h2>{title}</h2><p>{subtitle}</p><div id="grid"></div><div id="tip"></div>
<script>
const data = {data};
const limit = Math.max(1e-12, ...data.values.flat().map(Math.abs));
function colour(v) {{ const t = Math.min(1, Math.abs(v) / limit), c = Math.round(255 * (1 - t));
  return v >= 0 ? `rgb(${{c}},${{c}},255)` : `rgb(255,${{c}},${{c}})`; }}
const table = document.createElement('table'), tip = document.getElementById('tip');
data.values.forEach((row, i) => {{ const tr = table.insertRow(); const th = document.createElement('th');
  th.textContent = data.rows[i]; tr.appendChild(th);
  row.forEach((v, j) => {{ const td = tr.insertCell(); td.style.background = colour(v);
    td.onmousemove = e => {{ tip.style.display = 'block'; tip.style.left = (e.clientX + 12) + 'px';
      tip.style.top = (e.clientY + 12) + 'px'; tip.textContent = `${{data.rows[i]}} ${{data.cols[j]}}: ${{v.toPrecision(4)}}`; }};
    td.onmouseleave = () => {{ tip.style.display = 'none'; }}; }}); }});
document.getElementById('grid').appendChild(table);
</script></body></html>"""


def heatmap_html(result, path: Path, title: str) -> Path:
    matrix, rows, cols = _matrix(result)
    baselines = ", ".join(f"{k} metric {v:.4g}" for k, v in (("clean", result.clean), ("corrupted", result.corrupted))
                          if v is not None)
    data = json.dumps({"values": matrix, "rows": [str(r) for r in rows], "cols": cols}).replace("</", "<\\/")
    page = _PAGE.format(title=html.escape(title), subtitle=html.escape(baselines or result.kind), data=data)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as handle:
        handle.write(page.encode())
    return path
