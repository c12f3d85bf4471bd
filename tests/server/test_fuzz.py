"""Property-based fuzzing of every endpoint: any JSON body, query or path gets a well-formed answer below 500."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from urllib.parse import urlencode

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from mechscope.server.app import LISTING
from tests.server.conftest import call

JSON = st.recursive(st.none() | st.booleans() | st.integers(-2**40, 2**40) | st.floats(allow_nan=False,
                    allow_infinity=False) | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                                                 max_size=4), max_leaves=12)
KEYS = ["model", "messages", "prompt", "max_tokens", "temperature", "top_p", "stop", "stream", "seed", "steering",
        "monitors", "n", "positive", "negative", "dictionary", "top"]
EDIT_KEYS = ["vector", "latent", "layers", "layer", "op", "value", "where", "condition", "threshold", "action",
             "watch", "name", "index", "dictionary", "above", "per"]
EDIT = st.dictionaries(st.sampled_from(EDIT_KEYS), JSON | st.sampled_from(["push", "add", "clamp", "stop", "all"])
                       | st.integers(-3, 30), max_size=5)
VALID = {"model": "tiny-chat", "messages": [{"role": "user", "content": "the cat"}], "max_tokens": 2}
BODIES = (JSON | st.dictionaries(st.sampled_from(KEYS), JSON, max_size=6)
          | st.builds(lambda extra: {**VALID, **extra}, st.dictionaries(st.sampled_from(KEYS[3:]), JSON, max_size=3))
          | st.builds(lambda edits, key: {**VALID, key: edits}, st.lists(EDIT, max_size=3),
                      st.sampled_from(["steering", "monitors"])))
POSTS = ["/v1/chat/completions", "/v1/completions", "/v1/features/contrast"]
GETS = st.sampled_from(["/v1/models", "/v1/features/", "/v1/features/search", "/health", "/v1/", "/v1/features",
                        "/v1/resources", "/v1/circuits/", "/v1/graphs/", "/assets/", "/"]).flatmap(
    lambda base: st.text(alphabet="abc019?=&%/.q", max_size=12).map(lambda tail: base + tail))
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                          HealthCheck.too_slow])


def _well_formed(status: int, body: dict) -> None:
    assert status < 500, body
    if status >= 400:
        assert set(body["error"]) == {"message", "type", "param", "code"} and body["error"]["message"]


@FUZZ
@given(path=st.sampled_from(POSTS), body=BODIES)
def test_any_post_body_gets_an_answer_below_500(served, path, body):
    url, _ = served
    if isinstance(body, dict) and body.get("stream") is True:
        body = {**body, "stream": False}  # streams answer 200 then events; covered by their own tests
    _well_formed(*call(url, path, body))


@FUZZ
@given(path=GETS)
def test_any_get_path_gets_an_answer_below_500(served, path):
    url, _ = served
    try:  # pages and assets answer HTML, JS or CSS; errors are always JSON
        with urllib.request.urlopen(url + path.replace(" ", "%20"), timeout=60) as response:
            assert response.status == 200
    except urllib.error.HTTPError as err:
        _well_formed(err.code, json.loads(err.read()))


LISTING_QUERIES = st.dictionaries(st.sampled_from([*LISTING, "extra"]), st.sampled_from(
    ["", " ", "-1", "0", "1", "1e9", "nan", "inf", "0.05", "cat", "latent", "score", "rank", "true", "dead"])
    | st.floats().map(str) | st.text(max_size=8), max_size=5)


@FUZZ
@given(query=LISTING_QUERIES)
@example(query={"limit": "\u00b9"})  # a superscript digit: str.isdigit() says yes, int() says no
def test_any_feature_listing_query_gets_an_answer_below_500(served, query):
    url, _ = served
    _well_formed(*call(url, "/v1/features?" + urlencode(query)))
