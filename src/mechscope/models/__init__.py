"""Models: HookedModel over any supported HF model, its hook points and architecture adapters."""

from mechscope.models.families import FAMILIES, SUPPORTED, Family
from mechscope.models.hook_points import HookPoint
from mechscope.models.hooked_model import HookedModel, ModelInfo, StopForward
from mechscope.models.loading import load_model, minilm_path, wrap

__all__ = ["FAMILIES", "SUPPORTED", "Family", "HookPoint", "HookedModel", "ModelInfo", "StopForward",
           "load_model", "minilm_path", "wrap"]
