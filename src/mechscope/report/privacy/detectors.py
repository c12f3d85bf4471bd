"""Personal-data detectors: e-mail addresses, phone numbers (international, Turkish and North American
formats), Turkish national ID numbers (TCKN, both checksum digits verified), IBANs (ISO 13616 mod-97 with
the country's length), IPv4 (not version numbers, netmasks, loopback or reserved addresses) and IPv6 addresses;
and redaction of what they find with typed placeholders."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

KINDS = ("email", "iban", "tckn", "phone", "ipv6", "ipv4")  # also the priority when two matches overlap

EMAIL = re.compile(r"(?<![\w.%+-])[A-Za-z0-9][A-Za-z0-9._%+-]*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")
TCKN = re.compile(r"(?<!\d)[1-9]\d{10}(?!\d)")
IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,32}")
PHONES = (
    re.compile(r"(?<![\w+])\+\d{1,3}(?:[ .-]?\(?\d{1,4}\)?){2,5}(?!\d)"),  # international, E.164 with separators
    re.compile(r"(?<![\d+])0 ?\(?[2-5]\d{2}\)?[ .-]?\d{3}[ .-]?\d{2}[ .-]?\d{2}(?!\d)"),  # Turkish 0 5xx xxx xx xx
    re.compile(r"(?<![\d+])\(?[2-9]\d{2}\)?[ .-]\d{3}[ .-]\d{4}(?!\d)"),  # North American, separators required
)
OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
IPV4 = re.compile(rf"(?<![\w.]){OCTET}(?:\.{OCTET}){{3}}(?![\w]|\.\d)")
IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")
MAYBE = re.compile(r"@|\d\d|[0-9A-Fa-f]:")  # every kind needs one of these; most texts have none
IBAN_LENGTHS = {"AT": 20, "BE": 16, "CH": 21, "DE": 22, "DK": 18, "ES": 24, "FI": 18, "FR": 27, "GB": 22, "GR": 27,
                "IE": 22, "IT": 27, "LU": 20, "NL": 18, "NO": 15, "PL": 28, "PT": 25, "SE": 24, "TR": 26}


@dataclass(frozen=True)
class Match:
    """A span of personal data in a text: its kind and [start, end) character offsets."""

    kind: str
    start: int
    end: int

    @property
    def placeholder(self) -> str:
        return f"[{self.kind.upper()}]"


def tckn_valid(number: str) -> bool:
    """A Turkish national ID: 11 digits, first non-zero, d10 = (7·(d1+d3+d5+d7+d9) − (d2+d4+d6+d8)) mod 10 and
    d11 = (d1+…+d10) mod 10."""
    if len(number) != 11 or not number.isdigit() or number[0] == "0":
        return False
    d = [int(c) for c in number]
    return d[9] == (7 * sum(d[0:9:2]) - sum(d[1:8:2])) % 10 and d[10] == sum(d[:10]) % 10


def iban_valid(text: str) -> bool:
    """ISO 13616: country code, two check digits, the country's length (15–34 where unknown), and the number
    formed by moving the first four characters to the end (letters as 10–35) is 1 mod 97."""
    iban = text.replace(" ", "").upper()
    if not re.fullmatch(r"[A-Z]{2}\d{2}[A-Z0-9]+", iban):
        return False
    if len(iban) != IBAN_LENGTHS.get(iban[:2], len(iban)) or not 15 <= len(iban) <= 34:
        return False
    return int("".join(str(int(c, 36)) for c in iban[4:] + iban[:4])) % 97 == 1


def _ibans(text: str):
    """The longest valid IBAN prefix of each candidate (a candidate may run into the next word)."""
    for found in IBAN.finditer(text):
        ends = [found.start() + i + 1 for i, c in enumerate(found.group()) if c != " "]
        for end in reversed(ends):
            if iban_valid(text[found.start():end]):
                yield Match("iban", found.start(), end)
                break


def _ipv6(candidate: str) -> bool:
    try:
        ipaddress.IPv6Address(candidate)
    except ValueError:
        return False
    groups = [g for g in candidate.split(":") if g]
    return len(groups) >= 3 or bool(groups) and len(groups[0]) >= 3  # not "1::2" (a slice) nor "::1"


VERSION_BEFORE = re.compile(r"(?i)(?:\bv|\bversion|\brelease|\bpython|\bver\.?|[=<>~]=|\bbuild)\s*$")
MASK_OCTETS = {"0", "128", "192", "224", "240", "248", "252", "254", "255"}


def _ipv4(candidate: str, before: str) -> bool:
    """An address that can point at someone's machine: not a version number ("version 1.2.3.4"), a netmask, or a
    loopback, unspecified, multicast or reserved address."""
    if VERSION_BEFORE.search(before):
        return False
    octets = candidate.split(".")
    if set(octets) <= MASK_OCTETS and octets == sorted(octets, key=lambda o: -int(o)) and octets[0] == "255":
        return False
    address = ipaddress.IPv4Address(candidate)
    return not (address.is_loopback or address.is_unspecified or address.is_multicast or address.is_reserved)


def candidates(text: str):
    for found in EMAIL.finditer(text):
        yield Match("email", *found.span())
    yield from _ibans(text)
    for found in TCKN.finditer(text):
        if tckn_valid(found.group()):
            yield Match("tckn", *found.span())
    for pattern in PHONES:
        for found in pattern.finditer(text):
            if 7 <= sum(c.isdigit() for c in found.group()) <= 15:
                yield Match("phone", *found.span())
    for found in IPV6.finditer(text):
        if _ipv6(found.group()):
            yield Match("ipv6", *found.span())
    for found in IPV4.finditer(text):
        if _ipv4(found.group(), text[max(0, found.start() - 16):found.start()]):
            yield Match("ipv4", *found.span())


def find_personal_data(text: str) -> list[Match]:
    """Non-overlapping matches in `text`, in order; where two overlap the kind earlier in KINDS wins."""
    if not MAYBE.search(text):
        return []
    chosen: list[Match] = []
    for match in sorted(candidates(text), key=lambda m: (KINDS.index(m.kind), m.start, -m.end)):
        if all(match.end <= other.start or match.start >= other.end for other in chosen):
            chosen.append(match)
    return sorted(chosen, key=lambda m: m.start)


def redact_text(text: str) -> tuple[str, list[Match]]:
    """`text` with every match replaced by its placeholder ("[EMAIL]", "[TCKN]", ...), and the matches."""
    matches = find_personal_data(text)
    for match in reversed(matches):
        text = text[:match.start] + match.placeholder + text[match.end:]
    return text, matches


def redact_tokens(tokens: list[str]) -> tuple[list[str], list[Match]]:
    """Redact a token sequence as the text it spells, keeping its length: a match's first token carries the
    placeholder, the other tokens it covers lose only the covered characters."""
    matches = find_personal_data("".join(tokens))
    if not matches:
        return list(tokens), []
    out, offset = [], 0
    for token in tokens:
        start, end, pieces, cursor = offset, offset + len(token), [], offset
        for match in matches:
            if match.end <= start or match.start >= end:
                continue
            pieces.append(token[cursor - start:max(match.start, start) - start])
            if match.start >= start:
                pieces.append(match.placeholder)
            cursor = min(match.end, end)
        pieces.append(token[cursor - start:])
        out.append("".join(pieces))
        offset = end
    return out, matches
