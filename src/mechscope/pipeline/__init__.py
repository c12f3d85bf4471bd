"""`mechscope run CONFIG.toml`: a declarative pipeline of stages run in order into one directory, resumably."""

from mechscope.pipeline.config import PipelineConfig, StageSpec, load_config, parse_config, shipped_configs
from mechscope.pipeline.context import StageContext, StageOutcome
from mechscope.pipeline.runner import RunResult, run_pipeline
from mechscope.pipeline.stages import STAGES, StageKind

__all__ = ["PipelineConfig", "RunResult", "STAGES", "StageContext", "StageKind", "StageOutcome", "StageSpec",
           "load_config", "parse_config", "run_pipeline", "shipped_configs"]
