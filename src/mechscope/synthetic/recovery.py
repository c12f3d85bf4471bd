"""Feature recovery: how well learned directions match known true ones (MMCS, matched fraction, MCC)."""

from __future__ import annotations

from torch import Tensor


def feature_recovery(true_directions: Tensor, learned: Tensor, threshold: float = 0.9) -> dict[str, float]:
    """How well learned directions (rows) recover the true ones.

    mmcs: mean over true features of the max cosine to any learned direction; matched: fraction of true
    features with such a cosine above `threshold`; mcc: mean |cosine| under the best one-to-one
    (Hungarian) matching, which, unlike mmcs, cannot count one learned direction twice.
    """
    from scipy.optimize import linear_sum_assignment

    true = true_directions / true_directions.norm(dim=1, keepdim=True)
    found = learned / learned.norm(dim=1, keepdim=True).clamp_min(1e-12)
    cos = (true @ found.T).detach().float().cpu()
    best = cos.max(dim=1).values
    rows, cols = linear_sum_assignment(-cos.abs().numpy())
    mcc = cos.abs()[rows, cols].sum().item() / true.shape[0]
    return {"mmcs": best.mean().item(), "matched": (best > threshold).float().mean().item(), "mcc": mcc}
