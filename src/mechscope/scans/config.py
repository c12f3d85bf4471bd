"""FamilyScanConfig: what a family scan reads, how it matches labels and how it probes (the CLI's flags)."""

from __future__ import annotations

from dataclasses import dataclass

from mechscope.scans.families import FamilyScanError

METHODS = ("logistic", "diff_in_means")
POOLINGS = ("mean", "last")


@dataclass(frozen=True)
class FamilyScanConfig:
    """Which families a scan reads, how it matches labels and how it probes."""

    families: str | None = None  # TOML file adding families or replacing fields of built-in ones
    select: tuple[str, ...] | None = None  # family names to scan (default: all)
    hook: str | None = None  # hook the probe reads (default: the catalogue's dictionary hook)
    dictionary: str | None = None  # dictionary for latent AUROCs (default: the one the catalogue records)
    method: str = "logistic"  # probe: logistic (regression) or diff_in_means
    pooling: str = "mean"  # activation per prompt: mean over its tokens, or last token
    test_fraction: float = 0.4  # prompts held out per side for every AUROC
    seed: int = 0  # seeds the train/test split and the shuffled-label control
    embedding: bool = True  # match labels by MiniLM similarity as well as by keywords
    min_similarity: float = 0.5  # cosine of label to family description that counts as a match
    max_matches: int = 20  # latents kept per family
    examples: int = 3  # contexts kept per matched latent
    batch_size: int = 16  # prompts per forward pass

    def __post_init__(self):
        if self.method not in METHODS:
            raise FamilyScanError(f"method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if self.pooling not in POOLINGS:
            raise FamilyScanError(f"pooling must be one of {', '.join(POOLINGS)}, got {self.pooling!r}")
        if not 0 < self.test_fraction < 1:
            raise FamilyScanError(f"test_fraction must lie strictly between 0 and 1, got {self.test_fraction}")
