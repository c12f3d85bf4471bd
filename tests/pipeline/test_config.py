"""Pipeline configs: every error names the key path and the expected type, and nothing runs before the check."""

from __future__ import annotations

import pytest

from mechscope.errors import PipelineError
from mechscope.pipeline import load_config, parse_config, run_pipeline, shipped_configs


@pytest.mark.parametrize("stages, message", [
    ([{"name": "h", "kind": "harvest", "tokens": "many"}], r"stages\.h\.tokens: expected int, got str 'many'"),
    ([{"name": "h", "kind": "harvst"}], r"stages\.h\.kind: expected one of .*harvest"),
    ([{"name": "h", "kind": "harvest", "tokns": 3}], r"stages\.h\.tokns: unknown key; HarvestStageConfig takes"),
    ([{"name": "t", "kind": "train", "activations": "h"}],
     r"stages\.t\.activations: expected the name of an earlier stage of kind harvest, got 'h'"),
    ([{"name": "o", "kind": "organism"}, {"name": "t", "kind": "train", "activations": "o"}],
     r"stages\.t\.activations: expected a stage of kind harvest, got 'o' of kind 'organism'"),
    ([{"name": "s", "kind": "superposition", "toy": {"m": "two"}}], r"stages\.s\.toy\.m: expected int"),
    ([{"name": "s", "kind": "superposition", "toy": {"m": 0}}], r"stages\.s\.toy: feature_probability"),
    ([{"name": "h", "kind": "harvest", "hooks": "blocks.0.hook_resid_post"}], r"stages\.h\.hooks: expected a list"),
    ([{"name": "h", "kind": "harvest", "hooks": [0]}], r"stages\.h\.hooks\[0\]: expected str, got int"),
    ([{"name": "h", "kind": "harvest"}, {"name": "h", "kind": "harvest"}], r"stages\.h: a stage of that name"),
])
def test_config_errors_name_the_key_and_the_expected_type(stages, message):
    with pytest.raises(PipelineError, match=message):
        parse_config({"stage": stages})


def test_a_bad_config_fails_before_any_stage_runs(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('[[stage]]\nname = "toy"\nkind = "superposition"\n\n'
                    '[[stage]]\nname = "train"\nkind = "train"\nactivations = "toy"\n')
    with pytest.raises(PipelineError, match=r"stages\.train\.activations: expected a stage of kind harvest"):
        run_pipeline(path, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_numbers_widen_to_float_but_booleans_are_not_numbers():
    config = parse_config({"stage": [{"name": "t", "kind": "train", "load": "x.safetensors", "lr": 1}]})
    assert config.stages[0].section.lr == 1.0 and isinstance(config.stages[0].section.lr, float)
    with pytest.raises(PipelineError, match=r"stages\.t\.k: expected int, got bool"):
        parse_config({"stage": [{"name": "t", "kind": "train", "k": True}]})


def test_shipped_configs_parse_and_name_their_stages_inputs():
    assert {"demo", "jailbreak-monitor"} <= set(shipped_configs())
    for name in shipped_configs():
        config = load_config(name)
        names = [stage.name for stage in config.stages]
        for position, stage in enumerate(config.stages):
            assert set(stage.inputs().values()) <= set(names[:position])
