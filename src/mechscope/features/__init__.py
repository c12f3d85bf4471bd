"""Features: streaming mining, a searchable SQLite catalogue, offline dashboards and Neuronpedia export."""

from mechscope.features.catalog import Catalog, Label, LatentInfo, Score, SearchHit
from mechscope.features.config import MiningConfig
from mechscope.features.examples import ContextExample
from mechscope.features.mine import MiningResult, mine

__all__ = ["Catalog", "ContextExample", "Label", "LatentInfo", "MiningConfig", "MiningResult", "Score", "SearchHit",
           "mine"]
