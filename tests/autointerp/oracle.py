"""Synthetic latents with a known trigger word, and an in-process 'LLM' that follows labels literally."""

from __future__ import annotations

import json
import random
import re
import threading
from collections import Counter

from mechscope.autointerp.completion import Completion
from mechscope.autointerp.records import Example, LatentRecord

WORDS = ("the a of and river stone light music paper garden window yellow quiet table market letter bridge "
         "winter ocean forest engine number theory castle").split()


def synthetic_record(latent: int, trigger: str, seed: int = 0, n: int = 12, length: int = 16) -> LatentRecord:
    """A latent that fires (activation 1-5) exactly on `trigger`; windows 0..n-1 train, the rest held out."""
    rng = random.Random(seed)

    def example(window: int, fires: bool) -> Example:
        tokens = [rng.choice([w for w in WORDS if w != trigger]) for _ in range(length)]
        acts = [0.0] * length
        if fires:
            for i in rng.sample(range(length), 2):
                tokens[i], acts[i] = trigger, rng.uniform(1, 5)
        return Example(tuple(tokens), tuple(acts), window)

    train = [example(w, True) for w in range(n)]
    negatives_train = [example(n + w, False) for w in range(n)]
    test = [example(2 * n + w, True) for w in range(n)]
    negatives = [example(3 * n + w, False) for w in range(n)]
    return LatentRecord(latent, train, test, negatives, negatives_train)


class LiteralOracle:
    """Answers scorer prompts by looking for the label's quoted (or plain) words in the excerpt."""

    def __init__(self):
        self.calls = 0
        self._lock = threading.Lock()

    def complete(self, messages, *, max_tokens=512, temperature=0.0, json_schema=None, logprobs=False, latent=None):
        with self._lock:
            self.calls += 1
        return Completion(literal_answer(messages))


def literal_answer(messages) -> str:
    """The JSON answer a literal reader gives: the most marked word as the label; label words looked up."""
    system, user = messages[0]["content"], messages[-1]["content"]
    if "researcher" in system:
        marked = Counter(re.findall(r"<<(.*?)>>", user))
        return json.dumps({"explanation": f'"{marked.most_common(1)[0][0]}"' if marked else "nothing"})
    label = user.split("\n", 1)[0].removeprefix("Description: ")
    words = set(re.findall(r'"([^"]+)"', label)) or set(label.lower().split())
    if "integer scale" in system:
        tokens = [line.split("\t", 1)[1] for line in user.split("\n") if "\t" in line]
        return json.dumps({"activations": [10 if t in words else 0 for t in tokens]})
    excerpt = user.split("Excerpt: ", 1)[1]
    if "marked" in system:
        marked = set(re.findall(r"<<(.*?)>>", excerpt))
        answer = int(bool(marked) and marked <= words)
    else:
        answer = int(any(w in excerpt.split() for w in words))
    return json.dumps({"answer": answer})
