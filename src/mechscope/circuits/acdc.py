"""ACDC (Conmy et al. 2023): visit destinations in reverse topological order and remove each incoming edge whose
removal raises the objective (KL to the full model, or a negated task metric) by less than tau.

Removing an edge patches it from the replacement run (mask 1 in the edge engine). One edge per forward pass is
the reference algorithm; here the candidates into one destination are evaluated speculatively, a window of
`max_copies` at a time stacked along the batch: row k removes candidate k from the state sequential ACDC would
reach if the guesses for the window's candidates < k hold. Decisions are taken up to the first wrong guess; the
next window starts after it, so a wrong guess wastes at most the rest of one pass. Guesses: an edge whose removal
was already measured in a wasted row (on a state one decision off) is guessed from that effect, any other edge
as the majority of this destination's decisions so far ("removed" first: circuits are sparse). The kept set is
therefore exactly sequential ACDC's. Destinations of nodes with no outgoing edge left cannot reach the logits,
so their edges are removed without a pass (as in the reference). While the destinations of block l are visited,
no edge into an earlier block has been touched, so blocks < l compute the plain run: each pass resumes the
recorded run at block l (models.resume), the cached prefix, and unembeds only the positions the objective reads.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from mechscope.circuits.edge_patching import SourceValues, edge_hooks, flat_differences, source_values
from mechscope.circuits.graph import EdgeGraph
from mechscope.circuits.patching import ReadoutLogits, metric_per_copy, resumed_metric
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
                 objective: Objective, max_copies: int, readout: Tensor | None):
        self.model, self.graph, self.replacement = model, graph, replacement
        self.objective, self.max_copies = objective, max_copies
        self.logits_at = None if readout is None else ReadoutLogits(readout)
        self.run = model.record(inputs)
        _, clean = source_values(model, graph, inputs)
        self.diffs = flat_differences(replacement, clean)
        self.passes = self.rows = self.blocks = 0

    def __call__(self, removed: Tensor, layer: int = 0) -> Tensor:
        """Mean objective of each circuit [copies]: `removed` [copies, n_sources, n_destinations] is patched;
        no edge into a block before `layer` may be removed."""
        known = {g.hook: self.diffs[g.hook] for g in self.graph.source_groups if self.model.layer_of(g.hook) < layer}
        values = []
        for chunk in removed.split(self.max_copies):
            with self.model.hooks(edge_hooks(self.graph, chunk.float(), self.replacement, known=known)):
                values.append(resumed_metric(self.model, self.run, len(chunk), self.objective, layer,
                                             logits_at=self.logits_at))
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
    """Decide every candidate edge into `dst` as sequential ACDC would, speculating on the decisions a window at a
    time (see the module doc); returns the objective after them."""
    graph = evaluate.graph
    measured: dict[int, bool] = {}  # candidate -> kept, judged from a wasted row's effect
    decisions: list[bool] = []  # kept, for each decided candidate in order
    while candidates:
        window = candidates[:evaluate.max_copies]
        prior = 2 * sum(decisions) > len(decisions)
        guess_keep = [measured.get(src, prior) for src in window]
        rows = torch.zeros(len(window), *kept.shape, dtype=torch.bool)
        state = ~kept
        for k, src in enumerate(window):
            rows[k] = state
            rows[k, src, dst] = True  # row k: the guessed state before candidate k, with k removed
            if not guess_keep[k]:
                state = rows[k]
        values = evaluate(rows, layer).tolist()
        base, done = current, len(window)  # base: the objective of row k's guessed state without candidate k
        for k, src in enumerate(window):
            effect = values[k] - base
            if k < done:
                effects[f"{graph.sources[src]}->{graph.destinations[dst]}"] = effect
                keep = effect >= tau
                decisions.append(keep)
                if not keep:
                    kept[src, dst] = False
                    current = values[k]
                if keep != guess_keep[k]:  # a wrong guess: the rows after k assumed the other state
                    done = k + 1
            else:
                measured[src] = effect >= tau
            if not guess_keep[k]:
                base = values[k]
        candidates = candidates[done:]
    return current


def acdc(model: HookedModel, graph: EdgeGraph, inputs: dict, replacement: SourceValues, objective: Objective,
         config: ACDCConfig = ACDCConfig(), readout: Tensor | None = None) -> ACDCResult:
    """Prune `graph` on `inputs` (patched edges carry `replacement`), minimising `objective`; `readout` [batch]: the
    positions whose logits the objective reads (None: all are unembedded)."""
    if config.max_copies < 1:
        raise MechscopeError(f"max_copies must be >= 1 candidate circuit per pass, got {config.max_copies}")
    evaluate = _Evaluator(model, graph, inputs, replacement, objective, config.max_copies, readout)
    kept = graph.real.clone()
    current = float(metric_per_copy(evaluate.run.output, objective, len(inputs["input_ids"]))[0])  # the clean run
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
               taus: Sequence[float], max_copies: int = 16,
               readout: Tensor | None = None) -> tuple[dict[str, float], list[ACDCResult]]:
    """Edge ranking from ACDC at several thresholds: each edge scores the largest tau at which it is kept
    (0 where it never is), the ROC procedure of Conmy et al. 2023."""
    if not taus:
        raise MechscopeError("acdc_sweep needs at least one threshold tau")
    scores = dict.fromkeys(graph.edge_names, 0.0)
    runs = []
    for tau in sorted(taus):
        run = acdc(model, graph, inputs, replacement, objective, ACDCConfig(tau=tau, max_copies=max_copies), readout)
        runs.append(run)
        for edge in run.edges:
            scores[edge] = max(scores[edge], tau)
    return scores, runs
