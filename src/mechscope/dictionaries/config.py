"""DictionaryConfig: one flat, JSON-serialisable description of a sparse dictionary and its variant."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from mechscope.errors import MechscopeError


@dataclass
class DictionaryConfig:
    """Shape, variant and provenance of a dictionary; variant hyperparameters have paper defaults.

    The variant registered under `architecture` fills its own derived defaults and checks its fields.
    """

    d_in: int
    d_sae: int
    architecture: str = "topk"
    # transcoders read one hook and write another: d_out (None = d_in), the output hook, an optional
    # linear skip connection W_skip [d_in, d_out]; their b_dec is an output bias, never subtracted from x
    d_out: int | None = None
    hook_name_out: str = ""
    skip_connection: bool = False
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
    # crosscoders (Lindsey et al. 2024): d_in is the concatenation of n_sources equal-width sources
    n_sources: int = 1
    # inference behaviour (also what foreign formats need)
    apply_b_dec_to_input: bool = True
    normalize_activations: str = "none"  # "none" | "layer_norm" (OpenAI TopK SAEs)
    # provenance
    hook_name: str = ""
    model_name: str = ""
    dtype: str = "float32"
    metadata: dict = field(default_factory=dict)

    def __post_init__(self):
        from mechscope.dictionaries.variants import variant_type

        if self.d_in < 1 or self.d_sae < 1 or self.d_output < 1:
            raise MechscopeError(f"d_in, d_sae and d_out must be positive, got {self.d_in}, {self.d_sae}, {self.d_out}")
        if self.is_transcoder:
            self.apply_b_dec_to_input = False  # b_dec lives in the output space (SAELens's transcoders do the same)
        variant = variant_type(self.architecture)
        for name, value in variant.config_defaults(self).items():
            setattr(self, name, value)
        variant.validate_config(self)

    @property
    def d_output(self) -> int:
        """Width of the reconstruction: d_out for a transcoder, d_in for an autoencoder."""
        return self.d_in if self.d_out is None else self.d_out

    @property
    def is_transcoder(self) -> bool:
        """Reads one activation and predicts another (an output hook, a width of its own or a skip connection)."""
        return self.d_out is not None or bool(self.hook_name_out) or self.skip_connection

    @property
    def k_aux(self) -> int:
        return min(self.aux_k or self.d_in // 2, self.d_sae)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "DictionaryConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

