"""Steering and monitoring: directions, interventions (add/ablate/clamp/cap, conditional), weight edits, vector
files (safetensors, GGUF control vectors, repeng), per-token monitors and guards, and their calibration."""

from mechscope.steering.calibration import Calibration, CalibrationConfig, calibrate, calibrate_monitor, prompt_scores
from mechscope.steering.exchange import (ControlVectorFile, from_repeng, read_control_vector, to_repeng,
                                         write_control_vector)
from mechscope.steering.monitors import (Alert, LatentScore, LinearScore, Monitor, MonitoredGeneration, MonitorRecord,
                                         monitored_forward, monitored_generate, probe, projection)
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

__all__ = ["Alert", "ApplyConfig", "Calibration", "CalibrationConfig", "Condition", "Contrast", "ControlVectorFile",
           "Direction", "DirectionConfig", "Intervention", "Latent", "LatentScore", "LinearScore", "Monitor",
           "MonitorRecord", "MonitoredGeneration", "RefusalConfig", "RefusalDirection", "SteeringVector",
           "ThresholdSearch", "calibrate", "calibrate_monitor", "condition_scores", "contrast",
           "directional_ablation", "directions", "from_repeng", "hook_pairs", "latent_vector",
           "load_refusal_direction", "monitored_forward", "monitored_generate", "orthogonalize", "pca_of_differences",
           "probe", "probe_direction", "projection", "prompt_inputs", "prompt_scores", "read_control_vector",
           "read_positions", "refusal_prompt_sets", "refusal_score", "save_orthogonalized", "search_threshold",
           "select_refusal_direction", "steer", "to_repeng", "vector_edits", "vector_interventions",
           "write_control_vector"]
