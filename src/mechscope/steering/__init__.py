"""Steering and monitoring: directions (incl. CAA and ITI), interventions (add/ablate/clamp/cap/scale, conditional),
weight edits, vector files (safetensors, GGUF control vectors, repeng), per-token monitors and guards, their
calibration, and a conditional jailbreak defence."""

from mechscope.steering.ablation_search import (AblationParams, AblationSearch, AblationSearchConfig, ablation_edits,
                                               interpolated_direction, search_ablation)
from mechscope.steering.calibration import Calibration, CalibrationConfig, calibrate, calibrate_monitor, prompt_scores
from mechscope.steering.exchange import (ControlVectorFile, from_repeng, read_control_vector, to_repeng,
                                         write_control_vector)
from mechscope.steering.monitors import (Alert, LatentScore, LinearScore, Monitor, MonitoredGeneration, MonitorRecord,
                                         monitored_forward, monitored_generate, probe, projection)
from mechscope.steering.apply import ApplyConfig, vector_edits
from mechscope.steering.caa import (ABTokens, CAAConfig, LayerSweep, ab_tokens, behaviour_probability, caa, caa_vector,
                                    layer_sweep)
from mechscope.steering.concept import ConceptConfig, ConceptSteering, concept_steering, latent_concept
from mechscope.steering.conditional import ThresholdSearch, condition_scores, search_threshold
from mechscope.steering.defence import (ConditionalRefusal, DefenceConfig, DefenceReport, conditional_refusal,
                                       jailbreak_defence, refusal_by_kind)
from mechscope.steering.directions import (Contrast, DirectionConfig, LinearProbe, contrast, directions, fit_probe,
                                            pca_of_differences, probe_direction, prompt_inputs, read_positions,
                                            token_inputs)
from mechscope.steering.interventions import (Condition, Intervention, directional_ablation, hook_pairs, steer,
                                              vector_interventions)
from mechscope.steering.fingerprint import FingerprintConfig, jailbreak_fingerprint
from mechscope.steering.iti import (ITI, HeadShift, ITIConfig, bake_iti, fit_iti, head_activations,
                                   truth_margin)
from mechscope.steering.orthogonalize import orthogonalize, save_orthogonalized
from mechscope.steering.persona import (EmbeddingJudge, LLMJudge, PersonaConfig, PersonaVector, evaluate_persona,
                                        persona_vector)
from mechscope.steering.traits import TRAITS, Trait, load_traits
from mechscope.steering.refusal import (NoRefusalCandidate, RefusalCandidates, RefusalConfig, RefusalDirection,
                                         drop_reason, load_refusal_direction, refusal_prompt_sets, refusal_score,
                                         score_refusal_candidates, select_refusal_direction)
from mechscope.steering.refusal_effect import RefusalEffect, RefusalRates, refusal_effect, refusal_rates
from mechscope.steering.targets import Direction, Latent
from mechscope.steering.vectors import SteeringVector, latent_vector

__all__ = ["ABTokens", "AblationParams", "AblationSearch", "AblationSearchConfig", "Alert", "ApplyConfig", "CAAConfig", "Calibration", "ConceptConfig", "ConceptSteering", "CalibrationConfig", "Condition",
           "ConditionalRefusal", "Contrast", "ControlVectorFile", "DefenceConfig", "DefenceReport", "Direction",
           "DirectionConfig", "FingerprintConfig", "EmbeddingJudge", "LLMJudge", "PersonaConfig", "PersonaVector", "TRAITS", "Trait", "HeadShift", "ITI", "ITIConfig", "Intervention", "Latent", "LatentScore", "LayerSweep",
           "LinearProbe", "LinearScore", "Monitor", "MonitorRecord", "MonitoredGeneration", "NoRefusalCandidate",
           "RefusalCandidates", "RefusalConfig", "RefusalDirection", "RefusalEffect", "RefusalRates", "SteeringVector",
           "ThresholdSearch", "ab_tokens", "ablation_edits", "bake_iti", "behaviour_probability", "caa", "caa_vector", "calibrate",
           "calibrate_monitor", "concept_steering", "condition_scores", "conditional_refusal", "contrast", "directional_ablation",
           "directions", "drop_reason", "evaluate_persona", "load_traits", "persona_vector", "fit_iti", "fit_probe", "from_repeng", "head_activations", "hook_pairs", "interpolated_direction",
           "jailbreak_defence", "jailbreak_fingerprint", "latent_concept", "latent_vector", "layer_sweep", "load_refusal_direction", "monitored_forward",
           "monitored_generate", "orthogonalize", "pca_of_differences", "probe", "probe_direction", "projection",
           "prompt_inputs", "prompt_scores", "read_control_vector", "read_positions", "refusal_by_kind",
           "refusal_effect", "refusal_prompt_sets", "refusal_rates", "refusal_score", "save_orthogonalized",
           "score_refusal_candidates", "search_ablation", "search_threshold", "select_refusal_direction", "steer", "to_repeng",
           "token_inputs", "truth_margin", "vector_edits", "vector_interventions", "write_control_vector"]
