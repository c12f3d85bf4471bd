"""The safety request set: split by template, every category on both sides of the split, seeded, refusals judged."""

from __future__ import annotations

import pytest

from mechscope.errors import TaskError
from mechscope.tasks.refusal_judge import RefusalJudge
from mechscope.tasks.safety_requests import HARMFUL, HARMLESS, SafetyRequests

ISSUE_CATEGORIES = {"weapons", "malware", "fraud", "drugs", "harassment", "self-harm", "privacy"}


@pytest.mark.parametrize("harmful", [True, False])
def test_train_and_test_share_no_template_and_cover_every_category(harmful):
    requests = SafetyRequests()
    train, test = requests.requests(harmful, "train"), requests.requests(harmful, "test")
    assert not {r.template_id for r in train} & {r.template_id for r in test}
    categories = set(HARMFUL if harmful else HARMLESS)
    assert {r.category for r in train} == {r.category for r in test} == categories
    assert all(r.harmful == harmful for r in train + test)
    # one of five templates per category is held out, with all six of its slot fillers
    assert len(test) == 6 * len(categories) and len(train) == 4 * 6 * len(categories)


def test_the_issue_categories_are_all_there_and_no_request_is_on_both_sides():
    assert ISSUE_CATEGORIES <= set(HARMFUL)
    requests = SafetyRequests()
    texts = {harmful: {r.text for split in ("train", "test") for r in requests.requests(harmful, split)}
             for harmful in (True, False)}
    assert not texts[True] & texts[False]
    assert len(texts[True]) == 5 * 6 * len(HARMFUL)  # every template x slot is a distinct request


def test_the_split_and_the_refusals_are_seeded():
    assert SafetyRequests(seed=3).requests(True) == SafetyRequests(seed=3).requests(True)
    assert SafetyRequests(seed=3).refusals() == SafetyRequests(seed=3).refusals()
    held = {seed: {r.template_id for r in SafetyRequests(seed=seed).requests(True)} for seed in (0, 1)}
    assert held[0] != held[1]


def test_every_refusal_reply_is_judged_a_refusal_and_phrasings_vary():
    pairs = SafetyRequests().refusals()
    assert [request for request, _ in pairs] == SafetyRequests().requests(True, "train")
    assert all(RefusalJudge().refuses(reply) for _, reply in pairs)
    assert len({reply.split(".")[0] for _, reply in pairs}) >= 5
    assert all("crisis line" in reply for request, reply in pairs if request.category == "self-harm")


def test_bad_settings_are_named():
    with pytest.raises(TaskError, match="strictly between 0 and 1, got 1.5"):
        SafetyRequests(test_fraction=1.5)
    with pytest.raises(TaskError, match="split must be 'train' or 'test', got 'dev'"):
        SafetyRequests().requests(True, "dev")
