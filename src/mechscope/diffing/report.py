"""`mechscope diff`: one report of what changed between two models, as report.json and report.md.

Always: the activation-difference lens at one hook and per-token KL on a corpus. With a two-source
crosscoder and the paired harvest it was trained on: latent classes, Latent Scaling, the figures, and the
model-specific latents with their top examples, each split into what model A's and model B's activations
contribute to the latent's pre-activation.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from mechscope.data.atomic import atomic_write_json
from mechscope.dictionaries.crosscoder import encode_sources, source_encoder
from mechscope.diffing.latent_classes import classify_latents
from mechscope.diffing.latent_scaling import latent_scaling
from mechscope.diffing.lens import activation_difference, token_kl, vocabulary_projection
from mechscope.diffing.plots import plot_crosscoder_latents


@dataclass
class DiffConfig:
    """What `diff_models` reads and how much it lists."""

    hook: str = ""  # default: the middle layer's residual stream, blocks.{n_layers // 2}.hook_resid_post
    texts: int = 64  # corpus documents read for the lens and KL
    first_tokens: int = 5  # activation-difference lens: leading tokens of each text
    context: int = 64  # KL: tokens of each text
    top: int = 20  # tokens, contexts and latents listed
    examples: int = 5  # top examples per listed latent
    latent_tokens: int = 20_000  # paired tokens read for Latent Scaling and latent examples


def default_hook(model) -> str:
    return f"blocks.{model.info.n_layers // 2}.hook_resid_post"


@torch.no_grad()
def _latent_examples(d, pair, hook: str, latents: list[int], cfg: DiffConfig, model) -> dict[int, list[dict]]:
    """Top examples of each latent over the pair's first tokens, with A's and B's parts of the pre-activation."""
    n = min(len(pair), cfg.latent_tokens)
    index = torch.tensor(latents, dtype=torch.long)
    best_values = torch.full((len(latents), cfg.examples), -1.0)
    best_rows = torch.zeros((len(latents), cfg.examples), dtype=torch.long)
    for start in range(0, n, 4096):
        rows = torch.arange(start, min(start + 4096, n))
        codes = encode_sources(d, pair.get(hook, rows).float())[:, index].T  # [latents, rows]
        values = torch.cat([best_values, codes], dim=1)
        order = values.topk(cfg.examples, dim=1)
        best_values = order.values
        best_rows = torch.cat([best_rows, rows.expand(len(latents), -1)], dim=1).gather(1, order.indices)
    enc = source_encoder(d).detach()  # [2, d, d_sae]
    out = {}
    for i, latent in enumerate(latents):
        out[latent] = []
        for value, row in zip(best_values[i].tolist(), best_rows[i].tolist()):
            if value <= 0:
                continue
            window, pos = pair.a.context(row)
            x = pair.get(hook, [row]).float()[0]
            parts = [float(x[s] @ enc[s, :, latent]) for s in range(2)]
            out[latent].append({"activation": round(value, 4), "token": model.to_str_tokens(window[pos:pos + 1])[0],
                                "context": model.to_string(window[max(0, pos - 12):pos + 1]),
                                "from_a": round(parts[0], 4), "from_b": round(parts[1], 4)})
    return out


def _latent_section(d, pair, hook: str, cfg: DiffConfig, model, out: Path) -> dict:
    classes = classify_latents(d)
    n = min(len(pair), cfg.latent_tokens)
    scaling = latent_scaling(d, (pair.get(hook, torch.arange(s, min(s + 4096, n))) for s in range(0, n, 4096)))
    plot_crosscoder_latents(classes, scaling, out / "latents.png", names=pair.models)
    listed = {}
    for name in ("b_only", "a_only"):
        index = classes.indices(name)
        index = index[scaling.active[index].argsort(descending=True)][:cfg.top]
        listed[name] = [int(i) for i in index if scaling.active[i] > 0]
    examples = _latent_examples(d, pair, hook, sorted({i for v in listed.values() for i in v}), cfg, model)
    describe = {name: [{"latent": i, "relative_norm": round(float(classes.relative_norm[i]), 4),
                        "active_tokens": int(scaling.active[i]), "nu_r": round(float(scaling.nu_reconstruction[i]), 4),
                        "nu_e": round(float(scaling.nu_error[i]), 4),
                        "truly_specific": bool(scaling.truly_specific()[i]), "examples": examples[i]}
                       for i in index] for name, index in listed.items()}
    return {"summary": classes.summary(), "truly_specific": {
        name: int(scaling.truly_specific()[classes.indices(name)].sum()) for name in ("a_only", "b_only")},
        "latents": describe, "figure": "latents.png"}


def diff_models(model_a, model_b, texts: list[str], out: str | Path, cfg: DiffConfig | None = None,
                crosscoder=None, pair=None) -> dict:
    """Lens, KL and (given a crosscoder and its paired harvest) latent sections; writes report.json and report.md."""
    cfg = cfg or DiffConfig()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    hook = cfg.hook or default_hook(model_a)
    texts = list(texts)[:cfg.texts]
    difference = activation_difference(model_a, model_b, texts, hook, cfg.first_tokens)
    kl = token_kl(model_a, model_b, texts, cfg.context)
    report = {"models": [model_a.info.name, model_b.info.name], "hook": hook, "config": asdict(cfg),
              "activation_difference": {"norm": round(float(difference.norm()), 4),
                                        **vocabulary_projection(model_b, difference, cfg.top)},
              "kl": {"mean": round(kl.mean, 5), "top_contexts": kl.top_contexts(model_b, cfg.top),
                     "top_tokens": kl.top_tokens(model_b, cfg.top)}}
    if crosscoder is not None and pair is not None:
        report["crosscoder"] = _latent_section(crosscoder, pair, crosscoder.cfg.hook_name or hook, cfg, model_b, out)
    atomic_write_json(out / "report.json", json.loads(json.dumps(report, default=str)))
    (out / "report.md").write_text(markdown(report))
    return report


def markdown(report: dict) -> str:
    a, b = report["models"]
    lens = report["activation_difference"]
    lines = [f"# What changed from {a} to {b}", "", f"## Activation-difference lens at `{report['hook']}`", "",
             f"Mean difference norm {lens['norm']} over the first {report['config']['first_tokens']} tokens.", "",
             "| promoted | logit | suppressed | logit |", "|---|---|---|---|"]
    lines += [f"| `{up[0]!r}` | {up[1]:.3f} | `{down[0]!r}` | {down[1]:.3f} |"
              for up, down in zip(lens["promoted"], lens["suppressed"])]
    lines += ["", f"## Per-token KL(P_{b} ‖ P_{a}): mean {report['kl']['mean']} nats", "",
              "| KL | context | next (A) | next (B) |", "|---|---|---|---|"]
    lines += [f"| {r['kl']} | `{r['context']!r}` | `{r['next_a']!r}` | `{r['next_b']!r}` |"
              for r in report["kl"]["top_contexts"]]
    if "crosscoder" in report:
        cc = report["crosscoder"]
        lines += ["", "## Crosscoder latents", "", f"Classes: {cc['summary']['counts']}, dead {cc['summary']['dead']}; "
                  f"shared latents' decoder cosine median {cc['summary']['shared_cosine_median']}; truly specific "
                  f"by Latent Scaling: {cc['truly_specific']}.", "", f"![latent classes]({cc['figure']})"]
        for name, title in (("b_only", f"{b}-only"), ("a_only", f"{a}-only")):
            lines += ["", f"### {title} latents", ""]
            for row in cc["latents"][name]:
                lines.append(f"- latent {row['latent']}: relative norm {row['relative_norm']}, active on "
                             f"{row['active_tokens']} tokens, nu_r {row['nu_r']}, nu_e {row['nu_e']}")
                lines += [f"  - {e['activation']} at `{e['context']!r}` (A part {e['from_a']}, B part {e['from_b']})"
                          for e in row["examples"]]
    return "\n".join(lines) + "\n"
