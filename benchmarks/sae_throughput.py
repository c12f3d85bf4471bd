"""TopK SAE training throughput, side by side: mechscope vs SAELens vs sparsify, same activations, same run.

Run in a venv that has the peers (never dependencies of mechscope):
    python -m venv peers && peers/bin/pip install torch==2.13.0 && peers/bin/pip install sae-lens eai-sparsify
    peers/bin/pip install --no-deps -e . && peers/bin/python benchmarks/sae_throughput.py --cache CACHE_DIR

Every library gets the same batches (normalised so E||x|| = sqrt(d_in)), Adam at the same learning rate,
its own initialisation and training-step code; we time steps after a warm-up, then report FVU on
held-out tokens after the same number of training tokens. "mechscope" uses the C++ extension (on CPUs with bf16
instructions: the bf16-screened selection, exact to float32's; else addmm + its row top-k), "mechscope-fallback"
the plain addmm + torch.topk path (MECHSCOPE_FUSED_TOPK=0). The floor is the encoder's forward matmul,
2 * d_in * d_sae FLOPs per token, at this machine's measured matmul GFLOP/s.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import tempfile
import time
import warnings

import torch

warnings.filterwarnings("ignore")


def matmul_gflops(batch: int, d_in: int, d_sae: int) -> float:
    a, b = torch.randn(batch, d_in), torch.randn(d_in, d_sae)
    a @ b
    start = time.perf_counter()
    for _ in range(5):
        a @ b
    return 2 * batch * d_in * d_sae * 5 / (time.perf_counter() - start) / 1e9


def fvu(reconstruct, x: torch.Tensor) -> float:
    with torch.no_grad():
        x_hat = reconstruct(x)
    return (((x - x_hat) ** 2).sum() / ((x - x.mean(0)) ** 2).sum()).item()


def run_mechscope(batches, held_out, d_sae, k, lr, warmup):
    from mechscope.dictionaries import DictionaryConfig, TrainConfig, train
    from mechscope.dictionaries.batches import BatchSource
    from mechscope.dictionaries.formats import load_dictionary

    d_in = batches[0].shape[1]
    source = BatchSource(d_in, "bench", lambda b, s: iter(batches[s:]))
    out = tempfile.mkdtemp()
    cfg = TrainConfig(tokens=len(batches) * batches[0].shape[0], batch_size=batches[0].shape[0], lr=lr,
                      normalize_activations=False, init_tokens=batches[0].shape[0], log_every=1,
                      checkpoint_every=10**9, lr_warmup_steps=1, lr_decay_fraction=0.0, device="cpu",
                      dead_after_tokens=10**12)  # the peers get an all-alive dead mask too: same work
    path = train(source, DictionaryConfig(d_in, d_sae, "topk", k=k), out, cfg)[0]
    log = [json.loads(line) for line in (path / "training_log.jsonl").read_text().splitlines()]
    per_step = (log[-1]["elapsed_s"] - log[warmup - 1]["elapsed_s"]) / (len(log) - warmup)
    sae = load_dictionary(path)
    return per_step, fvu(sae, held_out)


def run_mechscope_fallback(*args):
    """mechscope with the fused TopK encoder switched off (MECHSCOPE_FUSED_TOPK=0): addmm + topk."""
    import os

    from mechscope.dictionaries.kernels import fused

    os.environ[fused.DISABLE_VARIABLE] = "0"
    fused.reset()
    try:
        return run_mechscope(*args)
    finally:
        del os.environ[fused.DISABLE_VARIABLE]
        fused.reset()


def _loop(step_fn, params, batches, lr, warmup, after_step=lambda phase: None):
    optimizer = torch.optim.Adam(params, lr=lr, betas=(0.9, 0.999))
    start = None
    for i, x in enumerate(batches):
        if i == warmup:
            start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        step_fn(x, i).backward()
        after_step("grad")
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        after_step("param")
    return (time.perf_counter() - start) / (len(batches) - warmup)


def run_saelens(batches, held_out, d_sae, k, lr, warmup, sparse=False):
    from sae_lens.saes.sae import TrainStepInput
    from sae_lens.saes.topk_sae import TopKTrainingSAE, TopKTrainingSAEConfig

    d_in = batches[0].shape[1]
    sae = TopKTrainingSAE(TopKTrainingSAEConfig(d_in=d_in, d_sae=d_sae, k=k, use_sparse_activations=sparse))
    dead = torch.zeros(d_sae, dtype=torch.bool)

    def step(x, i):
        return sae.training_forward_pass(TrainStepInput(sae_in=x, coefficients={}, dead_neuron_mask=dead,
                                                        n_training_steps=i, is_logging_step=False)).loss
    per_step = _loop(step, list(sae.parameters()), batches, lr, warmup)
    return per_step, fvu(lambda x: sae.decode(sae.encode(x)), held_out)


def run_sparsify(batches, held_out, d_sae, k, lr, warmup):
    from sparsify import SparseCoder, SparseCoderConfig

    d_in = batches[0].shape[1]
    sae = SparseCoder(d_in, SparseCoderConfig(num_latents=d_sae, k=k))
    dead = torch.zeros(d_sae, dtype=torch.bool)

    def step(x, i):
        out = sae(x, dead_mask=dead)
        return out.fvu + out.auxk_loss / 32

    def after(phase):  # what sparsify's own trainer does around the optimiser step
        if phase == "grad":
            sae.remove_gradient_parallel_to_decoder_directions()
        else:
            sae.set_decoder_norm_to_unit_norm()
    per_step = _loop(step, list(sae.parameters()), batches, lr, warmup, after)
    return per_step, fvu(lambda x: sae.decode(*sae.encode(x)[:2]), held_out)


def data(args) -> tuple[list[torch.Tensor], torch.Tensor, str]:
    n_total = (args.steps + 1) * args.batch_size
    if args.cache:
        from mechscope.data import ActivationCache

        cache = ActivationCache(args.cache)
        hook = cache.hooks[0]
        rows = cache.get(hook, slice(0, min(n_total, len(cache)))).float()
        rows = rows[torch.randperm(rows.shape[0], generator=torch.Generator().manual_seed(0))]
        label = f"{cache.manifest['model']['name']} {hook}"
    else:
        from mechscope.synthetic import SyntheticFeatures

        synthetic = SyntheticFeatures(n_features=4 * args.d_in, d=args.d_in, active=20, seed=0)
        rows = synthetic.sample(n_total, 0)[0]
        label = f"synthetic d_in={args.d_in}"
    if rows.shape[0] < n_total:
        raise SystemExit(f"need {n_total} activations, the source has {rows.shape[0]}")
    rows = rows * (math.sqrt(rows.shape[1]) / rows.norm(dim=1).mean())
    batches = list(rows[: args.steps * args.batch_size].split(args.batch_size))
    return batches, rows[args.steps * args.batch_size:], label


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cache", help="mechscope activation cache (e.g. MiniLM); else synthetic data")
    parser.add_argument("--d-in", type=int, default=1024)
    parser.add_argument("--expansion", type=int, default=16)
    parser.add_argument("--k", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=1,
                        help="run every library this many times, alternating the order; report the median ms/step")
    parser.add_argument("--only", default="mechscope,mechscope-fallback,sparsify,saelens",
                        help="also: saelens-sparse (use_sparse_activations=True; its backward fails on CPU in sae-lens 6.54)")
    args = parser.parse_args()
    batches, held_out, label = data(args)
    d_in = batches[0].shape[1]
    d_sae = d_in * args.expansion
    lr = 2e-4 * math.sqrt(2**14 / d_sae)
    gflops = matmul_gflops(args.batch_size, d_in, d_sae)
    floor = 2 * args.batch_size * d_in * d_sae / (gflops * 1e9)
    runners = {"mechscope": run_mechscope, "mechscope-fallback": run_mechscope_fallback, "sparsify": run_sparsify, "saelens": run_saelens,
               "saelens-sparse": lambda *a: run_saelens(*a, sparse=True)}
    names, runs = args.only.split(","), {}
    for repeat in range(args.repeats):  # alternate the order: a shared machine's drift hits every library alike
        for name in names if repeat % 2 == 0 else names[::-1]:
            torch.manual_seed(0)
            runs.setdefault(name, []).append(runners[name](batches, held_out, d_sae, args.k, lr, args.warmup))
    results = {name: (statistics.median(r[0] for r in runs[name]), runs[name][0][1]) for name in names}
    if args.repeats > 1:
        print("ms/step per repeat: " + "; ".join(f"{n} " + " ".join(f"{r[0] * 1000:.0f}" for r in runs[n]) for n in names))
    tokens = args.steps * args.batch_size
    print(f"\n{label}: d_in {d_in}, d_sae {d_sae}, k {args.k}, batch {args.batch_size}, {args.steps} steps "
          f"({tokens:,} tokens), torch threads {torch.get_num_threads()}, matmul {gflops:.0f} GFLOP/s, "
          f"encoder-forward floor {floor * 1000:.0f} ms/step\n")
    print("| library | ms/step | tokens/s | vs mechscope | floor fraction | held-out FVU |\n|---|---|---|---|---|---|")
    base = results.get("mechscope", (None,))[0]
    for name, (per_step, score) in results.items():
        ratio = f"{per_step / base:.2f}x slower" if base and name != "mechscope" else "1.00x"
        print(f"| {name} | {per_step * 1000:.0f} | {args.batch_size / per_step:,.0f} | {ratio} | "
              f"{floor / per_step:.2f} | {score:.4f} |")


if __name__ == "__main__":
    main()
