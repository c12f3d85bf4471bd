"""Chat and text completions over the loaded model: the request's steering and monitors applied, OpenAI's
response and stream-chunk objects returned."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace

from mechscope.errors import MechscopeError, SteeringError
from mechscope.models.chat import chat_inputs
from mechscope.server import edits
from mechscope.server.config import ServerConfig
from mechscope.server.resources import Resources
from mechscope.server.schema import ChatRequest, CompletionRequest, RequestError, Sampling
from mechscope.steering.interventions import hook_pairs
from mechscope.steering.monitors import Monitor

FINISH_REASONS = {"eos": "stop", "stop": "stop", "length": "length", "halted": "content_filter"}


@dataclass
class Job:
    """One validated request, ready to run: inputs on the model's device, hooks, monitors."""

    kind: str  # "chat" or "text"
    model: str  # the id the client asked for (the model or one of its variants)
    inputs: dict
    sampling: Sampling
    hooks: list
    monitors: list[tuple[str, Monitor]]
    id: str = ""
    created: int = 0

    def __post_init__(self):
        self.id = f"{'chatcmpl' if self.kind == 'chat' else 'cmpl'}-{uuid.uuid4().hex}"
        self.created = int(time.time())

    @property
    def object(self) -> str:
        return "chat.completion" if self.kind == "chat" else "text_completion"


def prepare(resources: Resources, request: ChatRequest | CompletionRequest, config: ServerConfig) -> Job:
    """Resolve the model/variant, edits and monitors, encode the prompts and fix the generation length within the
    model's context; any problem is a RequestError."""
    if request.model not in resources.model_ids():
        raise RequestError(f"model {request.model!r} does not exist; this server has {resources.model_ids()}",
                           status=404, param="model", code="model_not_found")
    model = resources.model
    variant = resources.variants.get(request.model, [])
    steering = edits.interventions(resources, variant, "variant") + edits.interventions(
        resources, request.sampling.steering)
    monitors = edits.monitors(resources, request.sampling.monitors)
    try:
        hooks = hook_pairs(model, steering) + [pair for _, m in monitors for pair in m.hooks()]
    except SteeringError as err:
        raise RequestError(str(err), param="steering") from err
    chat = isinstance(request, ChatRequest)
    try:
        inputs = chat_inputs(model, request.messages) if chat else model.encode(request.prompts)
    except MechscopeError as err:
        raise RequestError(str(err), param="messages" if chat else "prompt") from err
    longest = int(inputs["attention_mask"].sum(-1).max())
    if longest > config.max_prompt_tokens:
        raise RequestError(f"the prompt has {longest} tokens, this server takes at most {config.max_prompt_tokens}",
                           param="messages" if chat else "prompt",
                           code="context_length_exceeded")
    sampling = replace(request.sampling, max_tokens=_new_tokens(model, longest, request.sampling.max_tokens,
                                                                config.default_new_tokens))
    return Job("chat" if chat else "text", request.model, inputs, sampling, hooks, monitors)


def _new_tokens(model, prompt_tokens: int, asked: int | None, default: int) -> int:
    """`asked` if the model's context (HF max_position_embeddings) holds it after the prompt, else a 400; when
    nothing was asked, the default cut to what the context holds."""
    context = getattr(model.hf.config, "max_position_embeddings", None)
    room = default if context is None else context - prompt_tokens
    if room < 1 or (asked is not None and context is not None and asked > room):
        raise RequestError(f"the prompt's {prompt_tokens} tokens and {asked or 1} new tokens exceed the model's "
                           f"context of {context} tokens", param="max_tokens", code="context_length_exceeded")
    return asked if asked is not None else min(default, room)


class TextStream:
    """The part of a row's growing text that is safe to send: never inside a possible stop string or an
    unfinished UTF-8 character, and always a prefix of the final text."""

    def __init__(self, stops: tuple[str, ...]):
        self.stops, self.sent = stops, ""
        self.hold = max((len(s) for s in stops), default=1) - 1

    def delta(self, text: str) -> str:
        found = [i for i in (text.find(s) for s in self.stops) if i >= 0]
        safe = text[:min(found)] if found else text[:len(text) - self.hold] if self.hold else text
        safe = safe.rstrip("\ufffd")
        if len(safe) <= len(self.sent) or not safe.startswith(self.sent):
            return ""
        new, self.sent = safe[len(self.sent):], safe
        return new

    def rest(self, final: str) -> str:
        return final[len(self.sent):] if final.startswith(self.sent) else ""


def run(resources: Resources, job: Job, on_text: Callable[[int, str], None] | None = None) -> dict:
    """Generate; with `on_text(row, delta)` the text is streamed as it is chosen. Returns the results per row."""
    model, sampling = resources.model, job.sampling
    streams = [TextStream(sampling.stop) for _ in range(len(job.inputs["input_ids"]))]

    def on_row_text(row: int, text: str) -> None:
        delta = streams[row].delta(text)
        if delta:
            on_text(row, delta)

    for _, monitor in job.monitors:
        monitor.reset()
    generation = model.generate(job.inputs, hooks=job.hooks, on_text=on_row_text if on_text else None,
                                max_new_tokens=sampling.max_tokens, temperature=sampling.temperature,
                                top_p=sampling.top_p, seed=sampling.seed, stop=sampling.stop)
    lengths = [n + len(new) for n, new in zip(generation.prompt_lengths, generation.tokens)]
    records = [(name, monitor, monitor.record(lengths)) for name, monitor in job.monitors]
    rows = []
    for row, text in enumerate(generation.texts):
        pieces = [model.tokenizer.decode([token]) for token in generation.tokens[row]] if records else []
        rows.append({"text": text, "rest": streams[row].rest(text),
                     "finish_reason": FINISH_REASONS[generation.finish_reasons[row]],
                     "prompt_tokens": generation.prompt_lengths[row], "completion_tokens": len(generation.tokens[row]),
                     "monitors": [_monitor_view(name, monitor, record, row, generation.prompt_lengths[row], pieces)
                                  for name, monitor, record in records]})
    return {"rows": rows}


def _number(value: float) -> float | None:
    return None if value != value else round(float(value), 6)  # NaN (a position never scored) -> null


def _monitor_view(name: str, monitor: Monitor, record, row: int, prompt_length: int, pieces: list[str]) -> dict:
    """A monitor's scores of one row: prompt and completion positions apart, each completion token's text."""
    scores = [_number(v) for v in record.scores[row].tolist()]
    alerts = [{"position": a.position, "score": _number(a.score)} for a in record.alerts if a.row == row]
    return {"name": name, "hook": monitor.hook, "threshold": monitor.threshold, "prompt_scores": scores[:prompt_length],
            "completion_scores": scores[prompt_length:], "completion_tokens": pieces, "alerts": alerts,
            "stopped": monitor.guard == "stop" and bool(alerts)}


def usage(rows: list[dict]) -> dict:
    prompt = sum(r["prompt_tokens"] for r in rows)
    completion = sum(r["completion_tokens"] for r in rows)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _choice(job: Job, index: int, row: dict) -> dict:
    body = ({"message": {"role": "assistant", "content": row["text"]}} if job.kind == "chat" else
            {"text": row["text"]})
    choice = {"index": index, **body, "logprobs": None, "finish_reason": row["finish_reason"]}
    if job.monitors:
        choice["monitors"] = row["monitors"]
    return choice


def response(job: Job, result: dict) -> dict:
    """The non-streaming response object."""
    rows = result["rows"]
    return {"id": job.id, "object": job.object, "created": job.created, "model": job.model,
            "choices": [_choice(job, i, row) for i, row in enumerate(rows)], "usage": usage(rows)}


def chunk(job: Job, index: int, text: str | None = None, finish: str | None = None, role: bool = False,
          extra: dict | None = None) -> dict:
    """One stream chunk: a text delta (or the opening role / the closing finish reason) for choice `index`."""
    if job.kind == "chat":
        delta = {"role": "assistant", "content": ""} if role else {} if text is None else {"content": text}
        choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
    else:
        choice = {"index": index, "text": text or "", "logprobs": None, "finish_reason": finish}
    choice.update(extra or {})
    return {"id": job.id, "object": f"{job.object}.chunk" if job.kind == "chat" else job.object,
            "created": job.created, "model": job.model, "choices": [choice]}


def usage_chunk(job: Job, result: dict) -> dict:
    return {"id": job.id, "object": f"{job.object}.chunk" if job.kind == "chat" else job.object,
            "created": job.created, "model": job.model, "choices": [], "usage": usage(result["rows"])}
