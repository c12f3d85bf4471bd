"""What auto-interpretation sees of one latent: examples split into those shown and those held out.

The explainer only ever sees `train` (and `train_negatives`); scorers only ever see `test` and `negatives`. `LatentRecord`
refuses to exist when the two share a context window (delphi's overlap bug inflated its scores).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mechscope.errors import MechscopeError

HIGHLIGHT = ("<<", ">>")


class ExampleOverlapError(MechscopeError):
    """A held-out example shares its context window with an example the explainer saw."""


@dataclass(frozen=True)
class Example:
    """One context window: its tokens (as text pieces) and the latent's activation at each."""

    tokens: tuple[str, ...]
    activations: tuple[float, ...]
    window: int = -1  # the corpus window it came from; -1 when unknown

    @property
    def max_activation(self) -> float:
        return max(self.activations, default=0.0)

    @property
    def text(self) -> str:
        return join_tokens(self.tokens)

    def highlighted(self, marked: set[int] | None = None, threshold: float = 0.0) -> str:
        """The text with `marked` token positions (default: those above `threshold`) wrapped in << >>."""
        if marked is None:
            marked = {i for i, a in enumerate(self.activations) if a > threshold}
        pieces = [f"{HIGHLIGHT[0]}{t}{HIGHLIGHT[1]}" if i in marked else t for i, t in enumerate(self.tokens)]
        return join_tokens(pieces)


@dataclass
class LatentRecord:
    """A latent's examples: `train` for explaining; `test` (activating) and `negatives` for scoring."""

    latent: int
    train: list[Example]
    test: list[Example]
    negatives: list[Example] = field(default_factory=list)
    train_negatives: list[Example] = field(default_factory=list)  # non-activating contexts the explainer may see

    def __post_init__(self):
        seen = {e.window for e in self.train + self.train_negatives if e.window >= 0}
        shared = sorted(seen & {e.window for e in self.test + self.negatives if e.window >= 0})
        if shared:
            raise ExampleOverlapError(
                f"latent {self.latent}: held-out examples share context windows {shared[:5]} with the examples "
                f"the explainer sees; expected disjoint splits")


def join_tokens(tokens) -> str:
    """Token pieces back to text: pieces that carry their own spaces (byte-level BPE) are concatenated;
    otherwise (WordPiece) words are space-separated and '##' pieces continue the previous word."""
    bare = [t.replace(HIGHLIGHT[0], "").replace(HIGHLIGHT[1], "") for t in tokens]
    if any(b[:1].isspace() or b[:1] in ("Ġ", "▁") for b in bare):
        return "".join(t.replace("Ġ", " ").replace("▁", " ") for t in tokens).strip()
    text = ""
    for token, b in zip(tokens, bare):
        text += token.replace("##", "", 1) if b.startswith("##") else " " + token
    return text.strip()
