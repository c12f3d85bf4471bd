"""The picture SAE variants are compared by: L0 against FVU and against CE score, one series per variant.

Written as a PNG (matplotlib) and as a self-contained interactive HTML page (inline SVG, hover for
each dictionary's numbers, click a legend entry to hide its variant; no CDN, opens from file://).
"""

from __future__ import annotations

import html
import math
from pathlib import Path

from mechscope.evaluation.sweep import load_results

COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2"]


def _panels(rows: list[dict]) -> list[tuple[str, str]]:
    panels = [("fvu", "FVU (lower is better)")]
    if any(r.get("downstream", {}).get("ce_score_zero") is not None for r in rows):
        panels.append(("ce_score_zero", "CE loss score vs zero ablation (higher is better)"))
    elif any("embedding_fidelity" in r.get("downstream", {}) for r in rows):
        panels.append(("embedding_fidelity", "embedding fidelity (higher is better)"))
    return panels


def _value(row: dict, key: str) -> float | None:
    value = row.get(key, row.get("downstream", {}).get(key))
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def _series(rows: list[dict], key: str) -> dict[str, list[tuple[float, float, dict]]]:
    series: dict[str, list] = {}
    for row in rows:
        y = _value(row, key)
        if y is not None and row["l0"] > 0:
            series.setdefault(row["architecture"], []).append((row["l0"], y, row))
    return {k: sorted(v, key=lambda p: p[0]) for k, v in sorted(series.items())}


def plot_png(rows: list[dict], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = _panels(rows)
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.5), squeeze=False)
    for ax, (key, label) in zip(axes[0], panels):
        for i, (arch, points) in enumerate(_series(rows, key).items()):
            ax.plot([p[0] for p in points], [p[1] for p in points], "o-", color=COLORS[i % len(COLORS)], label=arch)
        ax.set_xscale("log")
        ax.set_xlabel("L0 (active latents per token)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(f"{rows[0]['model']} {rows[0]['hook']}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_html(rows: list[dict], path: Path) -> Path:
    width, height, pad = 520, 360, 55
    svgs = []
    for key, label in _panels(rows):
        series = _series(rows, key)
        xs = [p[0] for s in series.values() for p in s] or [1.0]
        ys = [p[1] for s in series.values() for p in s] or [0.0]
        lx0, lx1 = math.log10(min(xs)) - 0.05, math.log10(max(xs)) + 0.05
        y0, y1 = min(ys), max(ys)
        y0, y1 = (y0 - 0.05 * (y1 - y0 or 1), y1 + 0.05 * (y1 - y0 or 1))

        def sx(x):
            return pad + (math.log10(x) - lx0) / (lx1 - lx0 or 1) * (width - 2 * pad)

        def sy(y):
            return height - pad - (y - y0) / (y1 - y0 or 1) * (height - 2 * pad)
        parts = [f'<svg width="{width}" height="{height}" role="img"><text x="{width / 2}" y="18" '
                 f'text-anchor="middle" font-weight="bold">{html.escape(label)}</text>',
                 f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" stroke="#444"/>',
                 f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{height - pad}" stroke="#444"/>',
                 f'<text x="{width / 2}" y="{height - 12}" text-anchor="middle">L0 (log scale)</text>']
        for tick in (y0, (y0 + y1) / 2, y1):
            parts.append(f'<text x="{pad - 6}" y="{sy(tick) + 4}" text-anchor="end" font-size="11">{tick:.3g}</text>')
        for x in sorted(set(round(v) for v in xs)):
            parts.append(f'<text x="{sx(max(x, 1e-9))}" y="{height - pad + 15}" text-anchor="middle" '
                         f'font-size="11">{x}</text>')
        for i, (arch, points) in enumerate(series.items()):
            color = COLORS[i % len(COLORS)]
            line = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y, _ in points)
            parts.append(f'<g class="series" data-arch="{html.escape(arch)}"><polyline points="{line}" fill="none" '
                         f'stroke="{color}" stroke-width="2"/>')
            for x, y, row in points:
                tip = (f"{row['name']}\nL0 {row['l0']:.1f}\nFVU {row['fvu']:.4f}\n{key} {y:.4f}\n"
                       f"dead {row['dead_fraction']:.1%}")
                parts.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="5" fill="{color}">'
                             f'<title>{html.escape(tip)}</title></circle>')
            parts.append("</g>")
        parts.append("</svg>")
        svgs.append("".join(parts))
    archs = sorted({r["architecture"] for r in rows})
    legend = "".join(f'<span class="key" data-arch="{html.escape(a)}" style="color:{COLORS[i % len(COLORS)]}">'
                     f"&#9679; {html.escape(a)}</span>" for i, a in enumerate(archs))
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>mechscope Pareto</title>
<style>body{{font-family:sans-serif;margin:2em}} .key{{cursor:pointer;margin-right:1.2em;font-weight:bold}}
.off{{opacity:.3}} svg{{margin-right:1em;border:1px solid #ddd}}</style></head><body>
<h2>{html.escape(rows[0]['model'])} &middot; {html.escape(rows[0]['hook'])}: sparsity vs fidelity</h2>
<p>Hover a point for its numbers; click a variant to hide or show it.</p><p>{legend}</p>{''.join(svgs)}
<script>document.querySelectorAll('.key').forEach(k=>k.onclick=()=>{{k.classList.toggle('off');
document.querySelectorAll('.series[data-arch="'+k.dataset.arch+'"]').forEach(g=>g.style.display=
k.classList.contains('off')?'none':'');}});</script></body></html>"""
    path.write_text(page)
    return path


def pareto(directory: str | Path) -> dict[str, str]:
    """Write pareto.png and pareto.html for every evaluated dictionary below `directory`."""
    directory = Path(directory)
    rows = load_results(directory)
    return {"png": str(plot_png(rows, directory / "pareto.png")), "html": str(plot_html(rows, directory / "pareto.html"))}
