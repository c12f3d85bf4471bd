"""The serve check: `mechscope serve`'s server started in this process on a free port and called as a client
would (the web app's page, feature search, a plain and a latent-steered chat completion with a monitor), then
stopped."""

from __future__ import annotations

import json
from dataclasses import dataclass

from mechscope.pipeline.config import stage_input
from mechscope.pipeline.context import StageContext, StageOutcome


@dataclass
class ServeStageConfig:
    """Which model, dictionary (a train stage's first) and catalogue (a mine or label stage's) the server gets."""

    dictionary: str = stage_input("train")
    features: str = stage_input("mine", "label")
    model: str = "smollm2"
    question: str = "What is the capital of France?"
    search: str = "the"
    clamp: float = 30.0  # the found latent is clamped to this value in the steered completion
    max_tokens: int = 12


def serve(cfg: ServeStageConfig, ctx: StageContext) -> StageOutcome:
    import threading
    import urllib.request

    from mechscope.dictionaries.binding import bind_dictionary
    from mechscope.server import Resources, ServerConfig, make_server

    model = ctx.models.model(cfg.model)
    dictionary = next(iter(ctx.dictionaries(cfg.dictionary).values()))
    server = make_server(Resources(model, cfg.model, dictionaries={"sae": bind_dictionary(model, dictionary)},
                                   catalog=ctx.artefact(cfg.features, "feature catalogue")), ServerConfig(port=0))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    root = f"http://127.0.0.1:{server.server_address[1]}"
    url = root + "/v1"

    def call(path: str, body: dict | None = None) -> dict:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(url + path, data=data, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=300) as response:
            return json.loads(response.read())

    try:
        with urllib.request.urlopen(root + "/", timeout=60) as response:
            app_bytes = len(response.read())
        hits = call(f"/features/search?q={cfg.search}&limit=3")["data"]
        latent = hits[0]["latent"] if hits else 0
        chat = {"model": cfg.model, "messages": [{"role": "user", "content": cfg.question}],
                "max_tokens": cfg.max_tokens, "temperature": 0}
        plain = call("/chat/completions", chat)
        steered = call("/chat/completions", {**chat, "steering": [{"latent": latent, "op": "clamp", "value": cfg.clamp}],
                                             "monitors": [{"latent": latent, "name": f"latent {latent}"}]})
    finally:
        server.shutdown()
        server.server_close()
    scores = [s for s in steered["choices"][0]["monitors"][0]["completion_scores"] if s is not None]
    ctx.say(f"web app at {root}/ ({app_bytes} bytes; `mechscope serve` prints this URL): feature browser, steering "
            "playground, graph and circuit viewers")
    ctx.say(f"{url}: search {cfg.search!r} -> latents {[h['latent'] for h in hits]}; POST /chat/completions")
    ctx.say(f"plain:                          {plain['choices'][0]['message']['content'].strip()!r}")
    ctx.say(f"latent {latent} clamped to {cfg.clamp:g} (monitor max {max(scores, default=0):.1f}): "
            f"{steered['choices'][0]['message']['content'].strip()!r}")
    path = ctx.dir / "served_completion.json"
    path.write_text(json.dumps({"plain": plain, "steered": steered}, indent=2))
    return StageOutcome({"served completion (JSON)": path},
                        {"latent": latent, "monitor_max": round(max(scores, default=0.0), 3)})
