"""Word-level tokenizers over a task's closed vocabulary, built locally with the `tokenizers` library.

Every word a task can write gets one id, so no test prompt ever meets an unknown token; `<bos>` is
prepended on encode, as GPT-2-style prompts expect. Digit runs can be cut into pairs so that "1732"
becomes "17" "32", the way GPT-2's BPE splits years (the greater-than task needs the century alone).
"""

from __future__ import annotations

from collections.abc import Iterable

SPECIAL_TOKENS = ("<pad>", "<unk>", "<bos>", "<eos>")


def _pre_tokenizer(digit_pairs: bool):
    from tokenizers import Regex, pre_tokenizers

    splits = [pre_tokenizers.Whitespace()]
    if digit_pairs:
        splits.append(pre_tokenizers.Split(Regex(r"\d\d"), behavior="isolated"))
    return pre_tokenizers.Sequence(splits)


def pretokenize(text: str, digit_pairs: bool = False) -> list[str]:
    """The words `word_tokenizer` cuts `text` into (special tokens excepted)."""
    return [word for word, _ in _pre_tokenizer(digit_pairs).pre_tokenize_str(text)]


def word_tokenizer(words: Iterable[str], extra_special: Iterable[str] = (), digit_pairs: bool = False,
                   chat_template: str | None = None):
    """A PreTrainedTokenizerFast: ids 0..3 are <pad> <unk> <bos> <eos>, then `extra_special`, then sorted words."""
    from tokenizers import Tokenizer, decoders, models, processors
    from transformers import PreTrainedTokenizerFast

    specials = list(SPECIAL_TOKENS) + [t for t in extra_special if t not in SPECIAL_TOKENS]
    vocab = {token: i for i, token in enumerate(specials)}
    for word in sorted(set(words) - set(specials)):
        vocab[word] = len(vocab)
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = _pre_tokenizer(digit_pairs)
    core.post_processor = processors.TemplateProcessing(single="<bos> $A", pair="<bos> $A $B",
                                                        special_tokens=[("<bos>", vocab["<bos>"])])
    core.decoder = decoders.WordPiece(cleanup=True)  # words joined by spaces, no space before punctuation
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>", unk_token="<unk>",
                                        bos_token="<bos>", eos_token="<eos>",
                                        additional_special_tokens=specials[len(SPECIAL_TOKENS):])
    if chat_template is not None:
        tokenizer.chat_template = chat_template
    return tokenizer
