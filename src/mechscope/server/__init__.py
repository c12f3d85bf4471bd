"""`mechscope serve`: an OpenAI-compatible API with steering and monitors, feature, graph and circuit endpoints
and the web app at `/`, over one model."""

from mechscope.server.app import make_server, serve
from mechscope.server.config import ServerConfig
from mechscope.server.resources import (Resources, load_circuits, load_dictionaries, load_graphs, load_variants,
                                        load_vectors)
from mechscope.server.schema import RequestError

__all__ = ["RequestError", "Resources", "ServerConfig", "load_circuits", "load_dictionaries", "load_graphs",
           "load_variants", "load_vectors", "make_server", "serve"]
