"""Features: streaming mining, a searchable SQLite catalogue, offline dashboards and Neuronpedia export."""

from mechscope.features.catalog import Catalog, Label, LatentInfo, Score, SearchHit
from mechscope.features.config import MiningConfig
from mechscope.features.dashboard import DashboardResult, write_dashboard
from mechscope.features.examples import ContextExample
from mechscope.features.graph_labels import catalog_labels
from mechscope.features.mine import MiningResult, mine
from mechscope.features.neuronpedia import export_neuronpedia

__all__ = ["Catalog", "ContextExample", "DashboardResult", "Label", "LatentInfo", "MiningConfig", "MiningResult",
           "Score", "SearchHit", "catalog_labels", "export_neuronpedia", "mine", "write_dashboard"]
