"""model.generate: HF parity, left padding, KV cache vs a full re-run under scoped interventions, stops, sampling."""

from __future__ import annotations

import pytest
import torch
from transformers import GenerationConfig as HFGenerationConfig

import mechscope
from mechscope.errors import GenerationError, MechscopeError
from mechscope.models import scoped
from mechscope.models.generation import left_pad
from tests.conftest import FAMILIES, tiny_hf, word_tokenizer

CAUSAL = [f for f in FAMILIES if f != "bert"]
IDS = torch.tensor([[5, 6, 7, 8, 9], [0, 0, 11, 12, 13], [0, 0, 0, 40, 41]])
MASK = torch.tensor([[1, 1, 1, 1, 1], [0, 0, 1, 1, 1], [0, 0, 0, 1, 1]])
PADDED = {"input_ids": IDS, "attention_mask": MASK}


def _model(family: str):
    return mechscope.load_model(tiny_hf(family), device="cpu", check=False)


def _steer(d_model: int, scale: float = 4.0):
    """An edit adding one fixed random vector to the residual stream."""
    vector = scale * torch.randn(d_model, generator=torch.Generator().manual_seed(3))
    return lambda act, name: act + vector


@pytest.mark.parametrize("family", CAUSAL)
def test_greedy_equals_hf_generate_and_each_padded_row_equals_its_solo_run(family):
    model = _model(family)  # both sides stop rows at the model's own EOS id
    ours = model.generate(PADDED, max_new_tokens=6, output_logits=True)
    reference = model.hf.generate(IDS, attention_mask=MASK, generation_config=HFGenerationConfig(
        max_new_tokens=6, do_sample=False, pad_token_id=0, output_logits=True, return_dict_in_generate=True))
    hf_logits = torch.stack(reference.logits, dim=1)  # [batch, step, vocab]
    for row, tokens in enumerate(ours.tokens):
        assert tokens + [0] * (6 - len(tokens)) == reference.sequences[row, IDS.shape[1]:].tolist()
        if family == "mixtral":  # expert routing sums tokens per expert: the order differs by float rounding
            torch.testing.assert_close(ours.logits[row], hf_logits[row, :len(tokens)], atol=1e-5, rtol=1e-5)
        else:
            assert torch.equal(ours.logits[row], hf_logits[row, :len(tokens)])
        alone = model.generate(IDS[row][MASK[row].bool()], max_new_tokens=6)
        assert alone.tokens[0] == tokens, row
    assert ours.prompt_lengths == [5, 3, 2]


def test_right_padded_input_is_moved_to_left_padding():
    ids, mask = left_pad(torch.tensor([[5, 6, 7], [8, 9, 0]]), torch.tensor([[1, 1, 1], [1, 1, 0]]), pad_id=-1)
    assert ids.tolist() == [[5, 6, 7], [-1, 8, 9]] and mask.tolist() == [[1, 1, 1], [0, 1, 1]]


def test_hooks_see_absolute_positions_and_which_tokens_are_prompt():
    model = _model("llama")
    seen = []
    model.generate(PADDED, max_new_tokens=3, eos_token_ids=(),
                   hooks={"blocks.0.hook_resid_post": lambda act, name: seen.append(model.positions)})
    first, second, third = seen
    assert first.absolute.tolist() == [[0, 1, 2, 3, 4], [-1, -1, 0, 1, 2], [-1, -1, -1, 0, 1]]
    assert torch.equal(first.is_prompt, MASK.bool()) and not first.is_generated.any()
    assert second.absolute.tolist() == [[5], [3], [2]] and third.absolute.tolist() == [[6], [4], [3]]
    assert third.is_generated.all() and not third.is_prompt.any()


def test_a_plain_forward_covers_prompt_positions_and_scoped_edits_touch_only_the_chosen_ones():
    model = _model("llama")
    right_padded = {"input_ids": torch.tensor([[5, 6, 7], [8, 9, 0]]), "attention_mask": torch.tensor([[1, 1, 1],
                                                                                                      [1, 1, 0]])}
    seen, acts = [], {}

    def record(act, name):
        seen.append(model.positions)
        acts[len(acts)] = act
    edit = scoped(lambda act, name: act + 1.0, {1, 2})
    with torch.no_grad(), model.hooks([("blocks.0.hook_resid_post", record), ("blocks.0.hook_resid_post", edit),
                                       ("blocks.0.hook_resid_post", record)]):
        model(right_padded)
    assert seen[0].absolute.tolist() == [[0, 1, 2], [0, 1, -1]] and seen[0].is_prompt.tolist() == [
        [True, True, True], [True, True, False]]
    expected = torch.tensor([[0.0, 1.0, 1.0], [0.0, 1.0, 0.0]])[..., None].expand_as(acts[0])
    torch.testing.assert_close(acts[1] - acts[0], expected)  # +1 at absolute positions 1 and 2, never on padding


@pytest.mark.parametrize("family", ["llama", "gpt2"])
@pytest.mark.parametrize("where", ["prompt", "generated", "all", (1, 4, 6)])
def test_scoped_intervention_gives_the_same_tokens_and_logits_with_and_without_the_kv_cache(family, where):
    model = _model(family)
    hooks = {"blocks.1.hook_resid_post": scoped(_steer(model.info.d_model), where)}
    settings = dict(max_new_tokens=6, eos_token_ids=(), output_logits=True)
    cached = model.generate(PADDED, hooks=hooks, **settings)
    rerun = model.generate(PADDED, hooks=hooks, use_cache=False, **settings)
    clean = model.generate(PADDED, **settings)
    assert cached.tokens == rerun.tokens
    for with_cache, without in zip(cached.logits, rerun.logits):
        torch.testing.assert_close(with_cache, without, atol=1e-5, rtol=1e-5)
    changed = [not torch.allclose(c[0], s[0]) for c, s in zip(clean.logits, cached.logits)]
    # the first new token sees only prompt positions: a "generated"-only edit cannot change it
    assert changed == ([False] * 3 if where == "generated" else [True] * 3)
    assert cached.tokens != clean.tokens


def test_generated_scope_equals_a_hand_written_full_rerun_decode():
    model = _model("llama")
    steer = _steer(model.info.d_model)
    prompt = [5, 6, 7, 8]
    ours = model.generate(torch.tensor(prompt), max_new_tokens=5, eos_token_ids=(),
                          hooks={"blocks.1.hook_resid_post": scoped(steer, "generated")})
    tokens = list(prompt)
    only_new = lambda act, name: torch.where(torch.arange(act.shape[1])[None, :, None] >= len(prompt),
                                             steer(act, name), act)
    with torch.no_grad(), model.hooks({"blocks.1.hook_resid_post": only_new}):
        for _ in range(5):
            tokens.append(int(model(torch.tensor([tokens]))[0, -1].argmax()))
    assert ours.tokens[0] == tokens[len(prompt):]


def test_pattern_hooks_scope_query_positions_the_same_with_and_without_the_cache():
    model = _model("llama")
    uniform = lambda pattern, name: torch.where(pattern > 0, 1.0, 0.0) / (pattern > 0).sum(-1, keepdim=True)
    hooks = {"blocks.0.attn.hook_pattern": scoped(uniform, "generated")}
    cached = model.generate(PADDED, hooks=hooks, max_new_tokens=5, eos_token_ids=(), output_logits=True)
    rerun = model.generate(PADDED, hooks=hooks, max_new_tokens=5, eos_token_ids=(), output_logits=True,
                           use_cache=False)
    assert cached.tokens == rerun.tokens
    torch.testing.assert_close(torch.stack(cached.logits), torch.stack(rerun.logits), atol=1e-5, rtol=1e-5)
    assert model.hf.config._attn_implementation != "mechscope_eager"  # switched back after the call


WORDS = [f"w{i}" for i in range(93)]  # 4 special tokens + 93 words = the tiny models' 97 ids


@pytest.fixture(scope="module")
def worded():
    return mechscope.load_model(tiny_hf("llama"), tokenizer=word_tokenizer(WORDS), device="cpu", check=False)


def test_stop_strings_cut_the_text_and_end_the_row_at_the_token_that_completed_them(worded):
    prompts = ["w1 w2 w3", "w50 w7"]
    free = worded.generate(prompts, max_new_tokens=8, eos_token_ids=())
    words = free.texts[0].split()
    stop = f" {words[3]}"  # the fourth new word of row 0
    first = words.index(words[3])
    stopped = worded.generate(prompts, max_new_tokens=8, eos_token_ids=(), stop=[stop])
    assert stopped.texts[0] == " ".join(words[:first])
    assert stopped.tokens[0] == free.tokens[0][:first + 1] and stopped.finish_reasons[0] == "stop"
    row1_stop = free.texts[1].find(stop)
    assert stopped.texts[1] == (free.texts[1] if row1_stop < 0 else free.texts[1][:row1_stop])


def test_on_text_sees_each_rows_text_so_far_decoded_once_with_the_stop_check(worded):
    prompts = ["w1 w2 w3", "w50 w7"]
    seen: dict[int, list[str]] = {0: [], 1: []}
    free = worded.generate(prompts, max_new_tokens=6, eos_token_ids=(), on_text=lambda row, text: seen[row].append(text))
    for row in (0, 1):
        assert seen[row] == [worded.tokenizer.decode(free.tokens[row][:n + 1]) for n in range(6)]
        assert seen[row][-1] == free.texts[row]


def test_a_row_ending_at_eos_does_not_change_the_rows_that_run_on(worded):
    prompts = ["w1 w2 w3", "w50 w7"]
    free = worded.generate(prompts, max_new_tokens=8, eos_token_ids=())
    eos = next(t for t in free.tokens[0][1:] if t not in free.tokens[1])  # ends row 0 only
    ended = worded.generate(prompts, max_new_tokens=8, eos_token_ids=eos)
    cut = free.tokens[0].index(eos) + 1
    assert ended.tokens == [free.tokens[0][:cut], free.tokens[1]]
    assert ended.finish_reasons == ["eos", "length"]
    assert ended.texts[0] == worded.tokenizer.decode(free.tokens[0][:cut - 1])


def test_sampling_with_a_seed_is_reproducible_and_top_k_1_is_greedy():
    model = _model("llama")
    sample = dict(max_new_tokens=12, eos_token_ids=(), temperature=1.5)
    first = model.generate(PADDED, seed=7, **sample)
    assert model.generate(PADDED, seed=7, **sample).tokens == first.tokens
    assert model.generate(PADDED, seed=8, **sample).tokens != first.tokens
    greedy = model.generate(PADDED, max_new_tokens=12, eos_token_ids=())
    assert model.generate(PADDED, seed=9, top_k=1, **sample).tokens == greedy.tokens
    assert model.generate(PADDED, seed=9, top_p=1e-6, **sample).tokens == greedy.tokens


def test_bad_settings_and_models_without_an_unembedding_are_refused():
    model = _model("llama")
    with pytest.raises(GenerationError, match="unknown generation settings.*max_tokens"):
        model.generate(PADDED, max_tokens=3)
    with pytest.raises(GenerationError, match="top_p must be None or in \\(0, 1\\], got 0"):
        model.generate(PADDED, top_p=0)
    with pytest.raises(GenerationError, match="stop strings need a tokenizer"):
        model.generate(PADDED, stop="w1")
    with pytest.raises(GenerationError, match="unembedding"):
        _model("bert").generate(PADDED)
    with pytest.raises(MechscopeError, match="scope must be one of"):
        scoped(lambda act, name: act, "answer")
    with pytest.raises(MechscopeError, match="only known inside a hook"):
        model.positions


def _byte_level_bpe():
    """A byte-level BPE tokenizer (GPT-2/Llama 3 style) trained here, offline, on text with multi-byte characters."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    text = ["Çığ düştü, şöyle böyle 🙂 naïve café — the cat sat on the mat.", "def f(x):\n    return x ** 2"] * 20
    core.train_from_iterator(text, trainers.BpeTrainer(vocab_size=300, initial_alphabet=pre_tokenizers.ByteLevel
                                                       .alphabet(), special_tokens=["<eos>"]))
    return PreTrainedTokenizerFast(tokenizer_object=core, eos_token="<eos>")


@pytest.mark.parametrize("which", ["bpe", "wordpiece"])
def test_incremental_text_equals_decoding_every_token_at_once(which, minilm):
    from mechscope.models.generation import IncrementalText

    tokenizer = _byte_level_bpe() if which == "bpe" else minilm.tokenizer
    rng = torch.Generator().manual_seed(0)
    rows = [tokenizer.encode("Çığ 🙂 naïve café, the mat. x ** 2", add_special_tokens=False)]
    rows += [torch.randint(0, len(tokenizer), (40,), generator=rng).tolist() for _ in range(5)]
    partial = 0
    for row in rows:
        stream = IncrementalText(tokenizer)
        for n, token in enumerate(row, 1):
            text, full = stream.push(token), tokenizer.decode(row[:n], skip_special_tokens=True)
            if not full.endswith("\ufffd"):
                assert text == full
            else:  # inside a multi-byte character: only whole characters so far, a prefix of the full text
                partial += 1
                assert full.startswith(text)
    assert which == "wordpiece" or partial > 0  # the byte-level rows did split characters across tokens
