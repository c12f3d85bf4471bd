"""Jailbreak fingerprints: the dictionary latents that fire on a jailbreak wrapper (role-play, hypothetical
framing, adversarial-looking suffixes) and not on the same requests asked plainly. Per wrapper kind, latents are
ranked by the AUROC of their per-prompt maximum activation, wrapped against plain, like for like (the same
requests on both sides), with their catalogue labels where a catalogue is given."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mechscope.errors import SteeringError
from mechscope.dictionaries.contrast import max_codes, rank_latents
from mechscope.tasks.jailbreak import WrappedRequest, jailbreak_set


@dataclass(frozen=True)
class FingerprintConfig:
    """Which requests are wrapped and how many latents each wrapper kind lists."""

    split: str = "test"  # the refusal task's split the harmful requests come from
    n: int = 40  # requests, each asked plainly and under every wrapper kind
    top: int = 10  # latents listed per kind
    chat: bool = True  # read prompts through the chat template where the model has one
    batch_size: int = 8
    seed: int = 0


def jailbreak_fingerprint(model, bound, config: FingerprintConfig = FingerprintConfig(), catalog=None,
                          requests: Sequence[WrappedRequest] | None = None) -> dict:
    """{"hook", "n", "kinds": {kind: [latent entries]}}: per wrapper kind the latents that separate wrapped from
    plain requests best (AUROC, then mean difference), labelled from `catalog` when given."""
    requests = list(requests) if requests is not None else jailbreak_set(config.split, config.n, seed=config.seed)
    by_kind: dict[str, list[str]] = {}
    for request in requests:
        by_kind.setdefault(request.kind, []).append(request.text)
    if "plain" not in by_kind or len(by_kind) < 2:
        raise SteeringError(f"a fingerprint needs plain requests and at least one wrapper kind; got kinds "
                            f"{sorted(by_kind)}")
    plain = max_codes(model, bound, by_kind.pop("plain"), config.batch_size, config.chat)
    kinds = {}
    for kind, texts in by_kind.items():
        ranked = rank_latents(max_codes(model, bound, texts, config.batch_size, config.chat), plain, config.top)
        kinds[kind] = [{**entry, "label": _label(catalog, entry["latent"])} for entry in ranked["positive"]]
    return {"hook": bound.hook, "n": len(plain), "kinds": kinds}


def _label(catalog, latent: int) -> str | None:
    if catalog is None:
        return None
    labels = catalog.get(latent).labels
    return labels[-1].text if labels else None
