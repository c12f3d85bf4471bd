"""The three model-diffing figures people use: relative decoder norms, shared-latent cosines, beta ratios."""

from __future__ import annotations

from pathlib import Path

from mechscope.diffing.latent_classes import LatentClasses
from mechscope.diffing.latent_scaling import LatentScaling


def plot_crosscoder_latents(classes: LatentClasses, scaling: LatentScaling | None, path: str | Path,
                            names: tuple[str, str] = ("A", "B")) -> Path:
    """One PNG: relative-norm histogram, decoder cosine of shared latents, nu_e against nu_r of specific latents."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    panels = 3 if scaling is not None else 2
    fig, axes = plt.subplots(1, panels, figsize=(5.2 * panels, 4.2))
    alive = classes.classes >= 0
    axes[0].hist(classes.relative_norm[alive].numpy(), bins=50, range=(0, 1), color="C0")
    axes[0].set_yscale("log")
    axes[0].set_xlabel(f"relative decoder norm ({names[0]}-only 0 ... {names[1]}-only 1)")
    axes[0].set_ylabel("latents")
    axes[0].set_title("relative decoder norm")
    shared = classes.cosine[classes.indices("shared")]
    axes[1].hist(shared.numpy(), bins=40, range=(-1, 1), color="C2")
    axes[1].set_xlabel(f"cosine(d_{names[0]}, d_{names[1]})")
    axes[1].set_title(f"decoder cosine of {shared.numel()} shared latents")
    if scaling is not None:
        for name, colour in (("a_only", "C1"), ("b_only", "C3"), ("shared", "C2")):
            index = classes.indices(name)
            index = index[scaling.active[index] > 0]
            axes[2].scatter(scaling.nu_reconstruction[index].numpy(), scaling.nu_error[index].numpy(), s=8,
                            color=colour, label=name.replace("a_only", f"{names[0]}-only").replace(
                                "b_only", f"{names[1]}-only"), alpha=0.7)
        axes[2].set_xlabel("nu_r = beta_r(other) / beta_r(owner)")
        axes[2].set_ylabel("nu_e = beta_e(other) / beta_e(owner)")
        axes[2].set_title("latent scaling")
        axes[2].legend()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path
