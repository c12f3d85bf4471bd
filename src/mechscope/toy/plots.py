"""Figures in the style of Elhage et al. 2022: W^T W, feature geometry, and per-feature dimensionality."""

from __future__ import annotations

from pathlib import Path

from mechscope.toy.superposition import ToyModel, feature_dimensionality, feature_norms, gram


def plot_superposition(model: ToyModel, path: str | Path, instance: int = -1) -> Path:
    """One PNG: W^T W and the feature geometry of `instance`, and D_i against 1 / (1 - S) for all instances."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_gram, ax_geo, ax_dim) = plt.subplots(1, 3, figsize=(16, 4.8))
    p = model.cfg.feature_probability
    instance = instance % model.cfg.instances
    g = gram(model, instance)
    limit = float(g.abs().max())
    image = ax_gram.imshow(g, cmap="RdBu_r", vmin=-limit, vmax=limit)
    fig.colorbar(image, ax=ax_gram, fraction=0.046)
    ax_gram.set_title(f"W^T W (S = {1 - p[instance]:.3g})")
    w = model.W.detach()[instance]
    if w.shape[0] == 2:
        for j in range(w.shape[1]):
            ax_geo.arrow(0, 0, float(w[0, j]), float(w[1, j]), head_width=0.05, length_includes_head=True,
                         color=f"C{j % 10}")
        ax_geo.set_xlim(-1.3, 1.3)
        ax_geo.set_ylim(-1.3, 1.3)
        ax_geo.set_aspect("equal")
        ax_geo.set_title("feature directions in the hidden plane")
    else:
        ax_geo.bar(range(w.shape[1]), feature_norms(model)[instance])
        ax_geo.set_title("||W_i|| per feature (1: represented)")
        ax_geo.set_xlabel("feature (most important first)")
    dims, norms = feature_dimensionality(model), feature_norms(model)
    for i, prob in enumerate(p):
        keep = norms[i] > 0.5
        x = [1 / prob] * int(keep.sum())
        ax_dim.scatter(x, dims[i][keep], s=10, alpha=0.6, color="C0")
    for level in (1.0, 0.5, 0.4, 0.375, 1 / 3):
        ax_dim.axhline(level, color="grey", lw=0.5, ls="--")
    ax_dim.set_xscale("log")
    ax_dim.set_xlabel("1 / (1 - S)")
    ax_dim.set_ylabel("feature dimensionality D_i")
    ax_dim.set_title("D_i of represented features")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
