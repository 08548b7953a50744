"""`runet prepare` and keras_runet.data.prepare_camus: what a dataset is built from, reruns,
--force, --skip-invalid, and what a killed preparation leaves (issues 12 and 13)."""

import os
import subprocess
import sys

import pytest

from keras_runet import cli, data
from tfds_camus import phantom

KW = dict(scale=0.1, half_sequence_frames=(3, 3))


@pytest.fixture
def tree(tmp_path):
    return phantom.write_synthetic_camus(tmp_path / "camus", patient_ids=[1, 2], **KW)


def _run(*argv):
    return subprocess.run(
        [sys.executable, "-m", "keras_runet.cli", *argv],
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        timeout=600,
    )


def test_rerun_reuses_only_a_dataset_built_from_the_same_files(tree, tmp_path):
    out = tmp_path / "data"
    first = data.prepare_camus(tree, out)
    assert first.info.metadata["source"]["fingerprint"]
    again = data.prepare_camus(tree, out)  # same files: reused
    assert again.info.splits["group1"].num_examples == 8
    cfg = tree / "CAMUS_public/database_nifti/patient0002/Info_2CH.cfg"
    cfg.write_text(cfg.read_text().replace("Sex: ", "Sex: F\nNote: "))  # the user fixed a file
    with pytest.raises(data.DatasetSourceError, match="holds other files now.*--force"):
        data.prepare_camus(tree, out)
    (tmp_path / "empty").mkdir()
    with pytest.raises(data.DatasetSourceError):
        data.prepare_camus(tmp_path / "empty", out)  # not silently the old splits
    rebuilt = data.prepare_camus(tree, out, force=True)
    assert (
        rebuilt.info.metadata["source"]["fingerprint"]
        != first.info.metadata["source"]["fingerprint"]
    )
    data.prepare_camus(tree, out)  # and the rebuilt one is reused


def test_the_same_files_elsewhere_are_the_same_dataset(tree, tmp_path):
    import shutil

    out = tmp_path / "data"
    data.prepare_camus(tree, out)
    moved = tmp_path / "moved"
    shutil.copytree(tree, moved, copy_function=shutil.copy2)  # keeps the modification times
    data.prepare_camus(moved, out)


def test_a_killed_preparation_is_cleaned_up(tree, tmp_path):
    out = tmp_path / "data"
    # what TFDS leaves when a preparation is killed: its temporary dataset folder, and a
    # half-done extraction
    left = out / "camus" / "256" / "incomplete.AB12CD_2.0.0"
    left.mkdir(parents=True)
    (left / "camus-group1.tfrecord-00000-of-00001").write_bytes(b"partial")
    extraction = out / "downloads" / "extracted" / "incomplete.0f0f_ZIP.CAMUS_public.zip"
    extraction.mkdir(parents=True)
    builder = data.prepare_camus(tree, out)
    assert not left.exists() and not extraction.exists()
    assert builder.info.splits["group1"].num_examples == 8


def test_runet_prepare_force_and_mismatch_messages(tree, tmp_path, capsys):
    out = tmp_path / "data"
    assert cli.main(["prepare", "--manual-dir", str(tree), "--data-dir", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "release: nifti" in printed and "group1: 8 examples, 2 patients" in printed
    image = tree / "CAMUS_public/database_nifti/patient0001/patient0001_2CH_ED.nii.gz"
    os.utime(image, ns=(10**9, 10**9))
    assert cli.main(["prepare", "--manual-dir", str(tree), "--data-dir", str(out)]) == 2
    err = capsys.readouterr().err
    assert "holds other files now" in err and "--force" in err
    argv = ["prepare", "--manual-dir", str(tree), "--data-dir", str(out), "--force"]
    assert cli.main(argv) == 0


def test_runet_prepare_in_a_fresh_process_one_line_no_traceback(tree, tmp_path):
    (tmp_path / "empty").mkdir()
    res = _run("prepare", "--manual-dir", str(tmp_path / "empty"), "--data-dir", str(tmp_path))
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "is empty: put the CAMUS zip file(s) in it" in res.stderr
    bad = tree / "CAMUS_public/database_nifti/patient0002/patient0002_4CH_ED_gt.nii.gz"
    bad.write_bytes(bad.read_bytes()[:50])
    res = _run("prepare", "--manual-dir", str(tree), "--data-dir", str(tmp_path / "d"))
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert f"{bad}: " in res.stderr and "--skip-invalid" in res.stderr
    res = _run(
        "prepare", "--manual-dir", str(tree), "--data-dir", str(tmp_path / "d"), "--skip-invalid"
    )
    assert res.returncode == 0, res.stderr
    assert "skipped 1 invalid patient(s):" in res.stdout and f"patient0002: {bad}" in res.stdout
