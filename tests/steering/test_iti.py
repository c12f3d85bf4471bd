"""ITI on a tiny GPT-2 with a planted truth direction: only head (2, 1) can see whether the last token is "true",
so the probes must pick it; its shift folds into the attention output bias exactly (W_O @ shift, not the
reference code's raw shift), and a family without that bias is refused."""

from __future__ import annotations

import json
import random

import pytest
import torch

import mechscope
from mechscope.errors import SteeringError
from mechscope.steering import ITI, ITIConfig, bake_iti, fit_iti, steer
from tests.conftest import tiny_hf

D, D_HEAD = 32, 8  # tiny GPT-2: 3 layers x 4 heads
PLANTED = (2, 1)  # the last layer, so no later head can read what it writes
TRUE, FALSE, NEUTRAL = range(10, 30), range(30, 50), range(50, 97)


def _truth_direction() -> torch.Tensor:
    e = torch.randn(D, generator=torch.Generator().manual_seed(0))
    e -= e.mean()  # zero mean: LayerNorm's centring leaves the coordinate alone
    return e / e.norm()


@pytest.fixture(scope="module")
def planted():
    """Embeddings carry +-3e on true/false tokens only; MLPs write nothing; every head but PLANTED is blind to e
    (its q, k and v inputs have e projected out)."""
    hf = tiny_hf("gpt2")
    e = _truth_direction()
    with torch.no_grad():
        for table in (hf.transformer.wte.weight, hf.transformer.wpe.weight):
            table -= torch.outer(table @ e, e)
        hf.transformer.wte.weight[list(TRUE)] += 3 * e
        hf.transformer.wte.weight[list(FALSE)] -= 3 * e
        for layer, block in enumerate(hf.transformer.h):
            block.mlp.c_proj.weight.zero_()
            block.mlp.c_proj.bias.zero_()
            blind = torch.ones(3 * D, dtype=torch.bool)
            if layer == PLANTED[0]:
                for part in range(3):  # the planted head's q, k and v columns of c_attn [d_model, 3 d_model]
                    start = part * D + PLANTED[1] * D_HEAD
                    blind[start:start + D_HEAD] = False
            weight = block.attn.c_attn.weight
            weight[:, blind] -= torch.outer(e, e @ weight[:, blind])
    return mechscope.load_model(hf, device="cpu", check=False), e


def _prompts(ends: range, n: int, seed: int) -> list[list[int]]:
    rng = random.Random(seed)
    return [rng.sample(NEUTRAL, rng.randint(3, 7)) + [rng.choice(ends)] for _ in range(n)]


def _fit(model, **config):
    half = len(TRUE) // 2  # held-out prompts end in tokens the probes never saw
    return fit_iti(model, _prompts(TRUE[:half], 48, 0), _prompts(FALSE[:half], 48, 1), ITIConfig(**config),
                   val_true=_prompts(TRUE[half:], 32, 2), val_false=_prompts(FALSE[half:], 32, 3))


def test_the_probes_find_the_planted_head_and_its_direction(planted):
    model, e = planted
    iti = _fit(model, top_k=1)
    (head,) = iti.heads
    assert (head.layer, head.head) == PLANTED and head.accuracy >= 0.9
    others = iti.accuracy.clone()
    others[PLANTED] = 0
    assert others.max() <= 0.75  # blind heads sit near chance on unseen tokens
    value = model.hf.transformer.h[PLANTED[0]].attn.c_attn.weight[:, 2 * D + PLANTED[1] * D_HEAD:][:, :D_HEAD]
    planted_z = (e @ value).detach()  # where +e lands in the head's z
    assert float(torch.cosine_similarity(head.direction.double(), planted_z.double(), 0)) > 0.9


def test_the_shift_folds_into_the_output_bias_through_w_o_and_the_raw_shift_would_not(planted, tmp_path):
    model, _ = planted
    iti = ITI.load(_fit(model, top_k=3, alpha=5.0).save(tmp_path / "iti"))  # and the file round-trips
    ids = torch.tensor(_prompts(TRUE, 2, 4)[0] * 2)[None]
    with steer(model, iti.interventions()), torch.no_grad():
        hooked = model(ids)
    baked = bake_iti(model, iti)
    with torch.no_grad():
        torch.testing.assert_close(baked(ids), hooked, atol=1e-5, rtol=1e-5)
        assert not torch.allclose(model(ids), hooked, atol=1e-3)
    layer = PLANTED[0]
    added = baked.hf.transformer.h[layer].attn.c_proj.bias - model.hf.transformer.h[layer].attn.c_proj.bias
    raw = iti.z_shifts()[layer].float()  # what the reference code writes into the bias
    torch.testing.assert_close(added, raw @ model.hf.transformer.h[layer].attn.c_proj.weight, atol=1e-6, rtol=1e-5)
    assert (added - raw).abs().max() > 1e-2


def test_a_family_without_an_attention_output_bias_is_refused():
    model = mechscope.load_model(tiny_hf("llama"), device="cpu", check=False)
    iti = fit_iti(model, _prompts(TRUE, 12, 0), _prompts(FALSE, 12, 1), ITIConfig(top_k=2))
    with pytest.raises(SteeringError, match="no bias on its attention output projection"):
        bake_iti(model, iti)
    with pytest.raises(SteeringError, match="direction must be one of"):
        ITIConfig(direction="center")


def test_cli_finds_the_planted_head_and_bakes_a_copy_plain_transformers_loads(planted, tmp_path, capsys):
    from transformers import AutoModelForCausalLM

    from mechscope.cli import main
    from tests.conftest import word_tokenizer

    model, _ = planted
    model.hf.save_pretrained(tmp_path / "model")
    word_tokenizer([f"w{i}" for i in range(4, 97)]).save_pretrained(tmp_path / "model")  # "w{i}" is token i
    for name, ends, seed in (("true", TRUE, 0), ("false", FALSE, 1)):
        (tmp_path / f"{name}.txt").write_text("\n".join(" ".join(f"w{i}" for i in row)
                                                        for row in _prompts(ends, 64, seed)))
    assert main(["steer", "iti", str(tmp_path / "model"), "--true", str(tmp_path / "true.txt"), "--false",
                 str(tmp_path / "false.txt"), "--out", str(tmp_path / "iti"), "--top-k", "1", "--alpha", "5",
                 "--bake", str(tmp_path / "baked"), "--device", "cpu", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert [(h["layer"], h["head"]) for h in result["heads"]] == [PLANTED]
    baked = AutoModelForCausalLM.from_pretrained(tmp_path / "baked")
    moved = [float((b.attn.c_proj.bias - a.attn.c_proj.bias).abs().max().detach())
             for a, b in zip(model.hf.transformer.h, baked.transformer.h)]
    assert moved[PLANTED[0]] > 1e-3 and moved[0] == moved[1] == 0
