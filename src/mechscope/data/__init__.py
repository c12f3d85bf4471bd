"""Data: text sources, packing into windows, activation harvest, the on-disk cache and streaming."""

from mechscope.data.cache import ActivationCache
from mechscope.data.harvester import HarvestConfig, harvest
from mechscope.data.packing import WindowLayout, pack
from mechscope.data.pydocs_corpus import pydocs
from mechscope.data.sources import TextSource, text_source
from mechscope.data.streaming import stream_batches

__all__ = ["ActivationCache", "HarvestConfig", "TextSource", "WindowLayout", "harvest", "pack", "pydocs",
           "stream_batches", "text_source"]
