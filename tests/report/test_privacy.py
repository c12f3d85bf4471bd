"""Personal-data detectors with known answers (checksums true and false), token-aware redaction, and the scan
and redaction of a run's catalogue contexts and dashboard."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from mechscope.errors import MechscopeError
from mechscope.features import Catalog
from mechscope.report.privacy import (find_personal_data, iban_valid, redact_personal_data, redact_text,
                                      redact_tokens, scan_personal_data, tckn_valid)
from tests.report.conftest import EMAIL_TOKENS, INVALID_TOKENS, PLANTED_LATENT, fresh_run


@pytest.mark.parametrize("number, valid", [("10000000146", True), ("12345678950", True), ("12345678906", False),
                                           ("10000000147", False), ("01234567890", False), ("1000000014", False)])
def test_tckn_checksum(number, valid):
    assert tckn_valid(number) is valid


@pytest.mark.parametrize("iban, valid", [("TR33 0006 1005 1978 6457 8413 26", True), ("TR330006100519786457841326", True),
                                         ("TR330006100519786457841327", False),  # one digit off: mod 97 fails
                                         ("TR3300061005197864578413", False),  # TR needs 26 characters
                                         ("GB82WEST12345698765432", True), ("DE89370400440532013000", True),
                                         ("DE89370400440532013001", False)])
def test_iban_checksum(iban, valid):
    assert iban_valid(iban) is valid


def _found(text: str) -> list[tuple[str, str]]:
    return [(m.kind, text[m.start:m.end]) for m in find_personal_data(text)]


def test_each_kind_is_found_and_lookalikes_are_not():
    text = ("mail jane.doe@example.org, call +90 532 123 45 67 or 0 (212) 555 12 34 or (415) 555-2671; "
            "TCKN 10000000146, not 12345678906; IBAN TR33 0006 1005 1978 6457 8413 26 ABC; "
            "hosts 192.168.1.20 and 2001:db8::8a2e:370:7334; code x[1::2], std::vector, @property, 2024-01-15")
    assert _found(text) == [("email", "jane.doe@example.org"), ("phone", "+90 532 123 45 67"),
                            ("phone", "0 (212) 555 12 34"), ("phone", "(415) 555-2671"), ("tckn", "10000000146"),
                            ("iban", "TR33 0006 1005 1978 6457 8413 26"), ("ipv4", "192.168.1.20"),
                            ("ipv6", "2001:db8::8a2e:370:7334")]


def test_version_numbers_netmasks_and_local_addresses_are_not_ip_addresses():
    text = ("Python 3.11.4.1, version 1.2.3.4, v2.0.0.1, pkg==10.1.2.3, mask 255.255.255.0, listen on 0.0.0.0 "
            "or 127.0.0.1, multicast 224.0.0.251, broadcast 255.255.255.255; but a client at 81.214.7.9")
    assert _found(text) == [("ipv4", "81.214.7.9")]


def test_random_eleven_digit_numbers_rarely_pass_the_tckn_checksum():
    import random

    rng = random.Random(0)
    numbers = [str(rng.randrange(10 ** 10, 10 ** 11)) for _ in range(5000)]
    assert sum(tckn_valid(n) for n in numbers) < 5000 * 0.02  # two check digits: 1 in 100 by chance


def test_token_redaction_keeps_length_and_everything_else():
    tokens, matches = redact_tokens(EMAIL_TOKENS)
    assert [m.kind for m in matches] == ["email", "tckn"]
    assert len(tokens) == len(EMAIL_TOKENS)
    assert tokens == [" mail", " [EMAIL]", "", "", "", "", "", " [TCKN]", ""]
    assert redact_text("write to a@b.io now") == ("write to [EMAIL] now", find_personal_data("write to a@b.io now"))


def test_scan_finds_planted_data_in_catalogue_and_dashboard_and_redacts_the_dashboard(mined, tmp_path):
    run = fresh_run(mined, tmp_path)
    before = scan_personal_data(run)
    where = {f.location: f.counts for f in before.findings}
    assert where["features/examples.parquet"]["email"] == 1 and where["features/examples.parquet"]["tckn"] == 1
    page = f"features/dashboard/latents/{PLANTED_LATENT}.html"
    assert where[page]["email"] == 1 and where[page]["tckn"] == 1
    assert where["scan/scan.json"]["email"] == 1  # a family-scan example
    assert sum(before.totals.values()) == before.totals["email"] + before.totals["tckn"] == 5
    assert before.totals["tckn"] == 2  # the invalid-checksum number is never counted
    text = (run / page).read_text()
    assert "doe" in text and "12345678906" in text

    after = redact_personal_data(run)
    assert after.totals == before.totals
    text = (run / page).read_text()
    assert "[EMAIL]" in text and "[TCKN]" in text and "jane" not in text and "00146" not in text
    assert "12345678906" in text  # not personal data: kept
    assert sum(scan_personal_data(run).totals[k] for k in ("email", "tckn")) == 2  # only the catalogue keeps them
    with Catalog(run / "features") as catalog:  # the catalogue is untouched unless asked
        assert "".join(catalog.examples(PLANTED_LATENT, kind="top")[0].tokens).startswith("".join(EMAIL_TOKENS))


def test_catalogue_redaction_keeps_contexts_aligned(mined, tmp_path):
    run = fresh_run(mined, tmp_path)
    original = pq.read_table(run / "features/examples.parquet")
    redact_personal_data(run, catalogue=True)
    redacted = pq.read_table(run / "features/examples.parquet")
    assert redacted["activations"].equals(original["activations"])
    assert [len(t) for t in redacted["tokens"].to_pylist()] == [len(t) for t in original["tokens"].to_pylist()]
    with Catalog(run / "features") as catalog:
        first, second = catalog.examples(PLANTED_LATENT, kind="top")[:2]
    assert list(first.tokens[:len(EMAIL_TOKENS)]) == redact_tokens(EMAIL_TOKENS)[0]
    assert list(second.tokens[:len(INVALID_TOKENS)]) == INVALID_TOKENS
    changed = [i for i, (a, b) in enumerate(zip(first.tokens, EMAIL_TOKENS)) if a != b]
    assert len({first.token_ids[i] for i in changed}) == len(set(first.tokens[i] for i in changed))
    assert sum(scan_personal_data(run).totals.values()) == 0


def test_scanning_a_missing_directory_says_what_was_expected(tmp_path):
    with pytest.raises(MechscopeError, match="expected a run directory"):
        scan_personal_data(tmp_path / "missing")


def test_cli_scan_prints_counts_never_values_and_redact_clears_them(mined, tmp_path, capsys):
    import json

    from mechscope.cli import main

    run = fresh_run(mined, tmp_path)
    assert main(["privacy", "scan", str(run), "--json"]) == 0
    out = capsys.readouterr().out
    result = json.loads(out.splitlines()[-1])
    assert result["totals"]["email"] == 3 and result["locations"]["features/examples.parquet"] == {"email": 1, "tckn": 1}
    assert "jane" not in out and "10000000146" not in out
    assert main(["privacy", "redact", str(run), "--catalogue", "--json"]) == 0
    capsys.readouterr()
    assert main(["privacy", "scan", str(run), "--json"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["locations"] == {}
