"""Shared fixtures: tiny randomly initialised models of every supported family, built offline."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never touch the network

import pytest
import torch

import mechscope

TINY = dict(vocab_size=97, hidden_size=32, num_hidden_layers=3, num_attention_heads=4, intermediate_size=64)


def tiny_config(family: str):
    """A tiny HF config per family; GQA and an explicit head_dim where the family has them."""
    import transformers as t

    if family == "gpt2":
        return t.GPT2Config(vocab_size=97, n_embd=32, n_layer=3, n_head=4, n_positions=64, bos_token_id=0, eos_token_id=0)
    if family == "gpt_neox":
        return t.GPTNeoXConfig(**TINY, max_position_embeddings=64)
    if family == "gpt_neox_sequential":
        return t.GPTNeoXConfig(**TINY, max_position_embeddings=64, use_parallel_residual=False)
    if family == "llama":
        return t.LlamaConfig(**TINY, num_key_value_heads=2, max_position_embeddings=64)
    if family == "mistral":
        return t.MistralConfig(**TINY, num_key_value_heads=2, max_position_embeddings=64)
    if family == "qwen2":
        return t.Qwen2Config(**TINY, num_key_value_heads=2, max_position_embeddings=64)
    if family == "qwen3":
        return t.Qwen3Config(**TINY, num_key_value_heads=2, head_dim=16, max_position_embeddings=64)
    if family == "gemma2":
        return t.Gemma2Config(**TINY, num_key_value_heads=2, head_dim=16, max_position_embeddings=64)
    if family == "gemma3":
        return t.Gemma3TextConfig(**TINY, num_key_value_heads=2, head_dim=16, max_position_embeddings=64,
                                  sliding_window=4)
    if family == "phi3":
        return t.Phi3Config(**TINY, num_key_value_heads=2, max_position_embeddings=64, pad_token_id=0,
                             bos_token_id=1, eos_token_id=2)
    if family == "mixtral":
        return t.MixtralConfig(**TINY, num_key_value_heads=2, max_position_embeddings=64, num_local_experts=4,
                               num_experts_per_tok=2)
    if family == "olmo2":
        return t.Olmo2Config(**TINY, num_key_value_heads=2, max_position_embeddings=64, pad_token_id=0,
                             bos_token_id=1, eos_token_id=2)
    if family == "bert":
        return t.BertConfig(**TINY, max_position_embeddings=64)
    raise KeyError(family)


FAMILIES = ["gpt2", "gpt_neox", "gpt_neox_sequential", "llama", "mistral", "qwen2", "qwen3", "phi3", "mixtral",
            "gemma2", "gemma3", "olmo2", "bert"]


def tiny_hf(family: str, seed: int = 0):
    from transformers import AutoModel, AutoModelForCausalLM

    torch.manual_seed(seed)
    config = tiny_config(family)
    cls = AutoModel if family == "bert" else AutoModelForCausalLM
    return cls.from_config(config).eval()


def silent_gpt2():
    """A tiny GPT-2 whose blocks write nothing: the residual stream is the embedding, read off the tied unembedding."""
    hf = tiny_hf("gpt2")
    with torch.no_grad():
        for block in hf.transformer.h:
            for out in (block.attn.c_proj, block.mlp.c_proj):
                out.weight.zero_()
                out.bias.zero_()
    return hf


@pytest.fixture(scope="session")
def minilm():
    return mechscope.load_model("minilm", device="cpu")


@pytest.fixture(scope="session")
def smollm2():
    """SmolLM2-135M-Instruct from the user's mechscope cache (converted from its GGUF on the first run, ~20 s)."""
    return mechscope.load_model("smollm2", device="cpu")


@pytest.fixture(params=FAMILIES)
def family_model(request):
    """(family name, raw HF model, HookedModel over it)."""
    hf = tiny_hf(request.param)
    return request.param, hf, mechscope.load_model(hf, device="cpu")


def token_batch(vocab: int = 97, batch: int = 2, pos: int = 10, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(1, vocab, (batch, pos), generator=g)


def word_tokenizer(words: list[str]):
    """A word-level fast tokenizer over `words` (ids 0..3 are the special tokens), built offline."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<unk>", "<bos>", "<eos>"]
    vocab = {w: i for i, w in enumerate(specials + [w for w in words if w not in specials])}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>", unk_token="<unk>",
                                   bos_token="<bos>", eos_token="<eos>")



@pytest.fixture(scope="session", autouse=True)
def fused_kernels():
    """Load (or build) the fused TopK extension once from the real cache, before a test points MECHSCOPE_CACHE
    at a temporary directory, where it would be built again."""
    from mechscope.dictionaries.kernels import kernel_status

    kernel_status()


@pytest.fixture(scope="session")
def zoo_cache(tmp_path_factory):
    root = tmp_path_factory.mktemp("zoo-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MECHSCOPE_CACHE", str(root))
        yield root


@pytest.fixture(scope="session")
def small_organism(zoo_cache):
    """`small_organism(name)`: the small variant of an organism, trained on first use and then shared."""
    from mechscope.toy import load_organism

    loaded = {}

    def get(name: str):
        if name not in loaded:
            loaded[name] = load_organism(name, "small", device="cpu")
        return loaded[name]

    return get


@pytest.fixture(scope="session")
def refusal_smollm2(zoo_cache):
    """SmolLM2 fine-tuned to refuse, built once into the test zoo cache (about 6 minutes on 2 cores)."""
    from mechscope.toy import load_organism

    return load_organism("refusal-smollm2", device="cpu")
