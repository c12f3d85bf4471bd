"""A tiny chat GPT-2 (word tokenizer with a chat template), a saved vector, a ReLU dictionary with a catalogue,
and a running server over them on a free loopback port."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request

import pytest
import torch

import mechscope
from mechscope.dictionaries import Dictionary, DictionaryConfig
from mechscope.dictionaries.binding import bind_dictionary
from mechscope.features import Catalog, mine
from mechscope.server import Resources, ServerConfig, make_server
from mechscope.steering import SteeringVector
from tests.conftest import tiny_hf, word_tokenizer
from tests.features.conftest import MINE, TEXT, WORDS

CHAT_WORDS = WORDS + ["system", "user", "assistant", ":", "|"]
TEMPLATE = ("{% for m in messages %}{{ m['role'] }} : {{ m['content'] }} | {% endfor %}"
            "{% if add_generation_prompt %}assistant :{% endif %}")
HOOK = "blocks.1.hook_resid_post"
CAT = 0  # the designed latent that fires on "cat" only
CAT_LABEL = "the word cat"


@pytest.fixture(scope="session")
def chat_lm():
    tokenizer = word_tokenizer(CHAT_WORDS)
    tokenizer.chat_template = TEMPLATE
    return mechscope.load_model(tiny_hf("gpt2"), tokenizer=tokenizer, device="cpu")


@pytest.fixture(scope="session")
def cat_dictionary(chat_lm) -> Dictionary:
    """ReLU latents; latent CAT reads the residual direction of the token "cat" and fires on it alone."""
    d = Dictionary(DictionaryConfig(32, 24, "relu", relu_form="classic", hook_name=HOOK))
    ids = chat_lm.encode(TEXT[:20])
    acts = chat_lm.run_with_cache(ids, names=[HOOK])[1][HOOK]
    is_cat = ids["input_ids"] == chat_lm.tokenizer.convert_tokens_to_ids("cat")
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        d.W_enc.copy_(torch.randn(32, 24, generator=g))
        d.W_enc[:, CAT] = acts[is_cat].mean(0) - acts[~is_cat].mean(0)
        d.b_dec.zero_()
        pre = acts.reshape(-1, 32) @ d.W_enc
        d.b_enc.copy_(-pre.quantile(0.8, dim=0))
        d.b_enc[CAT] = -(acts[is_cat] @ d.W_enc[:, CAT]).min() * 0.5 - (acts[~is_cat] @ d.W_enc[:, CAT]).max() * 0.5
        d.W_dec.copy_(torch.randn(24, 32, generator=g))
    return d


@pytest.fixture(scope="session")
def served(chat_lm, cat_dictionary, tmp_path_factory):
    """(base url, resources) of a server with one vector "push", the dictionary "sae", its catalogue (latent CAT
    labelled and scored) and a variant "pushed" that adds the vector."""
    root = tmp_path_factory.mktemp("server")
    vector = SteeringVector({1: torch.randn(32, generator=torch.Generator().manual_seed(3)) * 4},
                            hook="blocks.{layer}.hook_resid_pre")
    vector.save(root / "vectors" / "push")
    mine(chat_lm, cat_dictionary, TEXT, root / "catalog", **MINE)
    with Catalog(root / "catalog") as catalog:
        catalog.add_score(catalog.add_label(CAT, CAT_LABEL, explainer="human"), "detection", 0.9, 0.8, 0.95, 0.5)
    resources = Resources(chat_lm, "tiny-chat", vectors=mechscope.server.load_vectors(root / "vectors"),
                          dictionaries={"sae": bind_dictionary(chat_lm, cat_dictionary)}, catalog=root / "catalog",
                          variants={"pushed": [{"vector": "push", "value": 2.0}]})
    server = make_server(resources, ServerConfig(port=0))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", resources
    server.shutdown()
    server.server_close()


def call(url: str, path: str, body: dict | bytes | None = None, headers: dict | None = None,
         method: str | None = None) -> tuple[int, dict]:
    """(status, parsed JSON) of one request; HTTP errors are returned, not raised."""
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    request = urllib.request.Request(url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def stream(url: str, path: str, body: dict) -> list:
    """The decoded `data:` events of a streaming request (the final "[DONE]" kept as a string)."""
    request = urllib.request.Request(url + path, data=json.dumps({**body, "stream": True}).encode(),
                                     headers={"Content-Type": "application/json"})
    events = []
    with urllib.request.urlopen(request, timeout=60) as response:
        assert response.headers["Content-Type"] == "text/event-stream"
        for line in response:
            line = line.decode().strip()
            if line.startswith("data: "):
                data = line[len("data: "):]
                events.append(data if data == "[DONE]" else json.loads(data))
    return events
