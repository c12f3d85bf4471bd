"""Data: text sources (pydocs, sotu, files, mixes), packing into windows, activation harvest, the on-disk cache and streaming."""

from mechscope.data.cache import ActivationCache
from mechscope.data.harvester import HarvestConfig, harvest
from mechscope.data.packing import WindowLayout, pack
from mechscope.data.paired import PairedActivations, TokenizerMismatchError, harvest_pair
from mechscope.data.pydocs_corpus import pydocs
from mechscope.data.sotu_corpus import speeches as sotu_speeches
from mechscope.data.sources import TextSource, mix_sources, text_source
from mechscope.data.streaming import stream_batches

__all__ = ["ActivationCache", "HarvestConfig", "PairedActivations", "TextSource", "TokenizerMismatchError",
           "WindowLayout", "harvest", "harvest_pair", "mix_sources", "pack", "pydocs", "sotu_speeches", "stream_batches",
           "text_source"]
