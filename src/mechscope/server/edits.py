"""A request's `steering` and `monitors` objects turned into interventions and monitors on the loaded model.

An edit names a loaded vector ({"vector": NAME, "layers": [...]}) or a latent of a loaded dictionary
({"latent": INDEX} or {"latent": {"dictionary": NAME, "index": INDEX}}), an op (add, ablate, clamp, cap), a value,
a token scope and optionally a condition ({"vector"/"latent", "threshold", "above", "per"}): Goodfire's
"if latent A > t then set latent B". A monitor names a target the same way, with a threshold and an action.
"""

from __future__ import annotations

import math

from mechscope.models.positions import SCOPES
from mechscope.server.resources import Resources
from mechscope.server.schema import Fields, RequestError
from mechscope.steering.interventions import OPS, PER, Condition, Intervention
from mechscope.steering.monitors import WATCHES, LatentScore, Monitor, projection
from mechscope.steering.targets import Direction, Latent

ACTIONS = ("score", "stop")


def _latent(fields: Fields, resources: Resources) -> tuple[str, Latent]:
    raw = fields.get("latent", (int, dict))
    where = f"{fields.where}.latent"
    if isinstance(raw, dict):
        spec = Fields(raw, where)
        name = spec.get("dictionary", str, rule=f"one of {sorted(resources.dictionaries)}",
                        ok=lambda v: v in resources.dictionaries)
        index = spec.get("index", int)
        spec.done()
    elif len(resources.dictionaries) == 1:
        name, index = next(iter(resources.dictionaries)), raw
    else:
        raise RequestError(f"{where}: this server holds {len(resources.dictionaries)} dictionaries "
                           f"({sorted(resources.dictionaries)}); name one as {{'dictionary': NAME, 'index': N}}",
                           param=where)
    bound = resources.dictionaries[name]
    if not 0 <= index < bound.dictionary.d_sae:
        raise RequestError(f"{where}: latent {index} does not exist; {name} has {bound.dictionary.d_sae} latents",
                           param=where)
    return bound.hook, Latent(bound, index)


def _targets(fields: Fields, resources: Resources, many_layers: bool) -> list[tuple[str, object]]:
    """(hook, target) pairs an entry names: one per chosen layer of a vector, or one latent."""
    has = [key for key in ("vector", "latent") if key in fields.data]
    if len(has) != 1:
        raise RequestError(f"{fields.where} must name exactly one of 'vector' or 'latent', got {has or 'neither'}",
                           param=fields.where)
    if has[0] == "latent":
        return [_latent(fields, resources)]
    name = fields.get("vector", str, rule=f"one of the loaded vectors {sorted(resources.vectors)}",
                      ok=lambda v: v in resources.vectors)
    vector = resources.vectors[name]
    if many_layers:
        layers = fields.get("layers", list, vector.layers, f"a non-empty subset of {vector.layers}",
                            lambda v: bool(v) and all(isinstance(x, int) and x in vector.vectors for x in v))
    else:
        layers = [fields.get("layer", int, vector.layers[0], f"one of {vector.layers}", lambda v: v in vector.vectors)]
    return [(vector.hook_name(layer), Direction(vector.direction(layer))) for layer in layers]


def _condition(raw, where: str, resources: Resources) -> Condition:
    fields = Fields(raw, where)
    (hook, target), = _targets(fields, resources, many_layers=False)
    condition = Condition(hook, target, fields.get("threshold", float, ok=math.isfinite, rule="(finite)"),
                          above=fields.get("above", bool, True),
                          per=fields.get("per", str, "prompt", f"one of {PER}", lambda v: v in PER))
    fields.done()
    return condition


def interventions(resources: Resources, edits: list, where: str = "steering") -> list[Intervention]:
    """Interventions for `edits` (raw request objects), or a RequestError naming the first bad field."""
    out = []
    for number, raw in enumerate(edits):
        fields = Fields(raw, f"{where}[{number}]")
        targets = _targets(fields, resources, many_layers=True)
        op = fields.get("op", str, "add", f"one of {tuple(OPS)}", lambda v: v in OPS)
        value = fields.get("value", float, 1.0, "(finite)", math.isfinite)
        scope = fields.get("where", str, "all", f"one of {SCOPES}", lambda v: v in SCOPES)
        condition = fields.get("condition", dict, None)
        condition = None if condition is None else _condition(condition, f"{fields.where}.condition", resources)
        fields.done()
        out += [Intervention(hook, target, op, value, scope, condition) for hook, target in targets]
    return out


def monitors(resources: Resources, entries: list) -> list[tuple[str, Monitor]]:
    """(name, Monitor) for each entry of a request's `monitors`."""
    out = []
    for number, raw in enumerate(entries):
        fields = Fields(raw, f"monitors[{number}]")
        (hook, target), = _targets(fields, resources, many_layers=False)
        score = projection(target.vector) if isinstance(target, Direction) else LatentScore(
            target.dictionary.dictionary, target.index)
        name = fields.get("name", str, f"monitor{number}")
        threshold = fields.get("threshold", float, None, "(finite)", math.isfinite)
        action = fields.get("action", str, "score", f"one of {ACTIONS}", lambda v: v in ACTIONS)
        if action == "stop" and threshold is None:
            raise RequestError(f"{fields.where}: action 'stop' needs a threshold", param=f"{fields.where}.threshold")
        watch = fields.get("watch", str, "generated", f"one of {WATCHES}", lambda v: v in WATCHES)
        fields.done()
        out.append((name, Monitor(hook, score, threshold, "stop" if action == "stop" else None, watch)))
    return out
