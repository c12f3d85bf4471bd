"""`mechscope monitor calibrate|run` end to end on the refusal organism."""

from __future__ import annotations

import json

import pytest

from mechscope.cli import main
from mechscope.errors import MechscopeError
from mechscope.steering.exchange import read_control_vector


def run(argv, capsys) -> dict:
    assert main([*argv, "--json", "--device", "cpu"]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_calibrate_writes_a_monitor_that_run_uses_to_stop_harmful_requests(small_organism, tmp_path, capsys):
    organism = small_organism("refusal")
    path = str(organism.path)
    out = tmp_path / "refusal-monitor.gguf"
    calibrated = run(["monitor", "calibrate", path, "--layer", "1", "--out", str(out)], capsys)
    assert calibrated["auroc"] >= 0.95 and calibrated["file"] == str(out)
    saved = read_control_vector(out).metadata["monitor"]
    assert (saved["threshold"], saved["hook"]) == (calibrated["threshold"], "blocks.1.hook_resid_post")

    harmful, harmless = organism.task.instructions(True)[0], organism.task.instructions(False)[0]
    result = run(["monitor", "run", path, str(out), harmful, harmless, "--guard", "stop", "--watch", "last_prompt",
                  "--max-new-tokens", "4"], capsys)
    stopped, answered = result["rows"]
    assert (stopped["finish_reason"], stopped["text"], stopped["alert"]["in_prompt"]) == ("halted", "", True)
    assert answered["alert"] is None and answered["finish_reason"] != "halted" and answered["text"]
    assert len(answered["new_token_scores"]) == 4  # the last new token was never fed back: its score is NaN


def test_half_a_prompt_pair_is_refused(tmp_path):
    from mechscope.cli import build_parser
    from mechscope.cli.monitors import _prompt_sets

    args = build_parser().parse_args(["monitor", "calibrate", "m", "--layer", "1", "--out", "o",
                                      "--positives", str(tmp_path / "p.txt")])
    with pytest.raises(MechscopeError, match="both --positives and --negatives"):
        _prompt_sets(args)
