"""The 10 patient-level cross-validation folds of the CAMUS paper, shipped as text files.

``subGroup{k}_testing.txt`` (k = 1..10, 50 patients each) partition patient0001..patient0500;
fold k validates on the next fold's test group (fold 10 on group 1) and trains on the other
eight groups. See ``README.md`` in this folder for the provenance and licence of the lists.

Example:
    >>> from tfds_camus import folds
    >>> len(folds.load_folds()[1]["testing"])
    50
    >>> folds.fold_splits(10)["validation"]
    'group1'
"""

from __future__ import annotations

import functools
from importlib import resources

NUM_FOLDS = 10
_PARTS = ("training", "validation", "testing")


def _read_list(name: str) -> tuple[str, ...]:
    text = resources.files(__name__).joinpath(name).read_text(encoding="utf-8")
    return tuple(line.strip() for line in text.splitlines() if line.strip())


@functools.lru_cache(maxsize=1)
def _load() -> dict[int, dict[str, tuple[str, ...]]]:
    return {
        k: {part: _read_list(f"subGroup{k}_{part}.txt") for part in _PARTS}
        for k in range(1, NUM_FOLDS + 1)
    }


def load_folds() -> dict[int, dict[str, list[str]]]:
    """Returns the shipped fold lists.

    Returns:
        ``{k: {"training": [...], "validation": [...], "testing": [...]}}`` for k = 1..10,
        patient ids such as ``"patient0001"``, in the order of the files.
    """
    return {k: {part: list(ids) for part, ids in parts.items()} for k, parts in _load().items()}


def group_patients(k: int) -> list[str]:
    """Returns the 50 patients of test group ``k`` (1..10), i.e. the test set of fold ``k``."""
    _check_fold(k)
    return list(_load()[k]["testing"])


@functools.lru_cache(maxsize=1)
def _group_index() -> dict[str, int]:
    return {pid: k for k in range(1, NUM_FOLDS + 1) for pid in _load()[k]["testing"]}


def group_of(patient_id: str) -> int | None:
    """Returns the test group (1..10) that holds ``patient_id``, or None if it is in none."""
    return _group_index().get(patient_id)


def group_split_name(k: int) -> str:
    """Returns the TFDS split name of test group ``k``: ``"group{k}"``."""
    _check_fold(k)
    return f"group{k}"


def fold_splits(k: int) -> dict[str, str]:
    """Returns the TFDS split strings of fold ``k`` of the ``camus`` builder.

    Fold ``k`` tests on group ``k``, validates on group ``k + 1`` (group 1 for fold 10) and
    trains on the eight other groups, exactly as ``subGroup{k}_*.txt``. The one fold ->
    groups mapping: ``keras_runet.cross_validation.fold_split_strings`` only drops from it
    the groups that a prepared dataset lacks.

    Args:
        k: fold number, 1..10.

    Returns:
        ``{"train": "group..+group..", "validation": "group{k+1}", "test": "group{k}"}``,
        strings to pass as ``split=`` to ``tfds.load`` or ``builder.as_dataset``.
    """
    _check_fold(k)
    validation = k % NUM_FOLDS + 1
    train = [g for g in range(1, NUM_FOLDS + 1) if g not in (k, validation)]
    return {
        "train": "+".join(group_split_name(g) for g in train),
        "validation": group_split_name(validation),
        "test": group_split_name(k),
    }


def _check_fold(k: int) -> None:
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= NUM_FOLDS:
        raise ValueError(f"fold must be an integer in 1..{NUM_FOLDS}, got {k!r}")
