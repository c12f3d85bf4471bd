"""Variant registry: architecture name -> the object that supplies activation and sparsity loss."""

from mechscope.dictionaries.variants.base import StepContext, Variant
from mechscope.dictionaries.variants.jumprelu import JumpReLU
from mechscope.dictionaries.variants.l1 import Gated, ReLU
from mechscope.dictionaries.variants.topk import BatchTopK, Matryoshka, TopK

VARIANTS: dict[str, type[Variant]] = {"relu": ReLU, "topk": TopK, "batchtopk": BatchTopK, "gated": Gated,
                                      "jumprelu": JumpReLU, "matryoshka": Matryoshka}


def make_variant(cfg) -> Variant:
    return VARIANTS[cfg.architecture](cfg)


__all__ = ["VARIANTS", "StepContext", "Variant", "make_variant"]
