"""A GPT-2 whose weights are set by hand so that a known two-head circuit does induction: exact ground truth.

The residual stream is cut into subspaces, each a one-hot over tokens (or positions) plus one balance
dimension holding -1, so every written vector has zero mean and a fixed norm and the LayerNorms only
divide by a known constant (their gains undo it). A constant anchor (+A, -A) dominates the norm, so the
norm barely depends on what the heads write, even when attention is soft.

    TOK    token embedding (input)            POS     position embedding (input)
    PREV   token at t-1 (previous-token head) OUT     predicted next token (induction head)
    COPY   current token (distractor a0)      ECHO    PREV re-read (distractor a1)    ANCHOR  norm anchor

Layer 0: the previous-token head (query POS_t -> t-1, key POS_s -> s, value TOK -> PREV); a
current-token head writing TOK into COPY, which nothing reads; a head attending to BOS and one attending
uniformly, both with zero value/output weights. Layer 1: the induction head (query TOK_t, key PREV_s,
value TOK -> OUT; a query bias makes it rest on the BOS positions when nothing matches); a head
attending to itself that copies PREV into ECHO, which nothing reads (it reads a0's output but is
ignored); a duplicate-token-pattern head and a uniform head with zero outputs. MLPs have zero weights
and biases, so they output exactly zero. The unembedding reads OUT only.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import Tensor

from mechscope.errors import MechscopeError
from mechscope.models import HookedModel, load_model, wrap
from mechscope.toy.word_tokenizer import word_tokenizer

HANDBUILT_FILE = "handbuilt.json"


@dataclass(frozen=True)
class HandBuiltConfig:
    """Shape and gains of the hand-built induction transformer (2 layers, GPT-2 architecture)."""

    n_words: int = 40  # ordinary tokens w0..w39; <pad> <unk> <bos> <eos> come first in the vocabulary
    n_ctx: int = 64  # positions
    n_heads: int = 4  # heads per layer
    previous_token_head: int = 1  # its index in layer 0
    induction_head: int = 2  # its index in layer 1
    margin: float = 30.0  # attention logit of the intended key over every other key
    logit_scale: float = 10.0  # logit of the copied token over the rest
    anchor: float = 8.0  # the constant residual component that fixes the norms' scale

    def __post_init__(self):
        if self.n_heads < 4:
            raise MechscopeError(f"the hand-built model needs n_heads >= 4 (circuit + 3 distractors), got {self.n_heads}")
        for name in ("previous_token_head", "induction_head"):
            if not 0 <= getattr(self, name) < self.n_heads:
                raise MechscopeError(f"{name} must be in 0..{self.n_heads - 1}, got {getattr(self, name)}")

    @property
    def vocab(self) -> int:
        return self.n_words + 4

    def distractors(self, layer: int) -> list[int]:
        """Head indices of `layer` other than the circuit's head, in the order their roles are assigned."""
        used = self.previous_token_head if layer == 0 else self.induction_head
        return [h for h in range(self.n_heads) if h != used]


class _Layout:
    """Offsets of the residual subspaces; each one-hot subspace ends with its balance dimension."""

    def __init__(self, cfg: HandBuiltConfig):
        sizes = {"tok": cfg.vocab + 1, "pos": cfg.n_ctx + 1, "prev": cfg.vocab + 1, "out": cfg.vocab + 1,
                 "copy": cfg.vocab + 1, "echo": cfg.vocab + 1, "anchor": 2}
        self.start, offset = {}, 0
        for name, size in sizes.items():
            self.start[name] = offset
            offset += size
        self.size = sizes
        self.d_head = max(cfg.n_ctx, cfg.vocab + 1, -(-offset // cfg.n_heads))
        self.d_model = cfg.n_heads * self.d_head

    def rows(self, name: str) -> slice:
        """The one-hot dimensions of a subspace followed by its balance dimension."""
        return slice(self.start[name], self.start[name] + self.size[name])


def _identity(n: int, d_head: int, scale: float = 1.0, shift: int = 0) -> Tensor:
    """[n, d_head]: row i -> unit vector i - shift (rows that fall off the start map to zero)."""
    matrix = torch.zeros(n, d_head)
    for i in range(max(0, shift), n):
        matrix[i, i - shift] = scale
    return matrix


class _Writer:
    """Sets per-head q/k/v and output weights of a GPT-2 block (Conv1D: x @ W + b)."""

    def __init__(self, block, layout: _Layout):
        self.attn, self.layout = block.attn, layout
        self.d_model, self.d_head = layout.d_model, layout.d_head

    def read(self, part: str, head: int, subspace: str, matrix: Tensor) -> None:
        column = "qkv".index(part) * self.d_model + head * self.d_head
        rows = self.layout.rows(subspace)
        self.attn.c_attn.weight[rows, column:column + matrix.shape[1]] = matrix

    def bias(self, part: str, head: int, index: int, value: float) -> None:
        self.attn.c_attn.bias["qkv".index(part) * self.d_model + head * self.d_head + index] = value

    def write(self, head: int, subspace: str, width: int) -> None:
        """Head dims 0..width-1 go to `subspace` one to one (width includes the balance dimension)."""
        start = self.layout.start[subspace]
        for i in range(width):
            self.attn.c_proj.weight[head * self.d_head + i, start + i] = 1.0


def _norm_gain(layout: _Layout, squared_norm: float, eps: float) -> float:
    """The LayerNorm gain that maps a designed residual of this squared norm back onto itself."""
    return float(torch.tensor(squared_norm / layout.d_model + eps).sqrt())


def build_handbuilt(cfg: HandBuiltConfig = HandBuiltConfig()):
    """(GPT2LMHeadModel, tokenizer) with every weight set as the module doc describes."""
    from transformers import GPT2Config, GPT2LMHeadModel

    tokenizer = word_tokenizer([f"w{i}" for i in range(cfg.n_words)])
    layout = _Layout(cfg)
    config = GPT2Config(vocab_size=cfg.vocab, n_positions=cfg.n_ctx, n_embd=layout.d_model, n_layer=2,
                        n_head=cfg.n_heads, tie_word_embeddings=False, bos_token_id=tokenizer.bos_token_id,
                        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    model = GPT2LMHeadModel(config).eval()
    V, N, dh = cfg.vocab, cfg.n_ctx, layout.d_head
    q_gain = cfg.margin * dh ** 0.5  # GPT-2 divides attention logits by sqrt(d_head)
    with torch.no_grad():
        for param in model.parameters():
            param.zero_()
        tok, pos, anchor = layout.start["tok"], layout.start["pos"], layout.start["anchor"]
        wte, wpe = model.transformer.wte.weight, model.transformer.wpe.weight
        wte[:, tok:tok + V] = torch.eye(V)
        wte[:, tok + V] = -1.0
        wpe[:, pos:pos + N] = torch.eye(N)
        wpe[:, pos + N] = -1.0
        wpe[:, anchor], wpe[:, anchor + 1] = cfg.anchor, -cfg.anchor
        base = 2 * cfg.anchor ** 2 + 4  # anchor + TOK + POS, each one-hot with its balance
        eps = config.layer_norm_epsilon
        for layer, squared in ((0, base), (1, base + 4)):
            block = model.transformer.h[layer]
            block.ln_1.weight.fill_(_norm_gain(layout, squared, eps))
            block.ln_2.weight.fill_(1.0)
        model.transformer.ln_f.weight.fill_(_norm_gain(layout, base + 8, eps))

        first = _Writer(model.transformer.h[0], layout)
        p, (copy, bos_head, _) = cfg.previous_token_head, cfg.distractors(0)
        first.read("q", p, "pos", torch.cat([_identity(N, dh, q_gain, shift=1), torch.zeros(1, dh)]))
        first.read("k", p, "pos", torch.cat([_identity(N, dh), torch.zeros(1, dh)]))
        first.read("v", p, "tok", _identity(V + 1, dh))
        first.write(p, "prev", V + 1)
        first.read("q", copy, "pos", torch.cat([_identity(N, dh, q_gain), torch.zeros(1, dh)]))
        first.read("k", copy, "pos", torch.cat([_identity(N, dh), torch.zeros(1, dh)]))
        first.read("v", copy, "tok", _identity(V + 1, dh))
        first.write(copy, "copy", V + 1)
        first.bias("q", bos_head, 0, q_gain)
        first.read("k", bos_head, "pos", torch.cat([_identity(1, dh), torch.zeros(N, dh)]))

        second = _Writer(model.transformer.h[1], layout)
        i, (duplicate, echo, _) = cfg.induction_head, cfg.distractors(1)
        second.read("q", i, "tok", torch.cat([_identity(V, dh, q_gain), torch.zeros(1, dh)]))
        second.bias("q", i, tokenizer.bos_token_id, q_gain / 2)
        second.read("k", i, "prev", torch.cat([_identity(V, dh), torch.zeros(1, dh)]))
        second.read("v", i, "tok", _identity(V + 1, dh))
        second.write(i, "out", V + 1)
        second.read("q", duplicate, "tok", torch.cat([_identity(V, dh, q_gain), torch.zeros(1, dh)]))
        second.read("k", duplicate, "tok", torch.cat([_identity(V, dh), torch.zeros(1, dh)]))
        second.read("q", echo, "pos", torch.cat([_identity(N, dh, q_gain), torch.zeros(1, dh)]))
        second.read("k", echo, "pos", torch.cat([_identity(N, dh), torch.zeros(1, dh)]))
        second.read("v", echo, "prev", _identity(V + 1, dh))
        second.write(echo, "echo", V + 1)

        out = layout.start["out"]
        model.lm_head.weight[:, out:out + V] = cfg.logit_scale * torch.eye(V)
    return model, tokenizer


def handbuilt_circuit(cfg: HandBuiltConfig = HandBuiltConfig(), positional: bool = False) -> frozenset[str]:
    """The edges (MIB names) that carry the induction computation.

    Counterfactual methods patch a corrupted run that differs only in its tokens, so edges that carry
    positions alone (the previous-token head's query and key) change nothing there and are left out;
    `positional=True` adds them, the truth for ablations that remove positions too (zero or mean).
    Every other edge has no effect by construction: its source is never read by its destination's
    weights, or it writes exactly zero (MLPs, zero-output heads), or into a subspace nothing reads.
    """
    p, i = f"a0.h{cfg.previous_token_head}", f"a1.h{cfg.induction_head}"
    edges = {f"input->{p}<v>", f"{p}->{i}<k>", f"input->{i}<q>", f"input->{i}<v>", f"{i}->logits"}
    if positional:
        edges |= {f"input->{p}<q>", f"input->{p}<k>"}
    return frozenset(edges)


def handbuilt_model(cfg: HandBuiltConfig = HandBuiltConfig(), device: str = "cpu") -> HookedModel:
    """The hand-built transformer, wrapped (and self-tested) as a HookedModel."""
    hf, tokenizer = build_handbuilt(cfg)
    return wrap(hf.to(device), tokenizer, name="handbuilt-induction")


def save_handbuilt(out: str | Path, cfg: HandBuiltConfig = HandBuiltConfig()) -> Path:
    """An ordinary HF directory (config, safetensors, tokenizer) plus handbuilt.json: its config and circuit."""
    out = Path(out)
    hf, tokenizer = build_handbuilt(cfg)
    hf.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    record = {"config": asdict(cfg), "circuit": sorted(handbuilt_circuit(cfg)),
              "positional_edges": sorted(handbuilt_circuit(cfg, positional=True) - handbuilt_circuit(cfg))}
    (out / HANDBUILT_FILE).write_text(json.dumps(record, indent=1))
    return out


def open_handbuilt(path: str | Path, device: str = "cpu") -> tuple[HookedModel, HandBuiltConfig]:
    """A directory written by save_handbuilt: the model (through load_model) and its config."""
    path = Path(path)
    try:
        cfg = HandBuiltConfig(**json.loads((path / HANDBUILT_FILE).read_text())["config"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise MechscopeError(f"{path} holds no hand-built model: expected {HANDBUILT_FILE} from save_handbuilt") from err
    return load_model(path, device=device), cfg


def repeat_accuracy(model: HookedModel, tokens: Tensor) -> float:
    """Share of positions in the second copy of tokens [batch, 1 + 2 * length] (BOS, segment, segment)
    whose next token the model predicts (argmax); the last position has no next token and is skipped."""
    length = (tokens.shape[1] - 1) // 2
    with torch.no_grad():
        logits = model(tokens.to(model.device))
    predicted = logits[:, 1 + length:-1].argmax(-1).cpu()
    return float((predicted == tokens[:, 2 + length:]).float().mean())
