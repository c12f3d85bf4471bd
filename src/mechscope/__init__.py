"""mechscope: mechanistic-interpretability engineering on Hugging Face transformers."""

from mechscope.errors import MechscopeError
from mechscope.models import HookedModel, load_model

__version__ = "0.1.0"

__all__ = ["HookedModel", "MechscopeError", "__version__", "load_model"]
