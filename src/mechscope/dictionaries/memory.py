"""What a training run holds in memory, per rank and in total, known before it starts (SAEs and transcoders;
cross-layer transcoders through `estimate_clt_memory`).

What differs by variant comes from the variant: its per-latent parameters and buffers, how many [batch, d_sae]
floats its step holds (measured), and whether it selects sparse candidates (the TopK family)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from mechscope.devices import resolve_dtype
from mechscope.dictionaries.clt import CLT_STEP_ACTIVATIONS, CLTConfig
from mechscope.dictionaries.clt_shards import check_clt_shardable
from mechscope.dictionaries.config import DictionaryConfig
from mechscope.dictionaries.latent_shards import check_shardable
from mechscope.dictionaries.variants import make_variant

FLOAT = 4  # parameters, optimiser states and activations train in float32
INDEX = 8  # int64 latent indices
INIT_SAMPLE = 4096  # tokens the encoder-scale initialisation encodes at once (TrainConfig's "sample")


@dataclass
class MemoryEstimate:
    """Bytes per rank of each thing a training step holds (tensors only, not the Python runtime)."""

    d_in: int
    d_sae: int
    k: int
    batch_size: int
    latent_shards: int = 1
    replicas: int = 1
    cache_dtype: str = "float32"
    architecture: str = "topk"
    d_out: int | None = None  # a transcoder's output width (None: an SAE)
    skip_connection: bool = False
    parameters: int = 0  # W_enc, b_enc, W_dec and the variant's per-latent parameters of this rank's latents; b_dec
    #                      and a transcoder's W_skip (replicated)
    buffers: int = 0  # the variant's per-latent buffers (JumpReLU's and BatchTopK's threshold)
    gradients: int = 0  # dense, one per parameter
    adam: int = 0  # exp_avg and exp_avg_sq
    batch: int = 0  # the global batch as read (cache dtype, float32, scaled; a transcoder's targets too) and this
    #                 rank's x_hat-sized terms
    pre_activations: int = 0  # [rows, latents] floats the variant's step holds (TopK: the encoder output, what a
    #                           fused encoder removes; dense variants: codes, masks and their gradients)
    codes: int = 0  # TopK family: local and merged top-k candidates (values and indices), for k and k_aux
    initialisation: int = 0  # at start: the seeded draw of all d_sae decoder rows (a shard keeps its own), or
    #                          the initial encode of INIT_SAMPLE tokens, whichever is larger
    saving: int = 0  # at the end, on rank 0: its parameters, a sharded run's gathered full dictionary, and the
    #                  copies of gathering and writing it (the file's contiguous W_enc; a CLT's W_enc pieces)

    @property
    def training(self) -> int:
        return (self.parameters + self.buffers + self.gradients + self.adam + self.batch + self.pre_activations +
                self.codes)

    @property
    def per_rank(self) -> int:
        """The peak: the training step, the initialisation or the saving, whichever is largest."""
        return max(self.training, self.initialisation, self.saving)

    @property
    def ranks(self) -> int:
        return self.latent_shards * self.replicas

    @property
    def total(self) -> int:
        return self.per_rank * self.ranks

    def to_dict(self) -> dict:
        return {**asdict(self), "training": self.training, "per_rank": self.per_rank, "total": self.total}

    def table(self) -> str:
        """Readable lines in GiB, for the CLI."""
        gib = 2**30
        rows = ["parameters", "buffers", "gradients", "adam", "batch", "pre_activations", "codes", "training",
                "initialisation", "saving", "per_rank", "total"]
        transcoder = "" if self.d_out is None else f" transcoder d_out={self.d_out}{' +skip' * self.skip_connection}"
        head = (f"memory estimate: {self.architecture}{transcoder} d_in={self.d_in} d_sae={self.d_sae} k={self.k} "
                f"batch={self.batch_size} "
                f"cache={self.cache_dtype} ranks={self.ranks} ({self.replicas} replicas x {self.latent_shards} "
                "latent shards)")
        return "\n".join([head] + [f"  {name:<16}{getattr(self, name) / gib:9.3f} GiB" for name in rows])


def estimate_memory(cfg: DictionaryConfig, batch_size: int, latent_shards: int = 1, replicas: int = 1,
                    cache_dtype: str = "float32") -> MemoryEstimate:
    """Bytes per rank for training `cfg` with these batch, shard and replica counts."""
    if latent_shards > 1:
        check_shardable(cfg, latent_shards)
    variant = make_variant(cfg)
    width = cfg.d_sae // latent_shards
    rows = batch_size // replicas
    d_in, d_out = cfg.d_in, cfg.d_output
    skip = d_in * d_out if cfg.skip_connection else 0
    read = d_in + d_out if cfg.is_transcoder else d_in  # a transcoder reads its input and its target
    parameters = FLOAT * (d_in * width + width * (1 + len(variant.latent_parameters)) + width * d_out + d_out + skip)
    selected = cfg.k + cfg.k_aux if variant.sparse else 0
    stored = resolve_dtype(cache_dtype).itemsize
    # the seeded draw of every latent's decoder row (a shard copies out its rows) beside this rank's parameters;
    # a transcoder then draws its encoder rows while holding its decoder rows
    draw = cfg.d_sae + (width if latent_shards > 1 else 0)
    full_draw = parameters + FLOAT * max(draw * d_out, width * d_out + draw * d_in if cfg.is_transcoder else 0)
    # the TopK family scales its encoder to the data: one encode of INIT_SAMPLE tokens (unsharded: + codes)
    init_encode = parameters + (1 if latent_shards > 1 else 2) * FLOAT * INIT_SAMPLE * width if variant.sparse else 0
    # saving (Adam's moments and the gradients are released first): the file's contiguous W_enc (and W_skip.T);
    # sharded, rank 0 also holds the full dictionary (built without a draw), which receives every shard
    buffers = FLOAT * width * len(variant.latent_buffers)
    written = FLOAT * (d_in * cfg.d_sae + skip)
    gathered = FLOAT * (cfg.d_sae * (d_in + d_out + 1 + len(variant.latent_parameters) + len(variant.latent_buffers))
                        + d_out + skip) if latent_shards > 1 else 0
    return MemoryEstimate(
        cfg.d_in, cfg.d_sae, cfg.k, batch_size, latent_shards, replicas, cache_dtype, cfg.architecture,
        cfg.d_output if cfg.is_transcoder else None, cfg.skip_connection,
        parameters=parameters, buffers=buffers, gradients=parameters,
        adam=2 * parameters, batch=batch_size * read * (stored + 2 * FLOAT) + 4 * FLOAT * rows * d_out,
        pre_activations=int(variant.step_activations * FLOAT * rows * width),
        codes=rows * selected * (FLOAT + INDEX) * (latent_shards + 1),
        initialisation=max(full_draw, init_encode), saving=parameters + buffers + gathered + written)


def estimate_clt_memory(cfg: CLTConfig, batch_size: int, latent_shards: int = 1, cache_dtype: str = "float32",
                        init_tokens: int = 16_384) -> MemoryEstimate:
    """Bytes per rank for training a cross-layer transcoder (`d_sae` counts every layer's latents; one data
    replica). Its step holds CLT_STEP_ACTIVATIONS[activation] floats per [rows, n_layers, latents] entry."""
    if latent_shards > 1:
        check_clt_shardable(cfg, latent_shards)
    n, d_in, d_out, full = cfg.n_layers, cfg.d_in, cfg.d_output, cfg.d_latent
    width = full // latent_shards
    skip = n * d_in * d_out if cfg.skip_connection else 0
    # W_enc, b_enc, log_threshold, W_dec[i] [width, n - i, d_out], b_dec
    parameters = FLOAT * (n * d_in * width + 2 * n * width + width * d_out * n * (n + 1) // 2 + n * d_out + skip)
    trained = parameters - (FLOAT * n * width if cfg.activation == "topk" else 0)  # a TopK CLT's log_threshold idles
    stored = resolve_dtype(cache_dtype).itemsize
    rows = -(-init_tokens // batch_size) * batch_size
    # the first batches (for the statistics, which also hold their concatenation, the scaled targets and two
    # temporaries of the variance; a stream replays them after)
    first = FLOAT * rows * n * (d_in + d_out)
    draw = full + (width if latent_shards > 1 else 0)  # the seeded draw of all latents (a shard copies its slice)
    draws = FLOAT * max(n * d_in * (draw + width), draw * n * d_out)  # encoder draw and its normalised copy; W_dec[0]
    # saving (moments and gradients released): one layer's contiguous W_enc.T per file; sharded, rank 0 holds the
    # full CLT (built without a draw) and gathers W_enc, whose latents lie inside, as every shard's piece and their
    # concatenation (3x W_enc in all; the other tensors go straight into the full CLT, and outweigh one file)
    gathered = FLOAT * (n * d_in * full * 3 + 3 * n * full + full * d_out * n * (n + 1) // 2 + n * d_out + skip)
    saving = parameters + FLOAT * n * width + (gathered if latent_shards > 1 else FLOAT * d_in * full)
    return MemoryEstimate(
        d_in, n * full, cfg.k if cfg.activation == "topk" else 0, batch_size, latent_shards, 1, cache_dtype,
        f"clt-{cfg.activation} ({n} layers)", d_out, cfg.skip_connection,
        parameters=parameters, buffers=FLOAT * n * width, gradients=trained, adam=2 * trained,
        batch=batch_size * n * (d_in + d_out) * (stored + 2 * FLOAT) + 4 * FLOAT * batch_size * n * d_out,
        pre_activations=int(CLT_STEP_ACTIVATIONS[cfg.activation] * FLOAT * batch_size * n * width),
        codes=batch_size * cfg.k * (FLOAT + INDEX) * (latent_shards + 1) if cfg.activation == "topk" else 0,
        initialisation=max(first + FLOAT * rows * n * (d_in + 4 * d_out), first + parameters + draws), saving=saving)
