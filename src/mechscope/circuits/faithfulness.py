"""How faithful a circuit is: the metric with every edge outside it ablated, normalised between the empty
circuit and the whole model, f(C) = (m(C) - m(empty)) / (m(model) - m(empty)); over MIB's edge budgets the
area under f is CPR and the area between f and 1 is CMD (Mueller et al. 2025; MIB circuit track,
MIB_circuit_track/evaluation.py `evaluate_area_under_curve`: trapezoids over the fractions, linear axis).
"""

from __future__ import annotations

import torch
from torch import Tensor

from mechscope.circuits.edge_patching import SourceValues, run_with_edges
from mechscope.circuits.graph import EdgeGraph
from mechscope.circuits.patching import Metric, checked_metric
from mechscope.errors import MechscopeError
from mechscope.models import HookedModel

MIB_FRACTIONS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)  # of the graph's edges


def circuit_metrics(model: HookedModel, graph: EdgeGraph, inputs: dict, replacement: SourceValues,
                    circuits: Tensor, metric: Metric, max_rows: int = 64) -> Tensor:
    """Mean metric [n_circuits] of `inputs` with every edge outside each circuit (bool [n_circuits, n_sources,
    n_destinations]) patched from `replacement`; as many circuits per forward pass as `max_rows` rows allow."""
    rows = len(inputs["input_ids"])
    per_forward = max(1, max_rows // rows)
    values = []
    with torch.no_grad():
        for start in range(0, len(circuits), per_forward):
            masks = (graph.real & ~circuits[start:start + per_forward]).float()
            logits = run_with_edges(model, graph, inputs, masks, replacement).float()
            values += [checked_metric(metric, part, rows).mean().cpu() for part in logits.split(rows)]
    return torch.stack(values)


def faithfulness(values: Tensor, model_value: float, empty_value: float) -> Tensor:
    """(m(C) - m(empty)) / (m(model) - m(empty)) for circuit metrics `values`."""
    if abs(model_value - empty_value) < 1e-12:
        raise MechscopeError(f"the model and the empty circuit score the same ({model_value:.4g}); faithfulness "
                             "is undefined: the task's clean and ablated runs do not differ")
    return (values - empty_value) / (model_value - empty_value)


def area(fractions: list[float], values: list[float]) -> float:
    """Trapezoid area under `values` over `fractions` (MIB's CPR when values are faithfulness)."""
    return sum((x2 - x1) * (y1 + y2) / 2 for x1, x2, y1, y2 in zip(fractions, fractions[1:], values, values[1:]))


def cpr_cmd(fractions: list[float], values: list[float]) -> dict[str, float]:
    """CPR: area under the faithfulness curve (higher is better); CMD: area between it and 1 (lower is better)."""
    return {"cpr": area(fractions, values), "cmd": area(fractions, [abs(1 - v) for v in values])}
