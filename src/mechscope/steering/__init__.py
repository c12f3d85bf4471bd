"""Steering: directions, interventions (add/ablate/clamp/cap, conditional), weight edits and vector files."""

from mechscope.steering.interventions import (Condition, Intervention, directional_ablation, hook_pairs, steer,
                                              vector_interventions)
from mechscope.steering.targets import Direction, Latent
from mechscope.steering.vectors import SteeringVector

__all__ = ["Condition", "Direction", "Intervention", "Latent", "SteeringVector", "directional_ablation",
           "hook_pairs", "steer", "vector_interventions"]
