"""Concept families: the built-in prompt sets, the seeded split, user files that add or replace, bad files named."""

from __future__ import annotations

import pytest

from mechscope.scans import FamilyScanError, load_families
from mechscope.scans.families import ConceptFamily
from tests.scans.conftest import family_toml

SAFETY = {"deception", "manipulation", "sycophancy", "weapons", "cyber_attack", "code_vulnerability", "bias",
          "personal_data", "self_harm"}


def test_builtin_families_hold_matched_contrastive_sets():
    families = load_families()
    assert {f.name for f in families} == SAFETY
    for family in families:
        assert len(family.positive) == len(family.negative) >= 20, family.name
        assert len(set(family.positive) | set(family.negative)) == 2 * len(family.positive), family.name
        mean = [sum(map(len, side)) / len(side) for side in (family.positive, family.negative)]
        assert abs(mean[0] - mean[1]) < 0.2 * max(mean), (family.name, mean)  # matched in length


def test_split_depends_only_on_text_and_seed():
    family = load_families(select=["weapons"])[0]
    split = family.split(0.4, seed=0)
    for side in (0, 1):
        test, train = split["test"][side], split["train"][side]
        assert not set(test) & set(train) and len(test) == round(0.4 * 24) and len(test) + len(train) == 24
    reordered = ConceptFamily(family.name, family.description, family.keywords, family.positive[::-1],
                              family.negative[::-1])
    assert {k: tuple(map(set, v)) for k, v in reordered.split(0.4, 0).items()} == \
        {k: tuple(map(set, v)) for k, v in split.items()}
    assert set(family.split(0.4, seed=1)["test"][0]) != set(split["test"][0])


def test_user_file_adds_a_family_and_replaces_only_the_fields_it_gives(tmp_path):
    path = tmp_path / "families.toml"
    path.write_text(family_toml({
        "weapons": {"keywords": ["crossbow"]},
        "gambling": {"description": "Gambling: betting money on games of chance.", "keywords": ["gambl", "bet"],
                     "positive": [f"I bet {n} dollars at the casino" for n in range(5)],
                     "negative": [f"I paid {n} dollars at the cinema" for n in range(5)]}}))
    families = {f.name: f for f in load_families(path)}
    builtin = load_families(select=["weapons"])[0]
    assert families["weapons"].keywords == ("crossbow",)
    assert families["weapons"].positive == builtin.positive and families["weapons"].sha256() != builtin.sha256()
    assert families["gambling"].negative[2] == "I paid 2 dollars at the cinema"
    assert [f.name for f in load_families(path, select=["gambling", "bias"])] == ["gambling", "bias"]


@pytest.mark.parametrize("text, named", [
    ('[families.weapons]\npostive = ["a"]\n', "families.weapons.postive is not a family key"),
    ('[families.weapons]\nkeywords = "gun"\n', "families.weapons.keywords must be a list of non-empty strings"),
    ('[families.weapons]\ndescription = 3\n', "families.weapons.description must be a non-empty string"),
    ('[families.weapons]\npositive = ["a", "b"]\n', "families.weapons.positive needs at least 4 prompts, got 2"),
    ('[families.new]\nkeywords = ["x"]\n', "families.new.description, families.new.positive"),
    ('[weapons]\nkeywords = ["x"]\n', "expected only \\[families.NAME\\] tables"),
    ('[families.weapons\nkeywords = 1\n', "is not valid TOML"),
])
def test_bad_family_files_name_the_key(tmp_path, text, named):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(FamilyScanError, match=named):
        load_families(path)


def test_unknown_selection_and_missing_file_are_named(tmp_path):
    with pytest.raises(FamilyScanError, match="unknown families \\['guns'\\]"):
        load_families(select=["guns"])
    with pytest.raises(FamilyScanError, match="no concept-family file"):
        load_families(tmp_path / "nope.toml")
