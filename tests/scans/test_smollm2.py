"""Family scans on SmolLM2-135M-Instruct (slow): the probes separate most built-in families on held-out prompts
at the middle layer while the shuffled-label controls stay at chance (figures in benchmarks/RESULTS.md)."""

from __future__ import annotations

import pytest

from mechscope.scans import FamilyScanConfig, scan_families


@pytest.mark.slow
def test_smollm2_probes_separate_the_families_and_controls_stay_at_chance(smollm2, tmp_path):
    result = scan_families(smollm2, None, tmp_path, FamilyScanConfig(hook="blocks.15.hook_resid_post"))
    auroc = {f.name: f.probe.auroc for f in result.families}
    control = [f.probe.control_auroc for f in result.families]
    assert sum(auroc.values()) / len(auroc) > 0.8, auroc
    assert min(auroc["manipulation"], auroc["personal_data"], auroc["weapons"]) > 0.9, auroc
    assert abs(sum(control) / len(control) - 0.5) < 0.1, control
