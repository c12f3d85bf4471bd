"""QK attribution: which nodes on the query and on the key side drive one head's attention score (beyond circuit-tracer,
which freezes patterns and so cannot say why a head attends where it does).

With the norm scale frozen, a head's query at position q is affine in the residual stream there, and the residual
stream is a sum of node outputs: the token embedding, every active feature's a_s W_dec[s] and error node of the
layers before, and each earlier head's output (attn.hook_result), plus the rest (biases, positional embeddings,
b_dec, skips) as "other". Projecting each part (rotary included) splits q into per-part queries q_i and k into k_j;
terms[i, j] = scaling * q_i . k_j, and the terms sum to the pre-softmax attention score (the norm's and the
projection's biases are one part, "bias", on each side). Families that normalise q and k (Qwen3 and Gemma 3 per
head, OLMo2 over all heads) get that norm's scale frozen too, at the real q's and k's, so the score stays bilinear.
"""

from __future__ import annotations

import inspect
import sys
from dataclasses import dataclass

import torch
from torch import Tensor

from mechscope.circuits.graphs.graph import AttributionGraph
from mechscope.circuits.graphs.influence import PrunedGraph
from mechscope.circuits.graphs.replacement import PromptState, prompt_state
from mechscope.circuits.graphs.transcoders import GraphError, MLPTranscoders
from mechscope.models.norms import affine, split
from mechscope.models.projections import QKVSlice


@dataclass
class QKAttribution:
    layer: int
    head: int
    query_pos: int
    key_pos: int
    query_labels: list[str]
    key_labels: list[str]
    terms: Tensor  # [n_query_parts, n_key_parts], summing to the attention score

    @property
    def score(self) -> float:
        return float(self.terms.sum())

    def top(self, n: int = 10) -> list[tuple[str, str, float]]:
        """The n largest |terms| as (query part, key part, term)."""
        flat = self.terms.flatten()
        order = flat.abs().argsort(descending=True)[:n].tolist()
        width = self.terms.shape[1]
        return [(self.query_labels[i // width], self.key_labels[i % width], float(flat[i])) for i in order]


def _parts(model, state: PromptState, transcoders: MLPTranscoders, cache: dict, layer: int, pos: int):
    """(labels, vectors [n, d_model]) of the residual stream entering `layer` at `pos`; the last part is "other".
    A feature's vector is what it writes to the MLP outputs before `layer` (all of them for a CLT's)."""
    labels, vectors = [f"token {state.tokens[pos]} @{pos}"], [state.embeddings[pos]]
    for before in range(layer):
        result = cache[f"blocks.{before}.attn.hook_result"][0, pos].float()  # [head, d_model]
        labels += [f"L{before} attn h{h} @{pos}" for h in range(result.shape[0])]
        vectors += list(result)
        here = ((state.features[:, 0] == before) & (state.features[:, 1] == pos)).nonzero().squeeze(1)
        if len(here):
            writes = state.feature_writes(transcoders, here)  # [n, n_out, d] to layers before, before + 1, ...
            labels += [f"L{before} #{int(state.features[i, 2])} @{pos}" for i in here.tolist()]
            vectors += list(writes[:, :layer - before].sum(1))
        labels.append(f"error L{before} @{pos}")
        vectors.append(state.errors[before, pos])
    parts = torch.stack(vectors)
    resid = cache[f"blocks.{layer}.hook_resid_pre"][0, pos].float()
    return labels + [f"other @{pos}"], torch.cat([parts, (resid - parts.sum(0))[None]])


def _normalized_parts(model, cache: dict, layer: int, pos: int, parts: Tensor) -> Tensor:
    """The parts through ln1 with its scale frozen [n + 2, d_model]: linear parts, then the norm's bias, then zero
    (ln1 absent, as in OLMo2: the parts themselves)."""
    family = model.family
    zero = torch.zeros(1, parts.shape[1])
    if family.ln1 is None:
        return torch.cat([parts, zero, zero])
    norm = model.root.get_submodule(f"{family.layers}.{layer}.{family.ln1}")
    centred = parts - parts.mean(-1, keepdim=True) if isinstance(norm, torch.nn.LayerNorm) else parts
    scale = cache[f"blocks.{layer}.ln1.hook_scale"][0, pos].float()
    bias = affine(norm, zero, family.norm_offset)
    return torch.cat([affine(norm, centred / scale, family.norm_offset) - bias, bias, zero])


def _frozen_qk_norm(model, attn, part: str, out: Tensor) -> Tensor:
    """Rows [n + 1, heads, d_head] through the attention's q_norm/k_norm (Qwen3, Gemma 3: per head; OLMo2: over
    every head at once) with its scale frozen at the real q or k, which the rows sum to; unchanged without one."""
    qk_norm = getattr(attn, f"{part}_norm", None)
    if qk_norm is None:
        return out
    rows = out if qk_norm.weight.numel() == out.shape[-1] else out.flatten(1)
    _, scale = split(qk_norm, rows.sum(0))
    return affine(qk_norm, rows / scale, model.family.norm_offset).reshape(out.shape)


def _rotate(model, attn, layer: int, pos: int, out: Tensor) -> Tensor:
    """Rotary embedding of position `pos` applied to every row [n + 1, heads, d_head] (Gemma 3: its layer type's)."""
    rotary = getattr(model.root, "rotary_emb", None)
    if rotary is None:
        return out
    layer_types = getattr(model.hf.config, "layer_types", None)
    extra = (layer_types[layer],) if layer_types and "layer_type" in inspect.signature(rotary.forward).parameters \
        else ()
    cos, sin = rotary(out, torch.tensor([[pos]]), *extra)
    rotate = sys.modules[type(attn).__module__].apply_rotary_pos_emb
    return rotate(out.transpose(0, 1)[None], out.transpose(0, 1)[None], cos.float(), sin.float())[0][0].transpose(0, 1)


def _project(model, cache: dict, layer: int, pos: int, part: str, parts: Tensor) -> Tensor:
    """Each part's contribution to the head-split q or k at `pos` [n + 1, heads, d_head] (last row: the biases),
    norm scales frozen (ln1's, and the per-head q/k norm's where the family has one)."""
    family, info = model.family, model.info
    block = model.root.get_submodule(f"{family.layers}.{layer}")
    attn = block.get_submodule(family.attn_core)
    projection = block.get_submodule(family.qkv[0] if len(family.qkv) == 1 else family.qkv["qkv".index(part)])
    inputs = _normalized_parts(model, cache, layer, pos, parts)
    with torch.no_grad():
        out = QKVSlice(family, part, info.n_heads, info.n_kv_heads, info.d_head).read(
            projection(inputs.to(model.dtype)).float())
        out = torch.cat([out[:-2] - out[-1], out[-2:-1]])  # linear parts; the biases (norm's and projection's) last
        return _rotate(model, attn, layer, pos, _frozen_qk_norm(model, attn, part, out))


def qk_attribution(model, transcoders: MLPTranscoders, prompt: Tensor, layer: int, head: int, query_pos: int,
                   key_pos: int, zero_bos: bool = True) -> QKAttribution:
    """The attention score of `head` in `layer` from `query_pos` to `key_pos`, split over (query part, key part)."""
    family = model.family
    if family.topology != "prenorm" or family.qkv_layout == "interleaved":
        raise GraphError(f"QK attribution supports pre-norm blocks with split or concatenated q/k/v, not "
                         f"{model.info.model_type}")
    attn = model.root.get_submodule(f"{family.layers}.{layer}.{family.attn_core}")
    if not 0 <= key_pos <= query_pos < len(prompt):
        raise GraphError(f"need 0 <= key_pos <= query_pos < {len(prompt)}, got key {key_pos}, query {query_pos}")
    tokens = torch.as_tensor(prompt).reshape(-1)
    state = prompt_state(model, transcoders, tokens, zero_bos)
    names = [f"blocks.{layer}.hook_resid_pre"] + ([f"blocks.{layer}.ln1.hook_scale"] if family.ln1 else [])
    names += [f"blocks.{before}.attn.hook_result" for before in range(layer)]
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens[None], names)
    kv_head = head // (model.info.n_heads // model.info.n_kv_heads)
    q_labels, q_parts = _parts(model, state, transcoders, cache, layer, query_pos)
    k_labels, k_parts = _parts(model, state, transcoders, cache, layer, key_pos)
    queries = _project(model, cache, layer, query_pos, "q", q_parts)[:, head]
    keys = _project(model, cache, layer, key_pos, "k", k_parts)[:, kv_head]
    scaling = getattr(attn, "scaling", model.info.d_head ** -0.5)
    return QKAttribution(layer, head, query_pos, key_pos, q_labels + ["bias"], k_labels + ["bias"],
                         scaling * queries @ keys.T)


def main_path_heads(model, graph: AttributionGraph, pruned: PrunedGraph, n: int = 5) -> list[tuple[int, int, int, int]]:
    """(layer, head, query_pos, key_pos) for the n strongest kept edges that cross positions: the head that attends
    most from the target's position to the source's among the layers between them (attention moves what crosses)."""
    names = [f"blocks.{layer}.attn.hook_pattern" for layer in range(model.n_layers)]
    with torch.no_grad():
        _, cache = model.run_with_cache(graph.tokens[None].to(model.device), names)
    patterns = torch.stack([cache[name][0].float() for name in names])  # [layer, head, q, k]
    found = []
    for edge in (graph.weights.abs() * pruned.edge_mask).argsort(descending=True).tolist():
        if not pruned.edge_mask[edge] or len(found) == n:
            break
        source, target = graph.node(int(graph.sources[edge])), graph.node(int(graph.targets[edge]))
        if source.pos == target.pos:
            continue
        first = 0 if source.kind == "token" else source.layer + 1
        last = min(target.layer, model.n_layers - 1)
        if first > last:
            continue
        span = patterns[first:last + 1, :, target.pos, source.pos]
        layer, head = divmod(int(span.argmax()), span.shape[1])
        if (first + layer, head, target.pos, source.pos) not in found:
            found.append((first + layer, head, target.pos, source.pos))
    return found
