"""Steering and monitoring: vector files, per-token monitors and guards, their calibration."""

from mechscope.steering.calibration import Calibration, CalibrationConfig, calibrate, calibrate_monitor, prompt_scores
from mechscope.steering.exchange import (ControlVectorFile, from_repeng, read_control_vector, to_repeng,
                                         write_control_vector)
from mechscope.steering.monitors import (Alert, LatentScore, LinearScore, Monitor, MonitoredGeneration, MonitorRecord,
                                         monitored_forward, monitored_generate, probe, projection)

__all__ = ["Alert", "Calibration", "CalibrationConfig", "ControlVectorFile", "LatentScore", "LinearScore", "Monitor",
           "MonitorRecord", "MonitoredGeneration", "calibrate", "calibrate_monitor", "from_repeng", "monitored_forward",
           "monitored_generate", "probe", "projection", "prompt_scores", "read_control_vector", "to_repeng",
           "write_control_vector"]
