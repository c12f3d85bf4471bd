"""Architecture adapters: where each TransformerLens-style hook lives inside a family's HF modules.

An adapter is data, not code: module paths relative to the decoder/encoder root and to each
block, plus the block topology, which fixes which residual identities hold.
"""

from __future__ import annotations

from dataclasses import dataclass

from mechscope.errors import UnsupportedModelError


@dataclass(frozen=True)
class Family:
    """Module paths of one architecture family. Block paths are relative to one layer module."""

    name: str
    model_types: tuple[str, ...]
    layers: str  # ModuleList of blocks, relative to the root
    embed: str  # token embedding, relative to the root
    final_norm: str | None  # final norm before the unembedding (None: the family has none)
    attn_out: str  # module whose output is what the block adds to the residual stream from attention
    attn_core: str  # module that calls the attention interface (its query/key/value make the pattern)
    out_proj: str  # attention output projection; its input is the per-head z
    mid: str | None  # where resid_mid lives (see `topology`)
    mlp_out: str  # module whose output is what the block adds to the residual stream from the MLP
    mlp_down: str | None  # MLP output projection; its input is the MLP hidden activation (None: MoE)
    topology: str  # "prenorm" | "parallel" | "postnorm"
    attn_in: str  # module whose first input is the residual stream as attention reads it, on the branch only
    mlp_in: str  # the same for the MLP
    qkv: tuple[str, ...]  # q, k, v projections; one path when they are fused into one module
    qkv_layout: str = "split"  # "split" | "concat" (q|k|v along the output) | "interleaved" (per head q|k|v)
    ln1: str | None = None  # norm whose scale/normalized hooks are blocks.{l}.ln1.* (TransformerLens's ln1)
    ln2: str | None = None
    ln1_post: str | None = None  # sandwich norms closing a sub-block inside its residual branch
    ln2_post: str | None = None
    norm_offset: float = 0.0  # the norms multiply by (offset + weight): Gemma stores weight - 1
    router: str | None = None  # mixture-of-experts router; its first output is the router logits
    post_norms: tuple[str, str] | None = None  # postnorm only: the two LayerNorms closing each sub-block

    @property
    def has_resid_mid(self) -> bool:
        return self.mid is not None


_DECODER = dict(layers="layers", embed="embed_tokens", final_norm="norm", attn_out="self_attn",
                attn_core="self_attn", out_proj="self_attn.o_proj", mid="post_attention_layernorm",
                mlp_out="mlp", mlp_down="mlp.down_proj", topology="prenorm", attn_in="input_layernorm",
                mlp_in="post_attention_layernorm", qkv=("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"),
                ln1="input_layernorm", ln2="post_attention_layernorm")
# Gemma2/3 wrap both sub-blocks in "sandwich" norms: what is added to the residual stream is the
# output of the post-attention / post-feedforward norm, so those are attn_out / mlp_out.
_SANDWICH = {**_DECODER, "attn_out": "post_attention_layernorm", "mid": "pre_feedforward_layernorm",
             "mlp_out": "post_feedforward_layernorm", "mlp_in": "pre_feedforward_layernorm",
             "ln2": "pre_feedforward_layernorm", "ln1_post": "post_attention_layernorm",
             "ln2_post": "post_feedforward_layernorm", "norm_offset": 1.0}
# OLMo2 keeps only the closing half of the sandwich: attention and MLP read the raw residual stream and
# their outputs are normalised inside the branch, so there is no ln1/ln2, only ln1_post/ln2_post.
_POSTNORM_SANDWICH = {**_SANDWICH, "mid": "mlp", "attn_in": "self_attn", "mlp_in": "mlp", "ln1": None, "ln2": None,
                      "norm_offset": 0.0}

FAMILIES: tuple[Family, ...] = (
    Family("gpt2", ("gpt2",), layers="h", embed="wte", final_norm="ln_f", attn_out="attn", attn_core="attn",
           out_proj="attn.c_proj", mid="ln_2", mlp_out="mlp", mlp_down="mlp.c_proj", topology="prenorm",
           attn_in="ln_1", mlp_in="ln_2", qkv=("attn.c_attn",), qkv_layout="concat", ln1="ln_1", ln2="ln_2"),
    Family("gpt_neox", ("gpt_neox",), layers="layers", embed="embed_in", final_norm="final_layer_norm",
           attn_out="attention", attn_core="attention", out_proj="attention.dense", mid=None, mlp_out="mlp",
           mlp_down="mlp.dense_4h_to_h", topology="parallel", attn_in="input_layernorm",
           mlp_in="post_attention_layernorm", qkv=("attention.query_key_value",), qkv_layout="interleaved",
           ln1="input_layernorm", ln2="post_attention_layernorm"),
    Family("llama", ("llama", "mistral", "qwen2", "qwen3"), **_DECODER),
    Family("phi3", ("phi3",), **{**_DECODER, "qkv": ("self_attn.qkv_proj",), "qkv_layout": "concat"}),
    Family("mixtral", ("mixtral",), **{**_DECODER, "mlp_down": None, "router": "mlp.gate"}),
    Family("gemma", ("gemma2", "gemma3", "gemma3_text"), **_SANDWICH),
    Family("olmo2", ("olmo2",), **_POSTNORM_SANDWICH),
    # BERT blocks are post-norm: resid_mid = LN(resid_pre + attn_out), resid_post = LN(resid_mid + mlp_out),
    # where attn_out / mlp_out are the dense projections *before* the residual add and LayerNorm; those two
    # LayerNorms are ln1 / ln2, as in TransformerLens's BERT.
    Family("bert", ("bert",), layers="encoder.layer", embed="embeddings.word_embeddings", final_norm=None,
           attn_out="attention.output.dense", attn_core="attention.self", out_proj="attention.output.dense",
           mid="attention.output", mlp_out="output.dense", mlp_down="output.dense", topology="postnorm",
           attn_in="attention.self", mlp_in="intermediate",
           qkv=("attention.self.query", "attention.self.key", "attention.self.value"),
           ln1="attention.output.LayerNorm", ln2="output.LayerNorm",
           post_norms=("attention.output.LayerNorm", "output.LayerNorm")),
)

SUPPORTED = sorted({t for f in FAMILIES for t in f.model_types})


def family_for(config) -> Family:
    """The adapter for an HF config, or an error naming the supported families."""
    model_type = getattr(config, "model_type", None)
    for family in FAMILIES:
        if model_type in family.model_types:
            if family.name == "gpt_neox" and not getattr(config, "use_parallel_residual", True):
                return Family(**{**family.__dict__, "mid": "post_attention_layernorm", "topology": "prenorm"})
            return family
    raise UnsupportedModelError(
        f"no adapter for model_type {model_type!r}; supported families: {', '.join(SUPPORTED)} "
        "(GPT-2, GPT-NeoX/Pythia, Llama/Mistral, Qwen2/Qwen3, Phi-3, Mixtral, Gemma2/Gemma3, OLMo2, BERT)"
    )
