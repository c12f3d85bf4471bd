"""Completions through the server equal the library's own generation, with and without steering and monitors."""

from __future__ import annotations

import torch

from mechscope.models.chat import chat_inputs
from mechscope.server.edits import interventions
from mechscope.steering import Monitor, projection, steer
from tests.server.conftest import call, stream

MESSAGES = [{"role": "user", "content": "the cat sat on a mat"}]
GREEDY = {"max_tokens": 8, "temperature": 0}


def _library_text(model, messages, hooks=()) -> str:
    return model.generate(chat_inputs(model, messages), hooks=list(hooks), max_new_tokens=8).texts[0]


def test_models_lists_the_model_and_its_variants(served):
    url, _ = served
    status, body = call(url, "/v1/models")
    assert status == 200
    assert [m["id"] for m in body["data"]] == ["tiny-chat", "pushed"]
    assert body["data"][1]["parent"] == "tiny-chat"


def test_chat_completion_equals_library_generation(served):
    url, resources = served
    status, body = call(url, "/v1/chat/completions", {"model": "tiny-chat", "messages": MESSAGES, **GREEDY})
    assert status == 200
    choice = body["choices"][0]
    assert choice["message"]["content"] == _library_text(resources.model, MESSAGES)
    assert choice["finish_reason"] in ("length", "stop")
    prompt_tokens = int(chat_inputs(resources.model, MESSAGES)["attention_mask"].sum())
    assert body["usage"]["prompt_tokens"] == prompt_tokens
    assert body["object"] == "chat.completion" and body["id"].startswith("chatcmpl-")


def test_stream_deltas_concatenate_to_the_full_text(served):
    url, _ = served
    request = {"model": "tiny-chat", "messages": MESSAGES, **GREEDY, "stream_options": {"include_usage": True}}
    full = call(url, "/v1/chat/completions", request)[1]["choices"][0]["message"]["content"]
    events = stream(url, "/v1/chat/completions", request)
    assert events[-1] == "[DONE]"
    assert events[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    chunks = [e for e in events[:-1] if e["choices"]]
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == full
    assert chunks[-1]["choices"][0]["finish_reason"] in ("length", "stop")
    assert events[-2]["usage"]["completion_tokens"] == 8 and events[-2]["choices"] == []
    assert all(e["object"] == "chat.completion.chunk" for e in events[:-1])


def test_stop_string_is_never_streamed(served):
    url, _ = served
    base = {"model": "tiny-chat", "messages": MESSAGES, "max_tokens": 12, "temperature": 0}
    text = call(url, "/v1/chat/completions", base)[1]["choices"][0]["message"]["content"]
    stop = text[1:3]  # spans the first two tokens (the tiny model's reply is ": :"), cut after the first
    assert len(stop) == 2 and text.count(stop) == 1
    request = {**base, "stop": [stop]}
    cut = call(url, "/v1/chat/completions", request)[1]["choices"][0]
    assert cut["finish_reason"] == "stop" and cut["message"]["content"] == text[:1]
    streamed = "".join(e["choices"][0]["delta"].get("content", "") for e in stream(url, "/v1/chat/completions",
                                                                                   request)[:-1])
    assert streamed == cut["message"]["content"]


def test_text_completion_batches_prompts(served):
    url, resources = served
    prompts = ["the cat sat", "a dog ran far"]
    status, body = call(url, "/v1/completions", {"model": "tiny-chat", "prompt": prompts, **GREEDY})
    assert status == 200
    expected = resources.model.generate(prompts, max_new_tokens=8).texts
    assert [c["text"] for c in body["choices"]] == expected
    assert [c["index"] for c in body["choices"]] == [0, 1]
    events = stream(url, "/v1/completions", {"model": "tiny-chat", "prompt": prompts, **GREEDY})
    for index, text in enumerate(expected):
        assert "".join(e["choices"][0]["text"] for e in events[:-1] if e["choices"][0]["index"] == index) == text


def test_steering_equals_library_steering_and_the_variant(served):
    url, resources = served
    edit = [{"vector": "push", "value": 2.0, "where": "all"}]
    steered = call(url, "/v1/chat/completions", {"model": "tiny-chat", "messages": MESSAGES, **GREEDY,
                                                 "steering": edit})[1]["choices"][0]["message"]["content"]
    with steer(resources.model, interventions(resources, edit)):
        expected = _library_text(resources.model, MESSAGES)
    assert steered == expected != _library_text(resources.model, MESSAGES)
    variant = call(url, "/v1/chat/completions", {"model": "pushed", "messages": MESSAGES, **GREEDY})[1]
    assert variant["choices"][0]["message"]["content"] == steered and variant["model"] == "pushed"
    wrapped = call(url, "/v1/chat/completions", {"model": "tiny-chat", "messages": MESSAGES, **GREEDY,
                                                 "steering": {"edits": edit}})[1]
    assert wrapped["choices"][0]["message"]["content"] == steered


def test_conditional_latent_edit_applies_only_when_its_condition_holds(served):
    url, resources = served
    # ablate the vector's direction only where latent 0 ("cat") fired on the prompt; clamp makes the effect visible
    edit = [{"vector": "push", "op": "clamp", "value": 3.0,
             "condition": {"latent": 0, "threshold": 0.0, "per": "prompt"}}]
    # the condition reads blocks.1 (after the vector's blocks.1.hook_resid_pre): it must be refused, clearly
    status, body = call(url, "/v1/chat/completions", {"model": "tiny-chat", "messages": MESSAGES, **GREEDY,
                                                      "steering": edit})
    assert status == 400 and "fires after" in body["error"]["message"] and body["error"]["param"] == "steering"
    edit = [{"latent": 3, "op": "clamp", "value": 50.0, "condition": {"latent": 0, "threshold": 0.0}}]
    with_cat, without_cat = ([{"role": "user", "content": text}] for text in ("the cat sat", "the dog sat"))
    for messages, applies in ((with_cat, True), (without_cat, False)):
        served_text = call(url, "/v1/chat/completions", {"model": "tiny-chat", "messages": messages, **GREEDY,
                                                         "steering": edit})[1]["choices"][0]["message"]["content"]
        with steer(resources.model, interventions(resources, edit)):
            assert served_text == _library_text(resources.model, messages)
        assert (served_text != _library_text(resources.model, messages)) == applies


def test_monitor_scores_equal_the_library_monitor_and_stop_ends_the_row(served):
    url, resources = served
    vector = resources.vectors["push"]
    monitor = {"vector": "push", "name": "push", "watch": "all"}
    body = call(url, "/v1/chat/completions", {"model": "tiny-chat", "messages": MESSAGES, **GREEDY,
                                              "monitors": [monitor]})[1]
    view = body["choices"][0]["monitors"][0]
    reference = Monitor(vector.hook_name(1), projection(vector.direction(1)), watch="all")
    model = resources.model
    generation = model.generate(chat_inputs(model, MESSAGES), hooks=reference.hooks(), max_new_tokens=8)
    record = reference.record([generation.prompt_lengths[0] + len(generation.tokens[0])])
    expected = record.scores[0]
    got = torch.tensor([float("nan") if v is None else v for v in view["prompt_scores"] + view["completion_scores"]])
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5, equal_nan=True)
    assert view["completion_tokens"] == [model.tokenizer.decode([t]) for t in generation.tokens[0]]
    assert len(view["completion_tokens"]) == len(view["completion_scores"])
    threshold = float(expected[generation.prompt_lengths[0]:][:3].nan_to_num(-1e9).max()) - 1e-4
    stopped = call(url, "/v1/chat/completions", {"model": "tiny-chat", "messages": MESSAGES, **GREEDY, "monitors": [
        {**monitor, "watch": "generated", "threshold": threshold, "action": "stop"}]})[1]["choices"][0]
    assert stopped["finish_reason"] == "content_filter"
    assert stopped["monitors"][0]["stopped"] and stopped["monitors"][0]["alerts"]
