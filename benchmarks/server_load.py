"""Bounded load test of `mechscope serve` on loopback: N concurrent streaming chat clients against SmolLM2.

Each client streams `--tokens` new tokens (greedy, up to EOS) `--rounds`
times; we record errors, time to first token and total latency percentiles, and aggregate tokens/s, next to the
same generations run back to back in-process (what serialisation on one model costs nothing beyond).
With `--openai-python PATH` (a separate venv with the `openai` package) the official client is also run against
the server once, non-streaming and streaming, and its text compared with ours.

    python benchmarks/server_load.py --clients 4 --tokens 32 --rounds 2 --openai-python /tmp/oaivenv/bin/python
"""

from __future__ import annotations

import argparse
import json
import subprocess
import threading
import time
import urllib.request

import torch

import mechscope
from mechscope.models.chat import chat_inputs
from mechscope.server import Resources, ServerConfig, make_server

PROMPTS = ["Write a short poem about the sea.", "Explain photosynthesis in simple words.",
           "List three uses of a paperclip.", "Describe a busy market in the morning.",
           "Why is the sky blue?", "Give me a tip for learning to cook.", "What is a prime number?",
           "Tell a story about a lost key."]

OPENAI_SCRIPT = """
import json, sys
from openai import OpenAI
url, model, prompt, n = sys.argv[1:5]
client = OpenAI(base_url=url, api_key="unused")
kw = dict(model=model, messages=[{"role": "user", "content": prompt}], max_tokens=int(n), temperature=0)
full = client.chat.completions.create(**kw)
streamed = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(stream=True, **kw)
                   if c.choices)
models = [m.id for m in client.models.list().data]
print(json.dumps({"text": full.choices[0].message.content, "streamed": streamed, "models": models,
                  "usage": full.usage.model_dump()}))
"""


def _client(url: str, prompt: str, tokens: int, rounds: int, out: list, errors: list) -> None:
    body = json.dumps({"model": "smollm2", "messages": [{"role": "user", "content": prompt}], "max_tokens": tokens,
                       "temperature": 0, "stream": True, "stream_options": {"include_usage": True}}).encode()
    for _ in range(rounds):
        start = time.perf_counter()
        first, produced = None, 0
        try:
            request = urllib.request.Request(url + "/v1/chat/completions", data=body,
                                             headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=600) as response:
                for line in response:
                    if not line.startswith(b"data: ") or line.strip() == b"data: [DONE]":
                        continue
                    event = json.loads(line[6:])
                    if event["choices"] and event["choices"][0]["delta"].get("content") and first is None:
                        first = time.perf_counter() - start
                    if event.get("usage"):
                        produced = event["usage"]["completion_tokens"]
        except Exception as err:  # noqa: BLE001 - a load test counts every failure
            errors.append(repr(err))
            continue
        out.append({"latency": time.perf_counter() - start, "first": first, "tokens": produced})


def _percentile(values: list[float], q: float) -> float:
    return float(torch.tensor(values).quantile(q))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--openai-python", help="python of a venv with the openai package")
    args = parser.parse_args()
    torch.set_num_threads(2)
    model = mechscope.load_model("smollm2", device="cpu")
    server = make_server(Resources(model, "smollm2"), ServerConfig(port=0, max_waiting=args.clients + 1))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"

    start, direct_tokens = time.perf_counter(), 0
    for prompt in PROMPTS[:args.clients]:
        direct_tokens += len(model.generate(chat_inputs(model, prompt), max_new_tokens=args.tokens).tokens[0])
    direct = time.perf_counter() - start

    results, errors = [], []
    threads = [threading.Thread(target=_client, args=(url, PROMPTS[i % len(PROMPTS)], args.tokens, args.rounds,
                                                      results, errors)) for i in range(args.clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - start
    latencies = [r["latency"] for r in results]
    firsts = [r["first"] for r in results if r["first"] is not None]
    report = {"clients": args.clients, "rounds": args.rounds, "requests": args.clients * args.rounds,
              "errors": len(errors), "completed": len(results), "wall_s": round(wall, 2),
              "tokens_per_s": round(sum(r["tokens"] for r in results) / wall, 2),
              "latency_p50_s": round(_percentile(latencies, 0.5), 2), "latency_p99_s": round(_percentile(latencies,
                                                                                                         0.99), 2),
              "first_token_p50_s": round(_percentile(firsts, 0.5), 2),
              "first_token_p99_s": round(_percentile(firsts, 0.99), 2),
              "direct_tokens_per_s": round(direct_tokens / direct, 2)}
    if args.openai_python:
        prompt = PROMPTS[0]
        found = json.loads(subprocess.run([args.openai_python, "-c", OPENAI_SCRIPT, url + "/v1", "smollm2", prompt,
                                           str(args.tokens)], check=True, capture_output=True, text=True).stdout)
        ours = model.generate(chat_inputs(model, prompt), max_new_tokens=args.tokens).texts[0]
        report["openai_client"] = {"text_equal": found["text"] == ours, "stream_equal": found["streamed"] == ours,
                                   "models": found["models"], "usage": found["usage"]}
    server.shutdown()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
