"""Models: HookedModel over any supported HF model, its hook points and architecture adapters."""

from mechscope.models.families import FAMILIES, SUPPORTED, Family
from mechscope.models.generation import Generation, GenerationConfig
from mechscope.models.hook_points import HookPoint
from mechscope.models.hooked_model import HookedModel, ModelInfo, StopForward
from mechscope.models.loading import load_model, minilm_path, wrap
from mechscope.models.positions import Positions, scoped

__all__ = ["FAMILIES", "SUPPORTED", "Family", "Generation", "GenerationConfig", "HookPoint", "HookedModel",
           "ModelInfo", "StopForward", "Positions", "load_model", "minilm_path", "scoped", "wrap"]
