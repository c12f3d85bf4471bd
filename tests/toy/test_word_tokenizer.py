"""Word-level tokenizers: closed vocabulary, <bos> prepended, years cut into two-digit tokens."""

from __future__ import annotations

from mechscope.toy.word_tokenizer import pretokenize, word_tokenizer


def test_ids_bos_and_round_trip():
    tok = word_tokenizer(["When", "Mary", "and", "John", ",", "."], extra_special=["<user>"])
    assert tok.convert_ids_to_tokens(list(range(5))) == ["<pad>", "<unk>", "<bos>", "<eos>", "<user>"]
    ids = tok("<user> When Mary and John , Mary .")["input_ids"]
    assert ids[:2] == [tok.bos_token_id, tok.convert_tokens_to_ids("<user>")] and tok.unk_token_id not in ids
    assert tok.decode(ids, skip_special_tokens=True) == "When Mary and John, Mary."
    assert tok("Bob")["input_ids"] == [tok.bos_token_id, tok.unk_token_id]


def test_digit_pairs_split_years_like_gpt2():
    assert pretokenize("the year 1732 to 17.", digit_pairs=True) == ["the", "year", "17", "32", "to", "17", "."]
    assert pretokenize("the year 1732", digit_pairs=False) == ["the", "year", "1732"]
    tok = word_tokenizer(["year", "17", "32"], digit_pairs=True)
    assert tok.convert_ids_to_tokens(tok("year 1732")["input_ids"]) == ["<bos>", "year", "17", "32"]
