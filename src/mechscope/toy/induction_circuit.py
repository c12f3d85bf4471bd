"""The induction circuit of a trained model, as MIB edges read off its head detectors (Olsson et al. 2022).

Previous-token heads K-compose with induction heads in later layers, which write the copied token to the
logits. A head counts as one kind when its detector score (circuits.head_scores, on repeated random
tokens) reaches `share` of the best score of that kind, so a mechanism spread over several heads is kept.
"""

from __future__ import annotations

from torch import Tensor

from mechscope.circuits import head_scores
from mechscope.errors import MechscopeError
from mechscope.models import HookedModel


def _heads(scores: Tensor, share: float) -> list[tuple[int, int]]:
    """(layer, head) of every head scoring at least `share` of the best."""
    return [(int(l), int(h)) for l, h in (scores >= share * scores.max()).nonzero().tolist()]


def induction_circuit(model: HookedModel, tokens: Tensor | None = None, share: float = 0.5,
                      with_inputs: bool = False) -> frozenset[str]:
    """Edges P->I<k> for each previous-token head P and induction head I in a later layer, and I->logits.

    with_inputs adds what the mechanism reads from the embedding: input->P<v> (the token P moves),
    input->I<q> (the current token I looks for) and input->I<v> (the token I copies).
    """
    if not 0 < share <= 1:
        raise MechscopeError(f"share must be in (0, 1], got {share}")
    scores = head_scores(model, tokens, ("previous_token", "induction"))
    previous = _heads(scores["previous_token"].values, share)
    first = min(layer for layer, _ in previous)
    later = scores["induction"].values.clone()
    later[:first + 1] = 0
    induction = _heads(later, share) if later.max() > 0 else []
    if not induction:
        raise MechscopeError(f"no induction head after layer {first}, where the first previous-token head is; "
                             "the model has no induction circuit for these detectors")
    composing = [(lp, p) for lp, p in previous if any(li > lp for li, _ in induction)]
    edges = {f"a{lp}.h{p}->a{li}.h{i}<k>" for lp, p in composing for li, i in induction if li > lp}
    edges |= {f"a{li}.h{i}->logits" for li, i in induction}
    if with_inputs:
        edges |= {f"input->a{lp}.h{p}<v>" for lp, p in composing}
        edges |= {f"input->a{li}.h{i}<{port}>" for li, i in induction for port in "qv"}
    return frozenset(edges)
