"""Tiny models and transcoders for attribution-graph tests: an exact transcoder (a ReLU MLP's own weights) and
transcoders fitted quickly to a model's MLPs."""

from __future__ import annotations


import pytest
import torch

from mechscope.circuits.graphs import CrossLayerTranscoders, Transcoders
from mechscope.dictionaries import CLTConfig, CrossLayerTranscoder, Dictionary, DictionaryConfig
from mechscope.models import wrap
from tests.dictionaries.exact_transcoders import clt_from_transcoders

EXACT_INPUT = "blocks.{layer}.ln2.hook_normalized"


@pytest.fixture(scope="module")
def relu_gpt2():
    """A 2-layer GPT-2 with ReLU MLPs, weights scaled up and random (non-trivial) norm weights and biases."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    hf = GPT2LMHeadModel(GPT2Config(vocab_size=50, n_embd=32, n_layer=2, n_head=4, n_positions=16,
                                    activation_function="relu")).eval()
    with torch.no_grad():
        for name, param in hf.named_parameters():
            if "ln" in name:
                param.add_(0.2 * torch.randn_like(param))
            elif name.endswith("bias"):
                param.copy_(0.1 * torch.randn_like(param))
            else:  # GPT-2's 0.02 init leaves logits nearly flat
                param.mul_(8)
    return wrap(hf, name="relu-gpt2")


def exact_transcoder(model, layer: int) -> Dictionary:
    """The MLP of `layer` as a transcoder reading ln_2's normalised input: W_enc = diag(ln weight) W_fc, b_enc =
    b_fc + ln bias @ W_fc, W_dec = W_proj, b_dec = b_proj, ReLU; it reproduces the MLP exactly."""
    block = model.hf.transformer.h[layer]
    fc, proj, ln = block.mlp.c_fc, block.mlp.c_proj, block.ln_2
    d_model, d_mlp = fc.weight.shape
    transcoder = Dictionary(DictionaryConfig(d_in=d_model, d_sae=d_mlp, architecture="relu",
                                             apply_b_dec_to_input=False))
    with torch.no_grad():
        transcoder.W_enc.copy_(ln.weight[:, None] * fc.weight)
        transcoder.b_enc.copy_(fc.bias + ln.bias @ fc.weight)
        transcoder.W_dec.copy_(proj.weight)
        transcoder.b_dec.copy_(proj.bias)
    return transcoder.requires_grad_(False)


@pytest.fixture(scope="module")
def exact_transcoders(relu_gpt2):
    return Transcoders([exact_transcoder(relu_gpt2, layer) for layer in range(2)], [0, 1], input_hook=EXACT_INPUT)


def exact_clt(exact: Transcoders) -> CrossLayerTranscoders:
    """The exact per-layer transcoders as a CLT whose cross-layer decoders are zero."""
    return CrossLayerTranscoders(clt_from_transcoders(exact.dictionaries, exact.input_hook))


def random_clt(model, d_latent: int = 48, seed: int = 0) -> CrossLayerTranscoders:
    """A random JumpReLU CLT over every layer (threshold 0.5, decoders scaled up): real cross-layer writes."""
    clt = CrossLayerTranscoder(CLTConfig(model.n_layers, model.info.d_model, d_latent, hook_in=EXACT_INPUT))
    clt.reset_parameters(seed)
    with torch.no_grad():
        for decoder in clt.W_dec:
            decoder.mul_(3)
        clt.b_dec.normal_(0, 0.1, generator=torch.Generator().manual_seed(seed))
    return CrossLayerTranscoders(clt)


def removal_effects(model, transcoders, graph, prompt, sources: list[int]):
    """Finite-difference direct effects of removing each source node's output (every decoder row it writes, or its
    token embedding) in the frozen model: (effects on every feature's pre-activation [sources, n_features], on each
    logit target [sources, n_logits]). GPT-2 models only (the embedding is read from wte)."""
    deltas = {name: torch.zeros(len(sources), len(prompt), model.info.d_model)
              for name in ["hook_embed", *(f"blocks.{l}.hook_mlp_out" for l in range(model.n_layers))]}
    for row, index in enumerate(sources):
        node = graph.node(index)
        if node.kind == "feature":
            i = transcoders.layers.index(node.layer)
            writes = transcoders.decoder_rows(i, torch.tensor([node.latent]))[0].detach()  # [n_out, d]
            for offset, direction in enumerate(writes):
                name = f"blocks.{transcoders.layers[i + offset]}.hook_mlp_out"
                deltas[name][row, node.pos] = -graph.activations[index] * direction
        else:
            deltas["hook_embed"][row, node.pos] = -model.hf.transformer.wte.weight[int(prompt[node.pos])].detach()
    clean_pre, clean_logits = frozen_values(model, transcoders, prompt, {}, 1)
    pre, logits = frozen_values(model, transcoders, prompt, deltas, len(sources))
    features = graph.features
    on_features = torch.stack([clean_pre[layer][0, pos, latent] - pre[layer][:, pos, latent]
                               for layer, pos, latent in features.tolist()], 1)
    return on_features, (clean_logits - logits)[:, graph.logit_tokens]


def fit_transcoders(model, texts, layers, d_sae: int = 256, k: int = 8, steps: int = 400, seed: int = 0) -> Transcoders:
    """TopK transcoders from each layer's hook_mlp_in to hook_mlp_out, fitted with Adam on `texts`' tokens."""
    names = [f"blocks.{layer}.hook_{kind}" for layer in layers for kind in ("mlp_in", "mlp_out")]
    with torch.no_grad():
        _, cache = model.run_with_cache(texts, names)
    torch.manual_seed(seed)
    transcoders = []
    for layer in layers:
        x = cache[f"blocks.{layer}.hook_mlp_in"].reshape(-1, model.info.d_model)
        y = cache[f"blocks.{layer}.hook_mlp_out"].reshape(-1, model.info.d_model)
        transcoder = Dictionary(DictionaryConfig(d_in=model.info.d_model, d_sae=d_sae, architecture="topk", k=k,
                                                 apply_b_dec_to_input=False))
        with torch.no_grad():
            transcoder.b_dec.copy_(y.mean(0))
        optimiser = torch.optim.Adam(transcoder.parameters(), lr=3e-3)
        for _ in range(steps):
            loss = (transcoder.decode(transcoder.encode(x)) - y).pow(2).sum(-1).mean()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        transcoders.append(transcoder.eval().requires_grad_(False))
    return Transcoders(transcoders, layers)


def frozen_values(model, transcoders, prompt, deltas: dict[str, torch.Tensor], copies: int, zero_sources: bool = False):
    """Each copy's transcoder pre-activations per layer and demeaned logits at the last position, in the model with
    patterns, norm scales and every MLP output frozen at the clean run's, plus `deltas` [copies, pos, d] added at
    hook points (hook_embed, blocks.{l}.hook_mlp_out). zero_sources: embeddings zero and MLP outputs b_dec only."""
    names = [n for n in model.hook_names() if model.point(n).kind in ("pattern", "norm_scale")]
    names += [f"blocks.{l}.hook_mlp_out" for l in range(model.n_layers)]
    _, clean = model.run_with_cache(prompt[None], names)
    inputs = {}

    def frozen(act, name):
        value = clean[name].expand_as(act).clone()
        if zero_sources and name.endswith("hook_mlp_out"):
            value[:] = transcoders.output_bias(transcoders.layers.index(int(name.split(".")[1])))
        return value + deltas[name] if name in deltas else value

    def embed(act, name):
        value = torch.zeros_like(act) if zero_sources else act
        return value + deltas[name] if name in deltas else value

    def keep(act, name):
        inputs[int(name.split(".")[1])] = act
        return act

    hooks = [(n, frozen) for n in names] + [("hook_embed", embed)]
    hooks += [(transcoders.input_hook.format(layer=l), keep) for l in transcoders.layers]
    with torch.no_grad(), model.hooks(hooks):
        logits = model(prompt[None].expand(copies, -1))[:, -1]
    with torch.no_grad():
        pre = {l: transcoders.pre_activations(i, inputs[l].float()) for i, l in enumerate(transcoders.layers)}
    return pre, logits - logits.mean(-1, keepdim=True)


def _induction(cross_layer: bool):
    from mechscope.circuits.graphs import from_transcoder_set
    from mechscope.toy import OrganismTranscoderConfig, load_organism, organism_transcoders

    organism = load_organism("induction", size="small", device="cpu")
    found = organism_transcoders("induction", "small", OrganismTranscoderConfig(cross_layer=cross_layer))
    transcoders = CrossLayerTranscoders(found) if cross_layer else from_transcoder_set(found)
    first = 6
    prompt = organism.task.repeated_tokens(organism.model.tokenizer, n=1)[0][:1 + organism.task.check_segment + first]
    return organism, transcoders, prompt, first


@pytest.fixture(scope="session")
def induction():
    """(organism, its zoo transcoders (one per MLP), a repeated-segment prompt, the position the last token first
    occurred at)."""
    return _induction(cross_layer=False)


@pytest.fixture(scope="session")
def induction_clt():
    """The same with the organism's zoo cross-layer transcoder."""
    return _induction(cross_layer=True)
