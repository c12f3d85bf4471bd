"""ACDC (Conmy et al. 2023): visit destinations in reverse topological order and remove each incoming edge whose
removal raises the objective (KL to the full model, or a negated task metric) by less than tau.

Removing an edge patches it from the replacement run (mask 1 in the edge engine). One edge per forward pass is
the reference algorithm; here the search is speculative: one pass stacks, along the batch, as many candidate
circuits as fit the memory budget (`memory_gb`, by the edge engine's estimate of what the rows hold), running on
through the next destinations. Row k removes candidate k from the state sequential ACDC would reach if the guesses
for the candidates before it hold (destinations that cannot reach the logits under those guesses lose their edges
on the way, as below). Decisions are taken up to the first wrong guess; the next pass starts after it, so a wrong
guess wastes at most the rest of one pass. Guesses: an edge whose removal was measured in a wasted row (on a state
a decision or so off) is guessed from the latest such effect; any other edge from the majority of the decisions so
far ("removed" first: circuits are sparse). The kept set is
therefore exactly sequential ACDC's. Destinations of nodes with no outgoing edge left cannot reach the logits, so
their edges are removed without a pass (as in the reference). While the destinations of block l and later are
visited, no edge into an earlier block has been touched, so blocks < l compute the plain run: each pass resumes
the recorded run at the lowest block its rows reach (models.resume), the cached prefix, and unembeds only the
positions the objective reads.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import torch
from torch import Tensor

from mechscope.circuits.edge_differences import row_kinds
from mechscope.circuits.edge_patching import SourceValues, edge_hooks, flat_differences, memory_estimate, source_values
from mechscope.circuits.graph import EdgeGraph
from mechscope.circuits.patching import ReadoutLogits, metric_per_copy, resumed_metric
from mechscope.errors import MechscopeError
from mechscope.models import HookedModel

Objective = Callable[[Tensor], Tensor]  # logits [rows, pos, vocab] -> [rows], lower is better (e.g. KL to clean)


@dataclass(frozen=True)
class ACDCConfig:
    """Threshold and batching of one ACDC run."""

    tau: float = 0.01  # remove an edge when the objective rises by less than this
    memory_gb: float = 4.0  # candidate circuits are stacked in one pass while its estimated memory fits this
    max_copies: int = 0  # at most this many candidate circuits per pass (0: as many as memory_gb allows)


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
    most_copies: int = 0  # the most candidate circuits one pass stacked
    trace: list[dict] = field(default_factory=list, repr=False)

    @property
    def edges(self) -> set[str]:
        return self.graph.edges_in(self.kept)


class _Evaluator:
    """The objective of stacked candidate circuits on one batch of prompts, resumed at a block; counts passes and
    says whether one more row fits the memory budget."""

    def __init__(self, model: HookedModel, graph: EdgeGraph, inputs: dict, replacement: SourceValues,
                 objective: Objective, config: ACDCConfig, readout: Tensor | None):
        self.model, self.graph, self.replacement = model, graph, replacement
        self.objective, self.config = objective, config
        self.logits_at = None if readout is None else ReadoutLogits(readout)
        self.run = model.record(inputs)
        _, clean = source_values(model, graph, inputs)
        self.diffs = flat_differences(replacement, clean)
        self.group_of = torch.cat([torch.full((g.size,), i) for i, g in enumerate(graph.source_groups)])
        self.passes = self.rows = self.blocks = self.most = 0

    def estimate(self, copies: int, held: int) -> dict:
        """memory_estimate of a pass of `copies` rows holding `held` mixed source differences."""
        prompts, n_pos = self.run.inputs["input_ids"].shape
        positions = None if self.logits_at is None else len(self.logits_at.positions)
        return memory_estimate(self.model, self.graph, prompts, n_pos, grad=False, copies=copies, held=held,
                               known=True, positions=positions)

    def mixed_per_group(self, removed: Tensor) -> Tensor:
        """How many sources of each source group one row [n_sources, n_destinations] holds (edge_differences)."""
        full, zero = row_kinds(self.graph, removed[None].float())
        return torch.zeros(len(self.graph.source_groups)).index_add_(0, self.group_of, (~(full | zero))[0].float())

    def fits(self, copies: int, held: int) -> bool:
        cap = self.config.max_copies
        budget = self.config.memory_gb * 2**30
        return (not cap or copies <= cap) and self.estimate(copies, held)["total_bytes"] <= budget

    def __call__(self, removed: Tensor, layer: int = 0) -> Tensor:
        """Mean objective of each circuit [copies] in one pass: `removed` [copies, n_sources, n_destinations] is
        patched; no edge into a block before `layer` may be removed."""
        known = {g.hook: self.diffs[g.hook] for g in self.graph.source_groups if self.model.layer_of(g.hook) < layer}
        with self.model.hooks(edge_hooks(self.graph, removed.float(), self.replacement, known=known)):
            values = resumed_metric(self.model, self.run, len(removed), self.objective, layer, logits_at=self.logits_at)
        self.passes += 1
        self.rows += len(removed)
        self.most = max(self.most, len(removed))
        self.blocks += len(removed) * (self.model.n_layers - layer)
        return values


def _reaches_logits(graph: EdgeGraph, kept: Tensor, dst: int) -> bool:
    """Whether any node the destination feeds still has an outgoing edge (the logits always count)."""
    names = graph.destination_nodes(dst)
    if names == ("logits",):
        return True
    return any(bool(kept[graph.sources.index(name)].any()) for name in names)


@dataclass
class _Step:
    """One step of sequential ACDC: test `src` -> `dst` (row `row` of a pass), or remove every edge in `skipped`
    into a destination that cannot reach the logits; `after`: where the search stands once it is taken."""

    dst: int
    after: tuple[int, tuple[int, ...] | None]  # (position in the visiting order, candidates left there or None)
    src: int = -1
    row: int = -1
    guess_keep: bool = True
    skipped: tuple[int, ...] = ()


class _Search:
    """Sequential ACDC's state (kept edges, where the visit stands, the objective) advanced a window at a time."""

    def __init__(self, evaluate: _Evaluator, tau: float, current: float):
        self.evaluate, self.graph, self.tau, self.current = evaluate, evaluate.graph, tau, current
        self.kept = self.graph.real.clone()
        self.order = list(reversed(range(self.graph.n_destinations)))
        self.at: tuple[int, tuple[int, ...] | None] = (0, None)
        self.measured: dict[tuple[int, int], bool] = {}  # (src, dst) -> kept, judged from a wasted row's effect
        self.decisions: list[bool] = []  # kept, for each decided edge in order
        self.effects: dict[str, float] = {}
        self.skipped = 0
        self.trace: list[dict] = []

    def guess(self, src: int, dst: int) -> bool:
        return self.measured.get((src, dst), 2 * sum(self.decisions) > len(self.decisions))

    def window(self) -> tuple[list[_Step], Tensor]:
        """The steps sequential ACDC takes from here if the guesses hold, and the rows of the pass testing them."""
        state, steps, rows = self.kept.clone(), [], []
        most = torch.zeros(len(self.graph.source_groups))
        position, left = self.at
        while position < len(self.order):
            dst = self.order[position]
            if left is None:
                left = tuple(reversed(state[:, dst].nonzero().flatten().tolist()))
                if left and not _reaches_logits(self.graph, state, dst):
                    state[list(left), dst] = False
                    steps.append(_Step(dst, (position + 1, None), skipped=left))
                    position, left = position + 1, None
                    continue
            if not left:
                position, left = position + 1, None
                continue
            row = ~state
            row[left[0], dst] = True
            widest = torch.maximum(most, self.evaluate.mixed_per_group(row))
            if rows and not self.evaluate.fits(len(rows) + 1, (len(rows) + 1) * int(widest.sum())):
                break
            rows.append(row)
            most = widest
            keep = self.guess(left[0], dst)
            if not keep:
                state[left[0], dst] = False
            src, left = left[0], left[1:]
            steps.append(_Step(dst, (position, left) if left else (position + 1, None), src, len(rows) - 1, keep))
            position, left = steps[-1].after
        return steps, torch.stack(rows) if rows else torch.zeros(0)

    def advance(self) -> bool:
        """Take the next window's steps up to the first wrong guess; False once every destination is visited."""
        steps, rows = self.window()
        if not steps:
            return False
        values: list[float] = []
        if len(rows):
            last = steps[max(i for i, step in enumerate(steps) if step.row >= 0)].dst
            hook = next(g.hook for g in self.graph.destination_groups if g.start <= last < g.stop)
            values = self.evaluate(rows, self.evaluate.model.layer_of(hook)).tolist()
        base, wrong = self.current, False  # base: the objective of a row's guessed state without its candidate
        for step in steps:
            if step.row < 0:
                if not wrong:
                    self.kept[list(step.skipped), step.dst] = False
                    self.skipped += len(step.skipped)
                    self.at = step.after
                continue
            effect = values[step.row] - base
            if wrong:
                self.measured[(step.src, step.dst)] = effect >= self.tau
            else:
                wrong = self.decide(step, effect, values[step.row]) != step.guess_keep
            if not step.guess_keep:
                base = values[step.row]
        return True

    def decide(self, step: _Step, effect: float, value: float) -> bool:
        """Keep or remove the step's edge as sequential ACDC does; returns whether it is kept."""
        self.effects[f"{self.graph.sources[step.src]}->{self.graph.destinations[step.dst]}"] = effect
        keep = effect >= self.tau
        self.decisions.append(keep)
        if not keep:
            self.kept[step.src, step.dst] = False
            self.current = value
        self.at = step.after
        if step.after[1] is None:  # the destination is done
            self.trace.append({"destination": self.graph.destinations[step.dst],
                               "kept": int(self.kept[:, step.dst].sum()), "objective": self.current,
                               "passes": self.evaluate.passes, "rows": self.evaluate.rows})
        return keep


def acdc(model: HookedModel, graph: EdgeGraph, inputs: dict, replacement: SourceValues, objective: Objective,
         config: ACDCConfig = ACDCConfig(), readout: Tensor | None = None) -> ACDCResult:
    """Prune `graph` on `inputs` (patched edges carry `replacement`), minimising `objective`; `readout` [batch]: the
    positions whose logits the objective reads (None: all are unembedded)."""
    if config.memory_gb <= 0 or config.max_copies < 0:
        raise MechscopeError(f"acdc needs memory_gb > 0 and max_copies >= 0 (0: no cap); got memory_gb="
                             f"{config.memory_gb}, max_copies={config.max_copies}")
    evaluate = _Evaluator(model, graph, inputs, replacement, objective, config, readout)
    clean = float(metric_per_copy(evaluate.run.output, objective, len(inputs["input_ids"]))[0])
    search = _Search(evaluate, config.tau, clean)
    while search.advance():
        pass
    return ACDCResult(graph, search.kept, search.effects, search.current, evaluate.passes, evaluate.rows,
                      evaluate.blocks, search.skipped, evaluate.most, search.trace)


def acdc_sweep(model: HookedModel, graph: EdgeGraph, inputs: dict, replacement: SourceValues, objective: Objective,
               taus: Sequence[float], config: ACDCConfig = ACDCConfig(),
               readout: Tensor | None = None) -> tuple[dict[str, float], list[ACDCResult]]:
    """Edge ranking from ACDC at several thresholds (`config` but its tau): each edge scores the largest tau at
    which it is kept (0 where it never is), the ROC procedure of Conmy et al. 2023."""
    if not taus:
        raise MechscopeError("acdc_sweep needs at least one threshold tau")
    scores = dict.fromkeys(graph.edge_names, 0.0)
    runs = []
    for tau in sorted(taus):
        run = acdc(model, graph, inputs, replacement, objective, replace(config, tau=tau), readout)
        runs.append(run)
        for edge in run.edges:
            scores[edge] = max(scores[edge], tau)
    return scores, runs
