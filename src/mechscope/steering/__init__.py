"""Steering and monitoring: vector files, per-token monitors and guards, their calibration."""

from mechscope.steering.exchange import ControlVectorFile, from_repeng, read_control_vector, to_repeng, write_control_vector
from mechscope.steering.monitors import (Alert, LatentScore, LinearScore, Monitor, MonitoredGeneration, MonitorRecord,
                                         monitored_forward, monitored_generate, probe, projection)

__all__ = ["Alert", "ControlVectorFile", "LatentScore", "LinearScore", "Monitor", "MonitorRecord",
           "MonitoredGeneration", "from_repeng", "monitored_forward", "monitored_generate", "probe", "projection",
           "read_control_vector", "to_repeng", "write_control_vector"]
