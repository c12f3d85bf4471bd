"""A tiny ReLU GPT-2 and transcoders that reproduce each of its MLPs exactly (known answers for replacement)."""

from __future__ import annotations

import torch

import mechscope
from mechscope.dictionaries import CLTConfig, CrossLayerTranscoder, Dictionary, DictionaryConfig, TranscoderSet
from tests.conftest import word_tokenizer

WORDS = "the cat sat on a mat and dog ran far away while birds sang in trees".split()
TEXT = [" ".join(WORDS[i % 7:] + WORDS[: i % 7]) for i in range(60)]


def relu_gpt2(seed: int = 0):
    """A 3-layer GPT-2 with ReLU MLPs and random (not identity) ln_2 affines, as a HookedModel."""
    import transformers as t

    torch.manual_seed(seed)
    config = t.GPT2Config(vocab_size=len(WORDS) + 4, n_embd=32, n_layer=3, n_head=4, n_positions=64,
                          activation_function="relu", bos_token_id=2, eos_token_id=3)
    hf = t.GPT2LMHeadModel(config).eval()
    with torch.no_grad():
        for block in hf.transformer.h:
            block.ln_2.weight.uniform_(0.5, 1.5)
            block.ln_2.bias.normal_(0, 0.1)
            block.mlp.c_fc.bias.normal_(0, 0.1)
    return mechscope.load_model(hf, tokenizer=word_tokenizer(WORDS), device="cpu")


def exact_transcoder(model, layer: int, hook: str = "ln2.hook_normalized") -> Dictionary:
    """ReLU transcoder to hook_mlp_out equal to the MLP. From ln2.hook_normalized the ln_2 affine is folded in:
    W_enc = diag(w) W_in, b_enc = b W_in + b_in; from ln2.hook_out (the MLP's own input) W_enc = W_in, b_enc = b_in.
    W_dec = W_out, b_dec = b_out."""
    block = model.hf.transformer.h[layer]
    w, b = block.ln_2.weight.detach(), block.ln_2.bias.detach()
    if hook == "ln2.hook_out":
        w, b = torch.ones_like(w), torch.zeros_like(b)
    W_in, b_in = block.mlp.c_fc.weight.detach(), block.mlp.c_fc.bias.detach()
    W_out, b_out = block.mlp.c_proj.weight.detach(), block.mlp.c_proj.bias.detach()
    cfg = DictionaryConfig(W_in.shape[0], W_in.shape[1], "relu", hook_name=f"blocks.{layer}.{hook}",
                           hook_name_out=f"blocks.{layer}.hook_mlp_out")
    d = Dictionary(cfg)
    with torch.no_grad():
        d.W_enc.copy_(w[:, None] * W_in)
        d.b_enc.copy_(b @ W_in + b_in)
        d.W_dec.copy_(W_out)
        d.b_dec.copy_(b_out)
    return d


def exact_set(model, hook: str = "ln2.hook_normalized") -> TranscoderSet:
    layers = list(range(model.info.n_layers))
    return TranscoderSet([exact_transcoder(model, layer, hook) for layer in layers], layers, model.info.name)


def clt_from_transcoders(dictionaries, hook_in: str = "blocks.{layer}.ln2.hook_normalized") -> CrossLayerTranscoder:
    """A CLT whose latents write only to their own layer, each layer's block one of `dictionaries` (ReLU ones: the
    threshold is zero)."""
    first = dictionaries[0]
    clt = CrossLayerTranscoder(CLTConfig(len(dictionaries), first.d_in, first.cfg.d_sae, hook_in=hook_in))
    with torch.no_grad():
        for i, d in enumerate(dictionaries):
            clt.W_enc[i].copy_(d.W_enc)
            clt.b_enc[i].copy_(d.b_enc)
            clt.W_dec[i].zero_()
            clt.W_dec[i][:, 0].copy_(d.W_dec)
            clt.b_dec[i].copy_(d.b_dec)
        clt.threshold.zero_()
    return clt


def replaced_logit_change(model, replacement, error_term: bool = False) -> float:
    """Largest |logit difference| between the model with every MLP replaced and the model itself."""
    ids = model.to_tokens(TEXT[:4])
    clean = model(ids)
    with model.hooks(replacement.replacement_hooks(error_term)):
        return (model(ids) - clean).abs().max().item()
