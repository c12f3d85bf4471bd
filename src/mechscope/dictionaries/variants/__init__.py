"""Variant registry: architecture name -> the object that supplies everything that differs by architecture.

A new variant is one new file in this folder plus one line in VARIANTS.
"""

from mechscope.dictionaries.variants.base import StepContext, Variant
from mechscope.dictionaries.variants.crosscoder import CrossCoder, CrossCoderL1
from mechscope.dictionaries.variants.jumprelu import JumpReLU
from mechscope.dictionaries.variants.l1 import Gated, ReLU
from mechscope.dictionaries.variants.topk import BatchTopK, Matryoshka, TopK
from mechscope.errors import MechscopeError

VARIANTS: dict[str, type[Variant]] = {"relu": ReLU, "topk": TopK, "batchtopk": BatchTopK, "gated": Gated,
                                      "jumprelu": JumpReLU, "matryoshka": Matryoshka,
                                      "crosscoder": CrossCoder, "crosscoder-l1": CrossCoderL1}


def variant_type(architecture: str) -> type[Variant]:
    """The registered Variant class of an architecture name."""
    if architecture not in VARIANTS:
        raise MechscopeError(f"unknown architecture {architecture!r}; expected one of {sorted(VARIANTS)}")
    return VARIANTS[architecture]


def make_variant(cfg) -> Variant:
    return variant_type(cfg.architecture)(cfg)


__all__ = ["VARIANTS", "StepContext", "Variant", "make_variant", "variant_type"]
