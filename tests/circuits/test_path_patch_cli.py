"""`mechscope path-patch` on a saved hand-built model: the planted paths come out on top."""

from __future__ import annotations

import pytest

from mechscope.circuits import CircuitResult
from mechscope.circuits.config import PathPatchConfig
from mechscope.errors import MechscopeError
from mechscope.toy.handbuilt import save_handbuilt
from tests.circuits.test_cli import run


def test_path_patch_verb_ranks_the_planted_paths_first(tmp_path, capsys):
    model_dir = save_handbuilt(tmp_path / "handbuilt")
    out = run(["path-patch", str(model_dir), "--task", "induction", "--prompts", "16",
               "--receivers", "a1.h2<q>,a1.h2<k>,a1.h2<v>,logits", "--out", str(tmp_path / "pp")], capsys)
    strongest = [path for path, _ in out["strongest_paths"][:3]]
    assert strongest[:2] == ["a1.h2->logits", "a0.h1->a1.h2<k>"] and abs(out["strongest_paths"][2][1]) < 1e-3
    result = CircuitResult.load(tmp_path / "pp")
    assert result.axes == ("receiver", "sender") and result.info["config"]["task"] == "induction"


def test_path_patch_settings_are_checked():
    with pytest.raises(MechscopeError, match="at least one receiver"):
        PathPatchConfig(receivers=())
