"""Steering: directions, interventions (add/ablate/clamp/cap, conditional), weight edits and vector files."""

from mechscope.steering.apply import ApplyConfig, vector_edits
from mechscope.steering.conditional import ThresholdSearch, condition_scores, search_threshold
from mechscope.steering.directions import (Contrast, DirectionConfig, contrast, directions, pca_of_differences,
                                            probe_direction, prompt_inputs, read_positions)
from mechscope.steering.interventions import (Condition, Intervention, directional_ablation, hook_pairs, steer,
                                              vector_interventions)
from mechscope.steering.orthogonalize import orthogonalize, save_orthogonalized
from mechscope.steering.refusal import (RefusalConfig, RefusalDirection, load_refusal_direction, refusal_prompt_sets,
                                         refusal_score, select_refusal_direction)
from mechscope.steering.targets import Direction, Latent
from mechscope.steering.vectors import SteeringVector, latent_vector

__all__ = ["ApplyConfig", "Condition", "Contrast", "Direction", "DirectionConfig", "Intervention", "Latent",
           "RefusalConfig", "RefusalDirection", "SteeringVector", "ThresholdSearch", "condition_scores", "contrast",
           "directional_ablation", "directions", "hook_pairs", "latent_vector", "load_refusal_direction",
           "orthogonalize", "pca_of_differences", "probe_direction", "prompt_inputs", "read_positions",
           "refusal_prompt_sets", "refusal_score", "save_orthogonalized", "search_threshold",
           "select_refusal_direction", "steer", "vector_edits", "vector_interventions"]
