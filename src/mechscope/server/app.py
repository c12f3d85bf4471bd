"""The HTTP server: OpenAI-compatible completions with steering and monitors, the feature endpoints, the web app.

A threading server over one model: requests queue for the model's lock (at most `max_waiting` at once, the rest
get 429), streams are Server-Sent Events, and a client that disconnects mid-stream ends its generation and
frees the model. Every bad request is a 4xx with OpenAI's error object; an unexpected failure is a 500 that
names no internals.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

from mechscope.features.catalog import STATUSES
from mechscope.server import completions, features_api, webapp
from mechscope.server import query as query_params
from mechscope.server.config import ServerConfig
from mechscope.server.resources import Resources, SavedCircuit, SavedGraph
from mechscope.server.schema import RequestError, chat_request, completion_request

log = logging.getLogger("mechscope.server")
DRAIN_LIMIT = 64 << 20  # oversized bodies up to this are read and dropped; beyond it the connection is cut


def _reject_constant(name: str):
    raise RequestError(f"the body holds {name}, which is not valid JSON (numbers must be finite)")


class _Waiting:
    """Counts requests that hold or wait for the model; beyond the limit a request is turned away with 429."""

    def __init__(self, limit: int):
        self.limit, self.count, self.lock = limit, 0, threading.Lock()

    def __enter__(self):
        with self.lock:
            if self.count >= self.limit:
                raise RequestError(f"the server is busy ({self.count} requests hold or wait for the model); retry "
                                   "later", status=429, code="rate_limit_exceeded", kind="rate_limit_error")
            self.count += 1

    def __exit__(self, *exc):
        with self.lock:
            self.count -= 1


class Handler(BaseHTTPRequestHandler):
    """One request: route, authorise, validate, run; `server.state` holds resources, config and the queue."""

    protocol_version = "HTTP/1.1"
    server_version = "mechscope"

    def log_message(self, fmt: str, *args) -> None:
        log.info("%s " + fmt, self.address_string(), *args)

    # ----- plumbing ----------------------------------------------------------------------------
    @property
    def state(self) -> "ServerState":
        return self.server.state

    def _send(self, status: int, body: bytes, content_type: str, headers: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, payload: dict) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json")

    def _body(self) -> object:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            raise RequestError("chunked request bodies are not accepted; send Content-Length", status=411)
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            raise RequestError("Content-Length must be an integer") from None
        if length > self.state.config.max_body_bytes:
            self._drain(length)
            raise RequestError(f"the body has {length} bytes, at most {self.state.config.max_body_bytes} are "
                               "accepted", status=413)
        raw = self.rfile.read(length)
        self.consumed = True
        try:
            return json.loads(raw, parse_constant=_reject_constant)
        except (ValueError, RecursionError) as err:
            raise RequestError(f"the body is not valid JSON: {err}"[:300]) from None

    def _drain(self, length: int) -> None:
        """Read and drop an oversized body (up to DRAIN_LIMIT) so the client sees the 413, not a broken pipe."""
        if length > DRAIN_LIMIT:
            return
        while length > 0:
            length -= len(self.rfile.read(min(length, 1 << 16)) or b"\0" * length)
        self.consumed = True

    def _authorise(self) -> None:
        token = self.state.config.token
        if token is not None and self.headers.get("Authorization", "") != f"Bearer {token}":
            raise RequestError("missing or wrong bearer token (Authorization: Bearer ...)", status=401,
                               code="invalid_api_key", kind="authentication_error")

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        self.consumed = False
        try:
            if url.path.startswith("/v1/"):
                self._authorise()
            route, params = self.state.route(method, url.path)
            route(self, params, parse_qs(url.query))
        except RequestError as err:
            if not self.consumed and self.headers.get("Content-Length", "0") != "0":
                self.close_connection = True  # an unread body must not be parsed as the next request
            self._json(err.status, err.body())
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception:  # noqa: BLE001 - the client learns nothing of the internals; the log does
            log.exception("request %s %s failed", method, url.path)
            self._json(500, RequestError("internal server error", status=500, kind="server_error").body())

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_HEAD(self) -> None:
        self._dispatch("GET")

    # ----- streams -----------------------------------------------------------------------------
    def _open_stream(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")  # the stream ends when the connection does
        self.end_headers()
        self.close_connection = True

    def event(self, payload: dict | str) -> None:
        data = payload if isinstance(payload, str) else json.dumps(payload)
        self.wfile.write(f"data: {data}\n\n".encode())
        self.wfile.flush()


# ----- routes --------------------------------------------------------------------------------
def _models(handler: Handler, _params: dict, _query: dict) -> None:
    resources = handler.state.resources
    handler._json(200, {"object": "list", "data": [
        {"id": name, "object": "model", "created": handler.state.started, "owned_by": "mechscope",
         **({"parent": resources.model_id} if name != resources.model_id else {})}
        for name in resources.model_ids()]})


def _completion(parse: Callable) -> Callable:
    def route(handler: Handler, _params: dict, _query: dict) -> None:
        state = handler.state
        request = parse(handler._body(), state.config)
        job = completions.prepare(state.resources, request, state.config)
        with state.waiting:
            if not job.sampling.stream:
                handler._json(200, completions.response(job, completions.run(state.resources, job)))
                return
            handler._open_stream()
            if job.kind == "chat":
                for row in range(len(job.inputs["input_ids"])):
                    handler.event(completions.chunk(job, row, role=True))
            result = completions.run(state.resources, job,
                                     lambda row, text: handler.event(completions.chunk(job, row, text)))
            for index, row in enumerate(result["rows"]):
                if row["rest"]:
                    handler.event(completions.chunk(job, index, row["rest"]))
                extra = {"monitors": row["monitors"]} if job.monitors else None
                handler.event(completions.chunk(job, index, finish=row["finish_reason"], extra=extra))
            if job.sampling.include_usage:
                handler.event(completions.usage_chunk(job, result))
            handler.event("[DONE]")
    return route


def _feature_search(handler: Handler, _params: dict, query: dict) -> None:
    text = query_params.text(query, "q", 500)
    if text is None:
        raise RequestError("query parameter q must be 1..500 characters of search text", param="q")
    limit = query_params.integer(query, "limit", 20, 200)
    handler._json(200, features_api.search(handler.state.resources, text, limit))


LISTING = ("q", "order_by", "descending", "status", "min_density", "max_density", "min_score", "limit", "offset")


def _features(handler: Handler, _params: dict, query: dict) -> None:
    query_params.only(query, LISTING)
    descending = query_params.choice(query, "descending", ("true", "false"), None)
    handler._json(200, features_api.listing(
        handler.state.resources, query_params.text(query, "q", 500),
        query_params.choice(query, "order_by", features_api.ORDERS, "rank"),
        None if descending is None else descending == "true",
        query_params.integer(query, "limit", 50, 500), query_params.integer(query, "offset", 0, 10**9, low=0),
        status=query_params.choice(query, "status", STATUSES, None),
        **{key: query_params.number(query, key) for key in ("min_density", "max_density", "min_score")}))


def _feature(handler: Handler, params: dict, query: dict) -> None:
    if not params["id"].isdigit():
        raise RequestError(f"a feature id is a latent index (digits), got {params['id']!r}", status=404, param="id")
    handler._json(200, features_api.feature(handler.state.resources, int(params["id"]),
                                            query_params.integer(query, "examples", 10, 100)))


def _feature_contrast(handler: Handler, _params: dict, _query: dict) -> None:
    state = handler.state
    if not state.resources.dictionaries:
        raise RequestError("this server was started without a dictionary (--dictionary)", status=404)
    body = handler._body()
    with state.waiting:
        handler._json(200, features_api.contrast(state.resources, body))


def _saved(handler: Handler, collection: str, name: str) -> SavedGraph | SavedCircuit:
    saved = getattr(handler.state.resources, collection)
    if name not in saved:
        raise RequestError(f"no {collection[:-1]} named {name!r}; this server has {sorted(saved)}", status=404,
                           param="id")
    return saved[name]


def _saved_list(collection: str) -> Callable:
    """GET /v1/graphs or /v1/circuits: every saved item with its summary and the page that shows it."""
    def route(handler: Handler, _params: dict, _query: dict) -> None:
        handler._json(200, {"object": "list", "data": [
            {"id": name, "object": collection[:-1], "viewer": f"/{collection}/{name}", **item.summary}
            for name, item in sorted(getattr(handler.state.resources, collection).items())]})
    return route


def _saved_file(collection: str, kind: str) -> Callable:
    def route(handler: Handler, params: dict, _query: dict) -> None:
        path = getattr(_saved(handler, collection, params["id"]), kind)
        content_type = "text/html; charset=utf-8" if path.suffix == ".html" else "application/json"
        handler._send(200, path.read_bytes(), content_type)
    return route


def _resources(handler: Handler, _params: dict, _query: dict) -> None:
    handler._json(200, webapp.describe(handler.state.resources))


def _app_page(handler: Handler, _params: dict, _query: dict) -> None:
    handler._send(200, webapp.asset("index.html"), webapp.content_type("index.html"),
                  {"Content-Security-Policy": webapp.POLICY})


def _asset(handler: Handler, params: dict, _query: dict) -> None:
    name = params["name"]
    if name not in webapp.ASSETS:
        raise RequestError(f"no asset named {name!r}", status=404, param="name")
    handler._send(200, webapp.asset(name), webapp.content_type(name))


def _health(handler: Handler, _params: dict, _query: dict) -> None:
    handler._json(200, {"status": "ok", "model": handler.state.resources.model_id})


ROUTES: list[tuple[str, str, Callable]] = [
    ("GET", "/health", _health),
    ("GET", "/v1/models", _models),
    ("POST", "/v1/chat/completions", _completion(chat_request)),
    ("POST", "/v1/completions", _completion(completion_request)),
    ("GET", "/v1/resources", _resources),
    ("GET", "/v1/features", _features),
    ("GET", "/v1/features/search", _feature_search),
    ("POST", "/v1/features/contrast", _feature_contrast),
    ("GET", "/v1/features/{id}", _feature),
    ("GET", "/v1/graphs", _saved_list("graphs")),
    ("GET", "/v1/graphs/{id}", _saved_file("graphs", "neuronpedia")),
    ("GET", "/v1/graphs/{id}/qk", _saved_file("graphs", "qk")),
    ("GET", "/graphs/{id}", _saved_file("graphs", "viewer")),
    ("GET", "/v1/circuits", _saved_list("circuits")),
    ("GET", "/v1/circuits/{id}", _saved_file("circuits", "result")),
    ("GET", "/circuits/{id}", _saved_file("circuits", "heatmap")),
    ("GET", "/", _app_page),
    ("GET", "/assets/{name}", _asset),
]


class ServerState:
    """What every handler shares."""

    def __init__(self, resources: Resources, config: ServerConfig, routes=ROUTES):
        self.resources, self.config, self.routes = resources, config, routes
        self.waiting = _Waiting(config.max_waiting)
        self.started = int(time.time())

    def route(self, method: str, path: str) -> tuple[Callable, dict]:
        parts = [unquote(p) for p in path.strip("/").split("/")]
        allowed = False
        for verb, pattern, route in self.routes:
            names = pattern.strip("/").split("/")
            if len(names) != len(parts):
                continue
            params = {n[1:-1]: p for n, p in zip(names, parts) if n.startswith("{")}
            if all(n.startswith("{") or n == p for n, p in zip(names, parts)):
                if verb == method:
                    return route, params
                allowed = True
        if allowed:
            raise RequestError(f"{method} is not allowed on {path}", status=HTTPStatus.METHOD_NOT_ALLOWED)
        raise RequestError(f"no such endpoint: {method} {path}", status=404, code="not_found")


def make_server(resources: Resources, config: ServerConfig = ServerConfig()) -> ThreadingHTTPServer:
    """A server bound to config.host:config.port (port 0: any free port; see server.server_address)."""
    from mechscope.server import edits

    for name, variant in resources.variants.items():
        edits.interventions(resources, variant, f"variant {name!r}")  # a bad variant fails at start
    server = ThreadingHTTPServer((config.host, config.port), Handler)
    server.daemon_threads = True
    server.state = ServerState(resources, config)
    return server


def serve(resources: Resources, config: ServerConfig = ServerConfig()) -> None:
    """Serve until interrupted (Ctrl-C), printing where."""
    server = make_server(resources, config)
    host, port = server.server_address[:2]
    print(f"mechscope: serving {resources.model_id} at http://{host}:{port}/v1 (OpenAI-compatible)\n"
          f"mechscope: web app at http://{host}:{port}/", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
