"""ACDC (Conmy et al. 2023): visit destinations in reverse topological order and remove each incoming edge whose
removal raises the objective (KL to the full model, or a negated task metric) by less than tau.

Removing an edge patches it from the replacement run (mask 1 in the edge engine). One edge per forward pass is
the reference algorithm; here the candidates into one destination are evaluated speculatively in one stacked
forward: row k removes candidate k from the state sequential ACDC would reach if the guesses for candidates
< k hold. The first guess is "removed" for every edge (circuits are sparse); after the first wrong guess the
rest are guessed from each edge's removal effect on its own (one more pass), and at each wrong guess the rows
after it are recomputed. The kept set is therefore exactly sequential ACDC's. Destinations of nodes with no
outgoing edge left cannot reach the logits, so their edges are removed without a pass (as in the reference).
While the destinations of block l are visited, no edge into an earlier block has been touched, so blocks < l
compute the plain run: each pass resumes the recorded run at block l (models.resume), the cached prefix.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from mechscope.circuits.edge_patching import SourceValues, edge_hooks, source_values
from mechscope.circuits.graph import EdgeGraph
from mechscope.circuits.patching import metric_per_copy
from mechscope.errors import MechscopeError
from mechscope.models import HookedModel

Objective = Callable[[Tensor], Tensor]  # logits [rows, pos, vocab] -> [rows], lower is better (e.g. KL to clean)


@dataclass(frozen=True)
class ACDCConfig:
    """Threshold and batching of one ACDC run."""

    tau: float = 0.01  # remove an edge when the objective rises by less than this
    max_copies: int = 16  # candidate circuits stacked along the batch in one forward pass (memory bound)


@dataclass
class ACDCResult:
    """The kept edges, each visited edge's objective increase when it was tested, and the passes it took."""

    graph: EdgeGraph
    kept: Tensor  # [n_sources, n_destinations] bool
    effects: dict[str, float]  # edge -> objective increase its removal caused when visited (skipped: absent)
    objective: float  # the final circuit's objective
    forward_passes: int = 0
    rows: int = 0  # candidate circuits evaluated (what one-edge-per-forward ACDC would need passes for)
    blocks: int = 0  # transformer blocks computed over all rows (a full forward computes n_layers)
    skipped: int = 0  # edges removed without a pass because their destination cannot reach the logits
    trace: list[dict] = field(default_factory=list, repr=False)

    @property
    def edges(self) -> set[str]:
        return self.graph.edges_in(self.kept)


class _Evaluator:
    """The objective of stacked candidate circuits on one batch of prompts, resumed at a block; counts passes."""

    def __init__(self, model: HookedModel, graph: EdgeGraph, inputs: dict, replacement: SourceValues,
                 objective: Objective, max_copies: int):
        self.model, self.graph, self.replacement = model, graph, replacement
        self.objective, self.max_copies = objective, max_copies
        self.run = model.record(inputs)
        _, clean = source_values(model, graph, inputs)
        self.diffs = {hook: replacement[hook].to(value.dtype) - value for hook, value in clean.items()}
        self.prompts = len(inputs["input_ids"])
        self.passes = self.rows = self.blocks = 0

    def __call__(self, removed: Tensor, layer: int = 0) -> Tensor:
        """Mean objective of each circuit [copies]: `removed` [copies, n_sources, n_destinations] is patched;
        no edge into a block before `layer` may be removed."""
        known = {g.hook: self.diffs[g.hook] for g in self.graph.source_groups if self.model.layer_of(g.hook) < layer}
        values = []
        for chunk in removed.split(self.max_copies):
            with torch.no_grad(), self.model.hooks(edge_hooks(self.graph, chunk.float(), self.replacement,
                                                              known=known)):
                logits = self.model.resume(self.run, len(chunk), layer)
            values.append(metric_per_copy(logits, self.objective, self.prompts))
            self.passes += 1
            self.rows += len(chunk)
            self.blocks += len(chunk) * (self.model.n_layers - layer)
        return torch.cat(values)


def _reaches_logits(graph: EdgeGraph, kept: Tensor, dst: int) -> bool:
    """Whether any node the destination feeds still has an outgoing edge (the logits always count)."""
    names = graph.destination_nodes(dst)
    if names == ("logits",):
        return True
    return any(bool(kept[graph.sources.index(name)].any()) for name in names)


def _visit(evaluate: _Evaluator, kept: Tensor, dst: int, layer: int, candidates: list[int], current: float,
           tau: float, effects: dict[str, float]) -> float:
    """Decide every candidate edge into `dst` as sequential ACDC would, speculating on the decisions; returns
    the objective after them. Rows follow a guess for each earlier candidate (removed, until a guess fails;
    then each remaining edge's removal effect on its own), so a pass is wasted only where a guess is wrong."""
    graph = evaluate.graph
    guess_keep = [False] * len(candidates)
    informed = False
    while candidates:
        rows = torch.zeros(len(candidates), *kept.shape, dtype=torch.bool)
        state = ~kept
        for k, src in enumerate(candidates):
            rows[k] = state
            rows[k, src, dst] = True  # row k: the guessed state before candidate k, with k removed
            if not guess_keep[k]:
                state = rows[k]
        values = evaluate(rows, layer)
        done = len(candidates)
        for k, src in enumerate(candidates):
            effect = float(values[k]) - current
            effects[f"{graph.sources[src]}->{graph.destinations[dst]}"] = effect
            removed = effect < tau
            if removed:
                kept[src, dst] = False
                current = float(values[k])
            if removed == guess_keep[k]:  # a wrong guess: the rows after k assumed the other state
                done = k + 1
                break
        candidates, guess_keep = candidates[done:], guess_keep[done:]
        if candidates and not informed:  # a guess failed: guess the rest from their effects alone
            alone = torch.zeros(len(candidates), *kept.shape, dtype=torch.bool)
            for k, src in enumerate(candidates):
                alone[k] = ~kept
                alone[k, src, dst] = True
            guess_keep = [bool(v - current >= tau) for v in evaluate(alone, layer).tolist()]
            informed = True
    return current


def acdc(model: HookedModel, graph: EdgeGraph, inputs: dict, replacement: SourceValues, objective: Objective,
         config: ACDCConfig = ACDCConfig()) -> ACDCResult:
    """Prune `graph` on `inputs` (patched edges carry `replacement`), minimising `objective`."""
    if config.max_copies < 1:
        raise MechscopeError(f"max_copies must be >= 1 candidate circuit per pass, got {config.max_copies}")
    evaluate = _Evaluator(model, graph, inputs, replacement, objective, config.max_copies)
    kept = graph.real.clone()
    current = float(metric_per_copy(evaluate.run.output, objective, evaluate.prompts)[0])  # the recorded clean run
    effects: dict[str, float] = {}
    skipped = 0
    trace = []
    for dst in reversed(range(graph.n_destinations)):
        candidates = [int(s) for s in reversed(kept[:, dst].nonzero().flatten().tolist())]
        if not candidates:
            continue
        if not _reaches_logits(graph, kept, dst):
            kept[candidates, dst] = False
            skipped += len(candidates)
            continue
        layer = model.layer_of(next(g.hook for g in graph.destination_groups if g.start <= dst < g.stop))
        current = _visit(evaluate, kept, dst, layer, candidates, current, config.tau, effects)
        trace.append({"destination": graph.destinations[dst], "kept": int(kept[:, dst].sum()),
                      "objective": current})
    return ACDCResult(graph, kept, effects, current, evaluate.passes, evaluate.rows, evaluate.blocks, skipped, trace)


def acdc_sweep(model: HookedModel, graph: EdgeGraph, inputs: dict, replacement: SourceValues, objective: Objective,
               taus: Sequence[float], max_copies: int = 16) -> tuple[dict[str, float], list[ACDCResult]]:
    """Edge ranking from ACDC at several thresholds: each edge scores the largest tau at which it is kept
    (0 where it never is), the ROC procedure of Conmy et al. 2023."""
    if not taus:
        raise MechscopeError("acdc_sweep needs at least one threshold tau")
    scores = dict.fromkeys(graph.edge_names, 0.0)
    runs = []
    for tau in sorted(taus):
        run = acdc(model, graph, inputs, replacement, objective, ACDCConfig(tau=tau, max_copies=max_copies))
        runs.append(run)
        for edge in run.edges:
            scores[edge] = max(scores[edge], tau)
    return scores, runs
