"""The shipped 10-fold lists and the fold -> TFDS split helper."""

import pytest

import tfds_camus
from tfds_camus import folds

ALL_PATIENTS = {f"patient{i:04d}" for i in range(1, 501)}


def test_test_groups_partition_the_500_patients():
    groups = [folds.group_patients(k) for k in range(1, 11)]
    assert all(len(g) == 50 for g in groups)
    flat = [p for g in groups for p in g]
    assert len(flat) == len(set(flat)) == 500
    assert set(flat) == ALL_PATIENTS


@pytest.mark.parametrize("k", range(1, 11))
def test_each_fold_is_disjoint_and_complete(k):
    fold = folds.load_folds()[k]
    train, val, test = (set(fold[p]) for p in ("training", "validation", "testing"))
    assert len(train) == 400 and len(val) == 50 and len(test) == 50
    assert not train & val and not train & test and not val & test
    assert train | val | test == ALL_PATIENTS


@pytest.mark.parametrize("k", range(1, 11))
def test_fold_splits_match_the_shipped_lists(k):
    splits = tfds_camus.fold_splits(k)
    assert set(splits) == {"train", "validation", "test"}
    fold = folds.load_folds()[k]

    def patients(split_string):
        names = split_string.split("+")
        assert len(names) == len(set(names))
        ids = []
        for name in names:
            assert name.startswith("group")
            ids += folds.group_patients(int(name[len("group") :]))
        return ids

    train, val, test = (patients(splits[s]) for s in ("train", "validation", "test"))
    assert sorted(train) == sorted(fold["training"])
    assert sorted(val) == sorted(fold["validation"])
    assert sorted(test) == sorted(fold["testing"])
    assert splits["test"] == f"group{k}"
    assert splits["validation"] == f"group{k % 10 + 1}"
    assert not set(splits["train"].split("+")) & {splits["test"], splits["validation"]}


def test_fold_10_validates_on_group_1():
    assert tfds_camus.fold_splits(10)["validation"] == "group1"


def test_group_of():
    assert folds.group_of("patient0001") == 1
    assert folds.group_of("patient0042") == 2
    assert folds.group_of("patient0455") == 10
    assert folds.group_of("patient0501") is None


@pytest.mark.parametrize("bad", [0, 11, -1, "1", 1.0, True])
def test_invalid_fold_is_rejected(bad):
    with pytest.raises(ValueError, match="fold"):
        tfds_camus.fold_splits(bad)


def test_provenance_and_licence_are_shipped():
    from importlib import resources

    files = resources.files("tfds_camus.folds")
    readme = files.joinpath("README.md").read_text()
    assert "Leclerc" in readme and "GCN_multistructure" in readme
    assert "MIT License" in files.joinpath("LICENSE.GCN_multistructure").read_text()
