"""A dictionary bound to one hook of one model: loaded, width-checked, on the model's device, ready to splice.

Evaluation, mining, steering and circuits all start here, so the checks and the splice are written once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from torch import Tensor

from mechscope.dictionaries.dictionary import Dictionary
from mechscope.dictionaries.formats import load_dictionary
from mechscope.errors import MechscopeError
from mechscope.models.splice import splice_fn


@dataclass
class BoundDictionary:
    """`dictionary` reads and writes `hook` of `model`; `path` is where it was loaded from (None: in memory)."""

    model: object
    dictionary: Dictionary
    hook: str
    path: Path | None = None

    def reconstruct(self, x: Tensor, error_term: bool = False) -> Tensor:
        """x_hat [n, d_in]; with `error_term`, x_hat + (x - x_hat) with the error detached (Marks et al. 2024):
        the forward value is x, while gradients and patches flow through the dictionary's latents."""
        x_hat = self.dictionary(x.to(self.dictionary.W_enc.dtype)).to(x.dtype)
        return x_hat + (x - x_hat).detach() if error_term else x_hat

    def splice(self, error_term: bool = False):
        """A hook function replacing the hook's activations with their reconstruction."""
        return splice_fn(lambda x: self.reconstruct(x, error_term))


def bind_dictionary(model, dictionary, hook: str | None = None) -> BoundDictionary:
    """Load `dictionary` (a Dictionary, or a path in any supported format) at `hook` (default: the hook its
    config records) of `model`, check that the hook's width is its d_in and move it to the model's device."""
    path = Path(dictionary) if isinstance(dictionary, (str, Path)) else None
    loaded = load_dictionary(path) if path is not None else dictionary
    hook = hook or loaded.cfg.hook_name
    if not hook:
        raise MechscopeError("the dictionary records no hook_name; pass hook=...")
    width = math.prod(model.hook_shape(hook)[2:])
    if width != loaded.d_in:
        raise MechscopeError(f"{hook} has width {width} in {model.info.name}, the dictionary expects d_in={loaded.d_in}")
    return BoundDictionary(model, loaded.to(model.device).eval(), hook, path)
