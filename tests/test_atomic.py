"""tfds_camus.atomic: a target is the old file or the whole new one, never a part."""

import json

import numpy as np
import pytest

from tfds_camus import atomic


def test_write_json_round_trip_and_no_temporary_left(tmp_path):
    path = atomic.write_json(tmp_path / "sub" / "state.json", {"epoch": 3, "score": float("nan")})
    data = json.loads(path.read_text())
    assert data["epoch"] == 3 and np.isnan(data["score"])
    assert [p.name for p in path.parent.iterdir()] == ["state.json"]


def test_an_error_while_writing_keeps_the_old_file(tmp_path):
    target = atomic.write_text(tmp_path / "report.md", "old\n")
    with pytest.raises(RuntimeError, match="disk full"):
        with atomic.atomic_path(target) as tmp:
            tmp.write_text("half of the new")
            raise RuntimeError("disk full")
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["report.md"]


def test_suffix_is_kept_for_writers_that_choose_the_format_from_it(tmp_path):
    target = tmp_path / "predictions.npz"
    with atomic.atomic_path(target) as tmp:
        assert tmp.name.endswith(".npz.tmp") and not tmp.exists()
        tmp.write_bytes(b"x")
    with atomic.atomic_path(target, suffix=".npz") as tmp:
        np.savez(tmp, a=np.arange(3))
    np.testing.assert_array_equal(np.load(target)["a"], np.arange(3))
