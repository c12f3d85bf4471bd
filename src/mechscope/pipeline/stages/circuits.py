"""Circuit stages: induction heads, IOI by activation patching, direct logit attribution and EAP edges with
faithfulness; per-layer transcoders of an organism's MLPs and an attribution graph over them."""

from __future__ import annotations

from dataclasses import dataclass, field

from mechscope.circuits.graphs import GraphConfig
from mechscope.pipeline.config import stage_input
from mechscope.pipeline.context import StageContext, StageOutcome


@dataclass
class CircuitsConfig:
    """Which circuit analyses run on `model` and on how many IOI prompts."""

    model: str = "smollm2"
    induction_heads: bool = True  # TransformerLens's induction score on BOS + 25 random tokens, twice
    ioi_prompts: int = 200  # accuracy and logit difference
    patch_prompts: int = 16  # same-template prompts patched per layer (attention output, denoising)
    dla_prompts: int = 16
    edge_prompts: int = 16  # EAP edge scores; 0 skips the edge circuit
    edges: int = 200  # top edges kept; faithfulness measured at this size
    method: str = "eap"  # eap, eap-ig


def circuits(cfg: CircuitsConfig, ctx: StageContext) -> StageOutcome:
    from mechscope.circuits import EdgeCircuitConfig, faithfulness_curve, find_circuit, head_scores, patch, \
        same_shape, task_dla
    from mechscope.tasks import accuracy, logit_diff, make_task

    model = ctx.models.model(cfg.model)
    artefacts, metrics = {}, {}
    if cfg.induction_heads:
        induction = head_scores(model)["induction"]
        artefacts["induction heads (heatmap)"] = induction.save(ctx.dir / "induction_heads",
                                                                f"{model.info.name} induction scores")["html"]
        top = induction.top(3, "value")
        metrics["top_induction_head"], metrics["top_induction_score"] = top[0][0], round(float(top[0][1]), 4)
        ctx.say("top induction heads: " + ", ".join(f"{name} {value:.2f}" for name, value in top))
    ioi = make_task("ioi").batch(model.tokenizer, cfg.ioi_prompts)
    logits = ioi.logits(model)
    metrics["ioi_accuracy"] = round(float(accuracy(logits, ioi).mean()), 4)
    metrics["ioi_logit_diff"] = round(float(logit_diff(logits, ioi).mean()), 4)
    ctx.say(f"IOI ({ioi.report}): accuracy {metrics['ioi_accuracy']:.2f}, logit diff {metrics['ioi_logit_diff']:.2f}")
    shaped = same_shape(ioi)
    shaped = shaped.select(range(min(cfg.patch_prompts, len(shaped))))
    attn = patch(model, shaped, "attn")
    artefacts["IOI patching (heatmap)"] = attn.save(ctx.dir / "ioi_attn_patching",
                                                    "IOI: attention output patched per layer")["html"]
    restored = attn.normalized()  # 0: the corrupted run, 1: the clean run
    ctx.say(f"{len(shaped)} prompts of one template; layers whose attention restores the answer most: " +
            ", ".join(f"{int(layer)} ({float(restored[layer]):.2f})" for layer in restored.argsort(descending=True)[:3]))
    dla = task_dla(model, ioi.select(range(cfg.dla_prompts)))
    artefacts["IOI logit attribution"] = dla.save(ctx.dir / "ioi_dla", "IOI: direct logit attribution")["html"]
    ctx.say(f"direct logit attribution (sums to {dla.info['total']:.2f} within {dla.info['max_sum_error']:.1e}): " +
            ", ".join(f"{name.split('=')[1]} {value:+.2f}" for name, value in dla.top(4)))
    if cfg.edge_prompts:
        batch = ioi.select(range(cfg.edge_prompts))
        edges = find_circuit(model, batch, EdgeCircuitConfig(method=cfg.method, edges=cfg.edges), curve=False)
        graph, scores = edges.graph, edges.graph.scores_matrix(edges.scores)
        point = faithfulness_curve(model, batch, graph, scores, [cfg.edges])["points"][0]
        artefacts["IOI edge circuit"] = edges.save(ctx.dir / "ioi_edges", model=model)["circuit"]
        metrics["edge_faithfulness"] = round(float(point["faithfulness"]), 4)
        metrics["edges_after_pruning"] = point["edges_after_pruning"]
        ctx.say(f"{cfg.method.upper()} over {graph.n_edges} edges: the top {cfg.edges} edges, pruned to "
                f"{point['edges_after_pruning']}, keep {point['faithfulness']:.2f} of the logit difference")
    return StageOutcome(artefacts, metrics)


@dataclass
class TranscodersConfig:
    """Per-layer TopK transcoders (MLP input -> output) of an organism, trained from one paired harvest."""

    organism: str = "organism:induction:small"
    texts: int = 1000  # organism task texts: all but the last 100 harvested, those 100 evaluated
    harvest_tokens: int = 40_000
    context: int = 64
    expansion: int = 8
    k: int = 8
    tokens: int = 120_000  # training tokens per layer
    batch_size: int = 512
    eval_tokens: int = 4096


def transcoders(cfg: TranscodersConfig, ctx: StageContext) -> StageOutcome:
    from mechscope.data import harvest
    from mechscope.dictionaries import DictionaryConfig, TrainConfig, TranscoderSet, train
    from mechscope.dictionaries.formats import load_dictionary
    from mechscope.evaluation import evaluate_transcoders

    model = ctx.models.model(cfg.organism)
    texts = ctx.models.texts("task", cfg.organism, cfg.texts)
    layers = list(range(model.n_layers))
    pairs = [(f"blocks.{layer}.ln2.hook_normalized", f"blocks.{layer}.hook_mlp_out") for layer in layers]
    cache = harvest(model, texts[:-100], [hook for pair in pairs for hook in pair], tokens=cfg.harvest_tokens,
                    out=ctx.dir / "activations", context=cfg.context)
    d_model = model.info.d_model
    dictionaries = []
    for layer, (hook_in, hook_out) in zip(layers, pairs):
        [directory] = train(cache, DictionaryConfig(d_model, cfg.expansion * d_model, "topk", k=cfg.k),
                            ctx.dir / "runs" / f"layer_{layer}",
                            TrainConfig(tokens=cfg.tokens, batch_size=cfg.batch_size, log_every=1000,
                                        device=ctx.models.device), hook=hook_in, hook_out=hook_out)
        dictionaries.append(load_dictionary(directory))
    tset = TranscoderSet(dictionaries, layers, model_name=model.info.name)
    set_dir = tset.save(ctx.dir / "set")
    scores = evaluate_transcoders(model, tset, texts[-100:], save=False, tokens=cfg.eval_tokens, context=cfg.context)
    agreement = scores.downstream.get("next_token_agreement", float("nan"))
    ctx.say("transcoders: FVU of each MLP output " + ", ".join(f"{v:.3f}" for v in scores.fvu) + "; L0 " +
            ", ".join(f"{v:.1f}" for v in scores.l0) + f"; both MLPs replaced: next-token agreement {agreement:.3f}")
    metrics = {f"layer{layer}.fvu": round(float(v), 4) for layer, v in zip(layers, scores.fvu)}
    return StageOutcome({"transcoder set": set_dir}, {**metrics, "next_token_agreement": round(float(agreement), 4)})


@dataclass
class GraphStageConfig:
    """The attribution graph of one of the organism's repeated-segment prompts over a transcoders stage's set."""

    transcoders: str = stage_input("transcoders")
    organism: str = "organism:induction:small"
    extra_tokens: int = 6  # tokens of the repeated segment kept after its first copy
    slug: str = "induction-organism"
    graph: GraphConfig = field(default_factory=GraphConfig)


def graph(cfg: GraphStageConfig, ctx: StageContext) -> StageOutcome:
    from mechscope.circuits.graphs import from_transcoder_set, trace
    from mechscope.dictionaries import TranscoderSet

    loaded = ctx.models.organism(cfg.organism)
    model, task = loaded.model, loaded.task
    tset = TranscoderSet.load(ctx.artefact(cfg.transcoders, "transcoder set"))
    prompt = task.repeated_tokens(model.tokenizer, n=1)[0][:1 + task.check_segment + cfg.extra_tokens]
    out = ctx.dir / "graph"
    summary = trace(model, from_transcoder_set(tset), prompt, out, cfg.graph, slug=cfg.slug)
    ctx.say(f"attribution graph of a repeated segment: {summary['active_features']} active features, "
            f"{summary['edges']} edges, kept {summary['kept_nodes']} nodes / {summary['kept_edges']} edges; "
            f"replacement score {summary['replacement_score']:.3f}, completeness {summary['completeness_score']:.3f}; "
            f"QK heads {summary['qk_heads'][:3]}")
    metrics = {key: summary[key] for key in ("active_features", "edges", "kept_nodes", "kept_edges",
                                             "replacement_score", "completeness_score")}
    return StageOutcome({"attribution graph (viewer)": out / "graph.html",
                         "attribution graph (Neuronpedia JSON)": out / f"{cfg.slug}.json"}, metrics)
