"""Every verb's flags come from its config dataclass: the parser's defaults are the config's defaults."""

from __future__ import annotations

from dataclasses import asdict, fields

import pytest

from mechscope.autointerp.labelling import LabelConfig
from mechscope.circuits.config import HeadsConfig, PatchConfig, TaskSelection
from mechscope.cli import build_parser
from mechscope.cli.config_flags import config_options, field_comments
from mechscope.cli.dictionaries import dictionary_configs
from mechscope.data.harvester import HarvestConfig
from mechscope.dictionaries import DictionaryConfig, TrainConfig
from mechscope.dictionaries.variants import VARIANTS
from mechscope.errors import MechscopeError
from mechscope.evaluation import EvalConfig
from mechscope.features.config import MiningConfig
from mechscope.steering.calibration import CalibrationConfig

VERBS = [  # argv with only the required arguments, the config the verb builds, fields the CLI sets otherwise
    (["harvest", "m", "--hook", "h", "--out", "o"], HarvestConfig, {"hooks", "shard", "extra"}),
    (["train", "cache", "--out", "o"], TrainConfig, set()),
    (["sweep", "cache", "--model", "m", "--out", "o"], TrainConfig, set()),
    (["eval", "m", "dictionary"], EvalConfig, set()),
    (["label", "dir"], LabelConfig, set()),
    (["mine", "m", "dictionary", "--out", "o"], MiningConfig, set()),
    (["patch", "m"], PatchConfig, set()),
    (["dla", "m"], TaskSelection, set()),
    (["heads", "m"], HeadsConfig, set()),
    (["monitor", "calibrate", "m", "--layer", "1", "--out", "o"], CalibrationConfig, set()),
]


@pytest.mark.parametrize("argv, config_type, elsewhere", VERBS, ids=[v[0][0] for v in VERBS])
def test_parser_defaults_are_the_configs_defaults(argv, config_type, elsewhere):
    args = build_parser().parse_args(argv)
    options = config_options(args, config_type, skip=tuple(elsewhere))
    assert set(options) == {f.name for f in fields(config_type)} - elsewhere  # every field has a flag
    required = {"hooks": ["h"]} if config_type is HarvestConfig else {}
    assert asdict(config_type(**required, **options)) == asdict(config_type(**required))


def test_flags_parse_into_config_values():
    args = build_parser().parse_args(["train", "c", "--out", "o", "--tokens", "3e5", "--adam-betas", "0.8,0.9",
                                      "--no-normalize-activations", "--wandb", "proj"])
    cfg = TrainConfig(**config_options(args, TrainConfig))
    assert (cfg.tokens, cfg.adam_betas, cfg.normalize_activations, cfg.wandb_project) == \
        (300_000, (0.8, 0.9), False, "proj")
    args = build_parser().parse_args(["label", "d", "--scorers", "detection,fuzzing", "--chain-of-thought"])
    assert LabelConfig(**config_options(args, LabelConfig)).scorers == ("detection", "fuzzing")


@pytest.mark.parametrize("arch", sorted(VARIANTS))
def test_each_arch_group_defaults_to_the_dictionary_config(arch):
    (cfg,) = dictionary_configs(["--arch", arch], d_in=8)
    assert cfg == DictionaryConfig(8, 128, arch)


def test_arch_groups_take_their_own_fields_only():
    jump, topk = dictionary_configs(["--arch", "jumprelu", "--target-l0", "16", "--arch", "topk", "--width", "40",
                                     "--k", "4"], d_in=8)
    assert (jump.target_l0, jump.l0_coefficient) == (16.0, DictionaryConfig(8, 8, "jumprelu").l0_coefficient)
    assert (topk.d_sae, topk.k) == (40, 4)
    with pytest.raises(MechscopeError, match="--arch jumprelu takes .*--target-l0.*; got --k"):
        dictionary_configs(["--arch", "jumprelu", "--k", "4"], d_in=8)


def test_help_text_is_each_fields_comment():
    assert field_comments(TrainConfig)["lr_decay_fraction"] == "linear decay to 0 over the last 20% of steps"
    assert "tokens" not in field_comments(TrainConfig)  # no comment on that line, so no help beyond the default
    text = build_parser()._subparsers._group_actions[0].choices["label"].format_help()
    assert "held-out activating examples per latent (default 20)" in " ".join(text.split())


def test_python_dash_m_runs_the_same_command_line():
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "mechscope", "train", "--help"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and "--latent-shards" in done.stdout
