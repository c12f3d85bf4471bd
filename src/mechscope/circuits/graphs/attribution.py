"""Attribution: every node's direct effect on every active feature's pre-activation and on each logit target.

As in circuit-tracer's `attribute` (safety-research/circuit-tracer, attribution.py): one forward pass of the local
replacement model over `batch_size` copies of the prompt, then one backward pass per batch of targets, each copy
injecting one target's gradient (a feature's encoder column at its input, or a logit's demeaned unembedding at the
final norm's output); the gradient at each node's output dotted with that output is the edge weight. Unlike it,
rows go straight into a sparse edge list (optionally only each row's strongest edges), so the dense
[nodes, nodes] matrix never exists, and the memory a run needs is estimated before the backward passes start.
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass

import torch
from torch import Tensor
from tqdm.auto import tqdm

from mechscope.circuits.graphs.config import GraphConfig
from mechscope.circuits.graphs.graph import AttributionGraph
from mechscope.circuits.graphs.influence import influence, normalized_weights
from mechscope.circuits.graphs.replacement import FrozenRun, PromptState, prompt_state
from mechscope.circuits.graphs.transcoders import MLPTranscoders
from mechscope.circuits.graphs.targets import LogitTargets, named_targets, salient_logits

EDGE_BYTES = 20  # target and source (int64) and weight (float32)


@dataclass
class MemoryEstimate:
    """Bytes a graph needs, known after the first forward pass and before any backward pass."""

    n_features: int
    n_nodes: int
    n_rows: int
    forward_bytes: int  # the replacement model's autograd graph over `batch_size` copies
    batch_bytes: int  # one batch of gradients and rows, every feature's encoder and (padded) decoder rows
    edge_bytes: int  # the stored edges (an upper bound: every source of every row)
    dense_bytes: int  # what circuit-tracer's dense [rows, nodes] float32 matrix would take

    @property
    def total_bytes(self) -> int:
        return self.forward_bytes + self.batch_bytes + self.edge_bytes

    def __str__(self) -> str:
        mib = 2 ** 20
        return (f"{self.n_features} active features, {self.n_nodes} nodes, {self.n_rows} rows: about "
                f"{self.total_bytes / mib:.0f} MiB (forward graph {self.forward_bytes / mib:.0f}, batch "
                f"{self.batch_bytes / mib:.0f}, edges {self.edge_bytes / mib:.0f}); a dense adjacency would take "
                f"{self.dense_bytes / mib:.0f} MiB")


def memory_estimate(model, state: PromptState, n_logits: int, config: GraphConfig,
                    transcoders: MLPTranscoders | None = None) -> MemoryEstimate:
    """Bytes for the autograd graph (per copy and layer: the frozen pattern, and about eight [pos, d_model]
    tensors the norms, value and output projections keep), one batch, the features' encoder rows and decoder rows
    (one per MLP output each writes to, from `transcoders`, one each without; padded to the most features at any
    position) and the edge list."""
    info, n_pos, n_features = model.info, len(state.tokens), len(state.features)
    n_nodes = n_features + (model.n_layers + 1) * n_pos + n_logits
    n_rows = min(n_features, config.max_feature_nodes or n_features) + n_logits
    per_copy = model.n_layers * 4 * (info.n_heads * n_pos * n_pos + 8 * n_pos * info.d_model)
    n_sources = n_nodes - n_logits
    batch = 4 * config.batch_size * ((model.n_layers + 2) * n_pos * info.d_model + 2 * n_sources)
    writes = 0  # decoder rows the padded layout holds: per encoder layer, outputs x positions x slots
    for layer in state.features[:, 0].unique().tolist():
        positions, _, _, width = padded_slots(state.features[state.features[:, 0] == layer, 1])
        n_out = 1 if transcoders is None else transcoders.decoder_rows(transcoders.layers.index(layer),
                                                                       slice(0, 1)).shape[1]
        writes += n_out * len(positions) * width
    per_row = min(config.edges_per_row or n_sources, n_sources)
    return MemoryEstimate(n_features, n_nodes, n_rows, per_copy * config.batch_size,
                          batch + 4 * (writes + n_features) * info.d_model, EDGE_BYTES * n_rows * per_row,
                          4 * n_rows * n_nodes)


class _PaddedWrites:
    """What one encoder layer's active features write, laid out [n_out, positions, slots, d_model] (slot = the
    feature's rank among its position's features), so their direct effects are one batched matmul per output
    layer against the gradients at those positions, with no [copies, n_features, d_model] gather."""

    def __init__(self, state: PromptState, transcoders: MLPTranscoders, chosen: Tensor):
        self.positions, self.index, self.slot, width = padded_slots(state.features[chosen, 1])
        i = transcoders.layers.index(int(state.features[chosen[0], 0]))
        n_out = transcoders.decoder_rows(i, slice(0, 1)).shape[1]
        self.outputs = transcoders.layers[i:i + n_out]
        self.rows = state.errors.new_zeros(n_out, len(self.positions), width, state.errors.shape[-1])
        for part in torch.arange(len(chosen), device=chosen.device).split(4096):
            writes = state.feature_writes(transcoders, chosen[part])  # [n, n_out, d]
            self.rows[:, self.index[part], self.slot[part]] = writes.transpose(0, 1)

    def effects(self, grads: dict[int, Tensor]) -> Tensor:
        """[copies, n]: each feature's output (over every MLP output it writes to) dotted with the gradient there."""
        total = sum(torch.bmm(rows, grads[layer][:, self.positions].permute(1, 2, 0))  # [positions, slots, copies]
                    for rows, layer in zip(self.rows, self.outputs))
        return total[self.index, self.slot].T


def padded_slots(positions: Tensor) -> tuple[Tensor, Tensor, Tensor, int]:
    """For features sorted by position: the distinct positions, each feature's index among them and rank within its
    position (its slot), and the most features at any one position (the slots per position)."""
    distinct, counts = positions.unique_consecutive(return_counts=True)
    index = torch.arange(len(distinct), device=positions.device).repeat_interleave(counts)
    slot = torch.arange(len(positions), device=positions.device) - (counts.cumsum(0) - counts)[index]
    return distinct, index, slot, int(counts.max()) if len(counts) else 0


class _RowWriter:
    """Turns a batch of backward passes into edge rows, kept sparse."""

    def __init__(self, run: FrozenRun, state: PromptState, transcoders: MLPTranscoders, n_logits: int, keep: int):
        self.run, self.state, self.keep = run, state, keep
        self.encoders = state.encoder_vectors(transcoders)
        layers = state.features[:, 0]
        self.writers = [_PaddedWrites(state, transcoders, (layers == layer).nonzero().squeeze(1))
                        for layer in layers.unique(sorted=True).tolist()]
        self.n_sources = len(state.features) + (run.model.n_layers + 1) * len(state.tokens)
        self.edges: list[tuple[Tensor, Tensor, Tensor]] = []

    def _sources(self, embed_grad: Tensor, grads: dict[int, Tensor]) -> Tensor:
        """[copies, n_sources]: each node's output dotted with the gradient at it (a feature's over every MLP output
        it writes to)."""
        state = self.state
        columns = [writer.effects(grads) for writer in self.writers]
        columns += [torch.einsum("bpd,pd->bp", grads[layer], state.errors[layer]) for layer in sorted(grads)]
        columns.append(torch.einsum("bpd,pd->bp", embed_grad, state.embeddings))
        return torch.cat(columns, 1)

    def _store(self, nodes: Tensor, rows: Tensor) -> None:
        for node, row in zip(nodes.tolist(), rows):
            if self.keep and self.keep < row.numel():
                sources = row.abs().topk(self.keep).indices
                sources = sources[row[sources] != 0]
            else:
                sources = row.nonzero().squeeze(1)
            self.edges.append((torch.full_like(sources, node).cpu(), sources.cpu(), row[sources].cpu()))

    def _zeros(self) -> Tensor:
        return torch.zeros(self.run.copies, *self.state.embeddings.shape, device=self.state.embeddings.device)

    def logits(self, nodes: Tensor, vectors: Tensor) -> None:
        injection = self._zeros()
        injection[torch.arange(len(nodes)), -1] = vectors.to(injection.device)
        embed_grad, grads = self.run.gradients({"final": injection})
        self._store(nodes, self._sources(embed_grad, grads)[:len(nodes)])

    def features(self, chosen: Tensor) -> None:
        injections = {}
        chosen = chosen.to(self.state.features.device)
        feats = self.state.features[chosen]
        for layer in feats[:, 0].unique().tolist():
            rows = (feats[:, 0] == layer).nonzero().squeeze(1)
            injection = self._zeros()
            injection[rows, feats[rows, 1]] = self.encoders[chosen[rows]]
            injections[layer] = injection
        embed_grad, grads = self.run.gradients(injections)
        self._store(chosen.cpu(), self._sources(embed_grad, grads)[:len(chosen)])

    def tensors(self) -> tuple[Tensor, Tensor, Tensor]:
        if not self.edges:
            return torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long), torch.zeros(0)
        targets, sources, weights = zip(*self.edges)
        return torch.cat(targets), torch.cat(sources), torch.cat(weights)


def _tokens(model, prompt) -> Tensor:
    tokens = model.to_tokens(prompt)[0] if isinstance(prompt, str) else torch.as_tensor(prompt).reshape(-1)
    return tokens.to(model.device)


def _feature_order(writer: _RowWriter, n_features: int, n_nodes: int, config: GraphConfig, logit_probs: Tensor,
                   logit_start: int):
    """Batches of feature indices: all of them in order, or (with max_feature_nodes) the most influential
    unvisited ones given the rows so far, re-ranked every four batches (as circuit-tracer does)."""
    limit = min(config.max_feature_nodes or n_features, n_features)
    if limit == n_features:
        yield from torch.arange(n_features).split(config.batch_size)
        return
    visited = torch.zeros(n_features, dtype=torch.bool)
    start = torch.zeros(n_nodes)
    start[logit_start:] = logit_probs.cpu()
    while int(visited.sum()) < limit:
        targets, sources, weights = writer.tensors()
        ranked = influence(targets, sources, normalized_weights(targets, weights, n_nodes), start)[:n_features]
        order = ranked.argsort(descending=True)
        pending = order[~visited[order]][:min(4 * config.batch_size, limit - int(visited.sum()))]
        visited[pending] = True
        yield from pending.split(config.batch_size)


def attribute(model, transcoders: MLPTranscoders, prompt, config: GraphConfig | None = None,
              targets: LogitTargets | None = None, progress: bool = False) -> AttributionGraph:
    """The attribution graph of `prompt` (text or token ids) through `transcoders`; targets default to the likeliest
    next tokens (config.targets names others; `targets` takes any, e.g. a direction)."""
    config = config or GraphConfig()
    started = time.perf_counter()
    tokens = _tokens(model, prompt)
    state = prompt_state(model, transcoders, tokens, config.zero_bos)
    probs = state.logits[-1].softmax(-1)
    if targets is None:
        targets = (named_targets(model, config.targets, probs) if config.targets
                   else salient_logits(model, state.logits[-1], config.max_logits, config.logit_probability))
    estimate = memory_estimate(model, state, len(targets), config, transcoders)
    if progress:
        print(f"attribution graph: {estimate}", file=sys.stderr)
    n_features = len(state.features)
    logit_start = n_features + (model.n_layers + 1) * len(tokens)
    run = FrozenRun(model, transcoders, state, config.batch_size)
    writer = _RowWriter(run, state, transcoders, len(targets), config.edges_per_row)
    for chunk in torch.arange(len(targets)).split(config.batch_size):
        writer.logits(chunk + logit_start, targets.vectors[chunk])
    limit = min(config.max_feature_nodes or n_features, n_features)
    bar = tqdm(total=limit, desc="feature rows", disable=not progress)
    for chunk in _feature_order(writer, n_features, logit_start + len(targets), config, targets.probabilities,
                                logit_start):
        writer.features(chunk)
        bar.update(len(chunk))
    bar.close()
    edge_targets, sources, weights = writer.tensors()
    named = model.tokenizer is not None
    info = {"model": model.info.name, "prompt": model.to_string(tokens) if named else None,
            "transcoders": transcoders.kind,
            "transcoder_layers": list(transcoders.layers), "input_hook": transcoders.input_hook,
            "output_hook": transcoders.output_hook, "config": asdict(config),
            "memory_estimate": {**asdict(estimate), "total_bytes": estimate.total_bytes},
            "seconds": round(time.perf_counter() - started, 3)}
    return AttributionGraph(
        tokens=tokens.cpu(), token_labels=model.to_str_tokens(tokens) if named else [str(t) for t in tokens.tolist()],
        features=state.features.cpu(), activations=state.activations.cpu(), n_layers=model.n_layers,
        logit_tokens=targets.tokens.cpu(), logit_labels=targets.labels, logit_probabilities=targets.probabilities.cpu(),
        logit_values=(targets.vectors @ state.final_residual[-1]).cpu(), targets=edge_targets, sources=sources,
        weights=weights, info=info)
