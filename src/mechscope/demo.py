"""`mechscope demo`: every capability that exists, on the embedded defaults, in a few minutes on a CPU."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from safetensors.torch import save_file

HOOK = "blocks.3.hook_resid_post"
DEMO_TOKENS = 100_000
MINE_TOKENS = 50_000
LABEL_LATENTS = 48
SENTENCES = [
    "The cat sat on the mat.",
    "Sparse autoencoders find interpretable features in superposition.",
    "Induction heads copy the token that followed an earlier occurrence.",
    "Paris is the capital of France.",
]


def _step(title: str) -> None:
    print(f"\n== {title}", flush=True)


def run_demo(out: str | Path = "mechscope-demo") -> dict:
    """Run the demo pipeline into `out` and return where everything landed."""
    from mechscope.models import load_model

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()

    _step("1. load the embedded all-MiniLM-L6-v2 as a HookedModel")
    model = load_model("minilm", device="cpu")
    print(model)
    print(f"{len(model.hook_names())} hook points, e.g.:")
    for name in model.hook_names()[:10]:
        print(f"  {name:32s} {model.hook_shape(name)}")

    _step("2. cache one batch of activations")
    names = ["blocks.3.hook_resid_post", "blocks.3.attn.hook_pattern", "blocks.3.mlp.hook_post"]
    _, cache = model.run_with_cache(SENTENCES, names=names, stop_at_layer="auto")
    batch_file = out / "batch_activations.safetensors"
    save_file({k: v.contiguous() for k, v in cache.items()}, str(batch_file))
    for name, tensor in cache.items():
        print(f"  {name:32s} {tuple(tensor.shape)}")

    _step("3. harvest pydocs activations into an on-disk cache, read shuffled batches back")
    from mechscope.data import ActivationCache, harvest

    cache_dir = harvest(model, "pydocs", [HOOK], tokens=DEMO_TOKENS, out=out / "activations", context=128,
                        batch_size=32)
    cache = ActivationCache(cache_dir)
    info = cache.info()
    print(f"  {info['tokens']} tokens x {cache.d(HOOK)} dims in {info['shards']} shard(s), "
          f"{info['bytes'] / 2**20:.1f} MiB; mean norm {info['mean_norm'][HOOK]}")
    batch = next(cache.batches(1024, HOOK, seed=0))
    print(f"  first shuffled batch: {tuple(batch.shape)}, mean norm {batch.norm(dim=-1).mean():.3f}")

    _step("4. train a TopK SAE (with AuxK) and a BatchTopK SAE from one pass over the cache")
    from mechscope.dictionaries import DictionaryConfig, TrainConfig, train
    from mechscope.dictionaries.formats import convert, load_dictionary

    configs = [DictionaryConfig(384, 1536, "topk", k=32), DictionaryConfig(384, 1536, "batchtopk", k=32)]
    sae_dirs = train(cache, configs, out / "saes", TrainConfig(tokens=3 * DEMO_TOKENS, batch_size=1024, log_every=25))
    for sae_dir in sae_dirs:
        final = json.loads((sae_dir / "manifest.json").read_text())["final"]
        print(f"  {sae_dir.name:22s} FVU {final['fvu']:.3f}  L0 {final['l0']:.1f}  dead {final['dead_fraction']:.1%}")
    sae = load_dictionary(sae_dirs[0])
    x = cache.get(HOOK, range(2048))
    codes = sae.encode(x)
    print(f"  reload + encode 2048 cached tokens: {(codes > 0).sum(-1).float().mean():.1f} active latents per token")
    sparsify_dir = convert(sae_dirs[0], out / "saes" / "topk-as-sparsify", to="sparsify")
    print(f"  converted to EleutherAI sparsify's format: {sparsify_dir}")

    _step("5. evaluate both SAEs (reconstruction + embedding fidelity) and draw the Pareto plot")
    from mechscope.evaluation import evaluate
    from mechscope.evaluation.pareto import pareto

    for sae_dir in sae_dirs:
        result = evaluate(model, sae_dir, "pydocs", tokens=4000, context=128, batch_size=16)
        print(f"  {sae_dir.name:22s} FVU {result.fvu:.3f}  cosine {result.cosine:.3f}  "
              f"dead {result.dead_fraction:.1%}  embedding fidelity {result.downstream['embedding_fidelity']:.3f} "
              f"(zero-ablation {result.downstream['embedding_fidelity_zero']:.3f})")
    plots = pareto(out / "saes")

    _step("6. toy models of superposition (Elhage et al. 2022): 5 features in 2 dimensions")
    from mechscope.toy import ToyConfig, feature_norms, plot_superposition, train_toy

    toy = train_toy(ToyConfig(5, 2, [1.0, 0.2, 0.05], steps=8000, seed=1))
    for p_feature, norms in zip(toy.cfg.feature_probability, feature_norms(toy)):
        print(f"  feature probability {p_feature:<4}: {int((norms > 0.5).sum())} of 5 features represented")
    toy_plot = plot_superposition(toy, out / "toy" / "superposition_5_in_2.png")

    _step("7. mine the TopK SAE's latents over pydocs into a searchable catalogue")
    from mechscope.features import Catalog, export_neuronpedia, mine, write_dashboard

    shutil.rmtree(out / "features", ignore_errors=True)  # the demo's own earlier catalogue: mine refuses labelled ones
    mined = mine(model, sae_dirs[0], "pydocs", out / "features", tokens=MINE_TOKENS, batch_size=16)
    print(f"  {mined.tokens} tokens at {mined.tokens_per_second:,.0f} tokens/s: {mined.latents} latents, "
          f"{mined.dead} dead, {mined.rare} rare, {mined.examples} example contexts")

    _step("8. label latents offline, score the labels (MiniLM embeddings), write the dashboard and Neuronpedia files")
    from mechscope.autointerp import LabelConfig, label_features

    run = label_features(out / "features", LabelConfig(max_latents=LABEL_LATENTS))
    embedding = run.scores["embedding"]
    print(f"  {run.explained} latents labelled; embedding AUROC {embedding['mean']:.3f} "
          f"(labels of other latents: {embedding['baseline_mean']:.3f})")
    catalog = Catalog(out / "features")
    for info in catalog.list(order_by="score", limit=3):
        print(f"  latent {info.latent:5d}  {info.labels[-1].text:40s} AUROC {info.best_score:.2f}")
    hits = catalog.search(catalog.list(order_by="score", limit=1)[0].top_tokens[0])
    catalog.close()
    dashboard = write_dashboard(out / "features")
    neuronpedia = export_neuronpedia(out / "features", out / "features" / "neuronpedia")
    print(f"  dashboard: {dashboard.latents} latent pages, {dashboard.gzip_bytes_per_latent / 1024:.1f} KB each "
          f"gzipped; a search finds {len(hits)} latent(s)")

    _step("9. a model organism: a 2-layer LM trained here on repeated random tokens grows an induction head")
    from mechscope.toy import load_organism

    organism = load_organism("induction", size="small", device="cpu")  # trained once per machine, then cached
    check = organism.check().to_dict()
    print(f"  trained in {organism.manifest['train_seconds']:.0f}s (cached in {organism.path.parent}); " +
          ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in check.items()))

    outputs = {"batch activations": str(batch_file), "activation cache": str(cache_dir),
               "Pareto plot": plots["png"], "Pareto (interactive)": plots["html"], "toy-model plot": str(toy_plot),
               "TopK SAE (SAELens layout)": str(sae_dirs[0]), "BatchTopK SAE": str(sae_dirs[1]),
               "sparsify copy": str(sparsify_dir), "feature catalogue": str(out / "features" / "catalog.sqlite"),
               "feature dashboard": str(Path(dashboard.path) / "index.html"), "Neuronpedia export": str(neuronpedia),
               "induction organism": str(organism.path)}
    (out / "outputs.json").write_text(json.dumps(outputs, indent=2))
    print(f"\nDone in {time.time() - started:.1f}s. Outputs:")
    for what, where in outputs.items():
        print(f"  {what:24s} {where}")
    return {"out": str(out), "outputs": outputs, "seconds": round(time.time() - started, 1)}
