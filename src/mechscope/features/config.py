"""MiningConfig: every knob of the mining pass, with defaults that suit a 16k-latent dictionary."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from mechscope.errors import MechscopeError

POSITIVE = ("context", "batch_size", "top_k", "quantile_bins", "bins_per_octave", "cooccurrence_hashes")
COUNTS = ("tokens", "samples", "negatives", "negative_pool", "before", "after", "neighbours", "logit_tokens")


@dataclass
class MiningConfig:
    """What one streaming pass keeps per latent; memory depends on d_sae and these sizes, never on tokens."""

    tokens: int = 100_000  # token positions to mine (all of an activation cache when mining one: 0 = all)
    context: int = 128  # window length when mining text (a cache keeps its own)
    batch_size: int = 32  # windows per forward pass
    seed: int = 0
    exclude_special: bool = True  # BOS/CLS/SEP/PAD/EOS positions are shown in contexts but never mined
    # examples
    top_k: int = 20  # highest activations per latent (over both splits)
    samples: int = 40  # uniform random activating examples per latent per split (stratified into quantile bins)
    quantile_bins: int = 10
    negatives: int = 10  # non-activating contexts per latent per split
    negative_pool: int = 128  # random windows per split that negatives are drawn from
    test_fraction: float = 0.2  # share of windows held out for scoring (assigned by a hash of the window index)
    before: int = 16  # tokens shown before the example's token
    after: int = 8  # and after it
    # statistics
    bins_per_octave: int = 4  # activation histogram: log-spaced bins of width 2^(1/bins_per_octave)
    histogram_octaves: tuple[int, int] = (-16, 16)  # its range, 2^lo .. 2^hi (outside: under/overflow bins)
    min_activations: int = 10  # latents firing fewer times are listed as rare (0: dead)
    cooccurrence_hashes: int = 64  # one-permutation MinHash buckets per latent (co-firing neighbours)
    # per-latent weights
    neighbours: int = 10  # decoder-cosine and co-occurrence neighbours kept per latent
    logit_tokens: int = 10  # top promoted / suppressed tokens per latent

    def __post_init__(self):
        self.tokens = int(self.tokens)
        bad = {name: getattr(self, name) for name in POSITIVE if getattr(self, name) < 1}
        bad |= {name: getattr(self, name) for name in COUNTS if getattr(self, name) < 0}
        if bad:
            raise MechscopeError(f"mining sizes {', '.join(POSITIVE)} must be at least 1 and counts "
                                 f"{', '.join(COUNTS)} at least 0; got {bad}")
        if not 0 < self.test_fraction < 1:
            raise MechscopeError(f"test_fraction must lie strictly between 0 and 1, got {self.test_fraction}")
        lo, hi = self.histogram_octaves
        if lo >= hi:
            raise MechscopeError(f"histogram_octaves must be (lo, hi) with lo < hi, got {self.histogram_octaves}")
        self.histogram_octaves = (int(lo), int(hi))

    @property
    def span(self) -> int:
        """Tokens per example context (before + the token + after), at most a window."""
        return self.before + 1 + self.after

    def to_dict(self) -> dict:
        return asdict(self)
