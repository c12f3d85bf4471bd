"""DictionaryConfig: one flat, JSON-serialisable description of a sparse dictionary and its variant."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from mechscope.errors import MechscopeError

ARCHITECTURES = ("relu", "topk", "batchtopk", "gated", "jumprelu", "matryoshka")


@dataclass
class DictionaryConfig:
    """Shape, variant and provenance of a dictionary; variant hyperparameters have paper defaults."""

    d_in: int
    d_sae: int
    architecture: str = "topk"
    # TopK family (Gao et al. 2024; Bussmann et al. 2024)
    k: int = 32
    aux_k: int | None = None  # AuxK latents; None = d_in // 2 (Gao et al. appendix B.1)
    aux_coefficient: float = 1 / 32
    # ReLU + L1 (Anthropic April 2024 "anthropic" form, or the classic unit-norm form) and Gated
    l1_coefficient: float = 5.0
    relu_form: str = "anthropic"
    # JumpReLU (Rajamanoharan et al. 2024). The paper's 0.001 threshold/bandwidth suit inputs of unit mean
    # squared norm; the trainer normalises to E||x|| = sqrt(d_in), where pre-activations are O(1).
    l0_coefficient: float = 3.0
    jumprelu_bandwidth: float = 0.1
    jumprelu_init_threshold: float = 0.5
    target_l0: float | None = None  # if set, penalise (L0 / target - 1)^2 instead of L0
    # Matryoshka: nested prefix widths (the last must equal d_sae)
    matryoshka_widths: list[int] = field(default_factory=list)
    # inference behaviour (also what foreign formats need)
    apply_b_dec_to_input: bool = True
    normalize_activations: str = "none"  # "none" | "layer_norm" (OpenAI TopK SAEs)
    # provenance
    hook_name: str = ""
    model_name: str = ""
    dtype: str = "float32"
    metadata: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.architecture not in ARCHITECTURES:
            raise MechscopeError(f"unknown architecture {self.architecture!r}; expected one of {ARCHITECTURES}")
        if self.d_in < 1 or self.d_sae < 1:
            raise MechscopeError(f"d_in and d_sae must be positive, got {self.d_in}, {self.d_sae}")
        if self.architecture in ("topk", "batchtopk", "matryoshka") and not 0 < self.k <= self.d_sae:
            raise MechscopeError(f"k must be in 1..d_sae={self.d_sae}, got {self.k}")
        if self.relu_form not in ("anthropic", "classic"):
            raise MechscopeError(f"relu_form must be 'anthropic' or 'classic', got {self.relu_form!r}")
        if self.architecture == "matryoshka":
            widths = self.matryoshka_widths or _default_widths(self.d_sae)
            if sorted(widths) != widths or widths[-1] != self.d_sae or widths[0] < 1:
                raise MechscopeError(f"matryoshka_widths must increase and end at d_sae={self.d_sae}, got {widths}")
            self.matryoshka_widths = widths

    @property
    def k_aux(self) -> int:
        return min(self.aux_k or self.d_in // 2, self.d_sae)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "DictionaryConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def _default_widths(d_sae: int) -> list[int]:
    """Prefixes at 1/16, 1/8, 1/4, 1/2 and all of the dictionary."""
    return sorted({max(1, d_sae // 16), max(1, d_sae // 8), max(1, d_sae // 4), max(1, d_sae // 2), d_sae})
