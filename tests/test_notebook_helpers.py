"""keras_runet.notebook: the steps the three notebooks share (parameters, work folder, data,
fold), tested without running a notebook."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest

from keras_runet import notebook


def test_override_parameters_converts_to_the_type_of_the_default():
    namespace = {
        "EPOCHS": 30,
        "SCALE": 0.5,
        "CAMUS_DIR": "",
        "AUGMENT": True,
        "WORK_DIR": Path("kept"),  # not a plain value: not a parameter
        "lower": 1,  # not in capitals: not a parameter
    }
    environ = {
        "RUNET_NB_EPOCHS": "2",
        "RUNET_NB_SCALE": "1",
        "RUNET_NB_CAMUS_DIR": "/data/camus",
        "RUNET_NB_AUGMENT": "off",
        "RUNET_NB_WORK_DIR": "/elsewhere",
        "RUNET_NB_lower": "5",
        "RUNET_NB_MAX_TRIALS": "2",  # names no parameter of this notebook: ignored
    }
    replaced = notebook.override_parameters(namespace, environ=environ, verbose=False)
    assert replaced == {"EPOCHS": 2, "SCALE": 1.0, "CAMUS_DIR": "/data/camus", "AUGMENT": False}
    assert namespace["EPOCHS"] == 2 and isinstance(namespace["SCALE"], float)
    assert namespace["WORK_DIR"] == Path("kept") and namespace["lower"] == 1


def test_override_parameters_ignores_empty_values_and_prints_what_it_replaces(capsys):
    namespace = {"EPOCHS": 30, "CAMUS_DIR": "/default"}
    environ = {"RUNET_NB_EPOCHS": "3", "RUNET_NB_CAMUS_DIR": ""}
    assert notebook.override_parameters(namespace, environ=environ) == {"EPOCHS": 3}
    assert namespace["CAMUS_DIR"] == "/default"
    assert capsys.readouterr().out == "EPOCHS = 3  (from RUNET_NB_EPOCHS)\n"


@pytest.mark.parametrize(
    ("default", "text", "kind"), [(30, "2.5", "int"), (0.5, "half", "float"), (True, "2", "bool")]
)
def test_override_parameters_names_a_value_that_does_not_convert(default, text, kind):
    with pytest.raises(ValueError, match=rf"RUNET_NB_X='{text}': X takes a {kind} value"):
        notebook.override_parameters({"X": default}, environ={"RUNET_NB_X": text})


def test_override_parameters_reads_the_environment_by_default(monkeypatch):
    monkeypatch.setenv("RUNET_NB_PATIENTS", "10")
    namespace = {"PATIENTS": 100}
    notebook.override_parameters(namespace, verbose=False)
    assert namespace == {"PATIENTS": 10}


def _fake_colab(monkeypatch, mounted: list):
    colab = types.ModuleType("google.colab")
    colab.drive = types.SimpleNamespace(mount=mounted.append)
    google = types.ModuleType("google")
    google.colab = colab
    monkeypatch.setitem(sys.modules, "google", google)
    monkeypatch.setitem(sys.modules, "google.colab", colab)


def test_work_dir_is_created_and_defaults_by_place(tmp_path, monkeypatch):
    assert notebook.work_dir(tmp_path / "a" / "b") == tmp_path / "a" / "b"
    assert (tmp_path / "a" / "b").is_dir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    assert not notebook.in_colab()
    assert notebook.work_dir("") == Path("runet_notebooks") and Path("runet_notebooks").is_dir()
    _fake_colab(monkeypatch, [])
    monkeypatch.setattr(notebook, "COLAB_WORK_DIR", str(tmp_path / "content" / "runet"))
    assert notebook.in_colab()
    assert notebook.work_dir() == tmp_path / "content" / "runet"


def test_work_dir_on_drive_mounts_drive_and_refuses_a_local_path(tmp_path, monkeypatch):
    mounted = []
    _fake_colab(monkeypatch, mounted)
    drive = tmp_path / "content" / "drive"
    monkeypatch.setattr(notebook, "DRIVE", str(drive))
    monkeypatch.setattr(notebook, "DRIVE_WORK_DIR", str(drive / "MyDrive" / "runet"))
    assert notebook.work_dir(on_drive=True) == drive / "MyDrive" / "runet"
    assert mounted == [str(drive)] and (drive / "MyDrive" / "runet").is_dir()
    assert notebook.work_dir(drive / "x", on_drive=True) == drive / "x"
    with pytest.raises(ValueError, match="is not on Google Drive"):
        notebook.work_dir(tmp_path / "local", on_drive=True)
    assert not (tmp_path / "local").exists()


@pytest.fixture()
def writes(monkeypatch):
    """The calls of write_synthetic_camus (none is done)."""
    from tfds_camus import phantom

    calls = []

    def fake(out_dir, num_patients, **kwargs):
        calls.append(dict(out_dir=Path(out_dir), num_patients=num_patients, **kwargs))
        return Path(out_dir)

    monkeypatch.setattr(phantom, "write_synthetic_camus", fake)
    return calls


def test_locate_camus_uses_an_existing_folder(tmp_path, writes, capsys):
    camus = tmp_path / "CAMUS"
    camus.mkdir()
    found = notebook.locate_camus(str(camus), tmp_path / "work", patients=10, scale=0.3)
    assert found == (camus, tmp_path / "work" / "tfds" / "camus")
    assert writes == []
    assert capsys.readouterr().out == f"Using CAMUS from {camus}\n"


def test_locate_camus_writes_a_synthetic_camus_spread_over_the_groups(tmp_path, writes, capsys):
    work = tmp_path / "work"
    missing = tmp_path / "nowhere"
    manual_dir, data_dir = notebook.locate_camus(missing, work, patients=10, scale=0.3, seed=4)
    name = "synthetic_10p_scale0.3"
    assert (manual_dir, data_dir) == (work / name, work / "tfds" / name)
    assert writes == [
        dict(out_dir=work / name, num_patients=10, seed=4, scale=0.3, per_group=True, reuse=True)
    ]
    out = capsys.readouterr().out
    assert f"{missing} does not exist: using a synthetic CAMUS instead" in out
    assert f"Using a synthetic CAMUS of 10 patients in {work / name}" in out
    notebook.locate_camus("", work, patients=10, scale=0.3)
    assert "does not exist" not in capsys.readouterr().out  # empty: synthetic, no warning


def test_locate_camus_mounts_drive_in_colab_only_for_a_drive_folder(tmp_path, monkeypatch, writes):
    mounted = []
    _fake_colab(monkeypatch, mounted)
    notebook.locate_camus(tmp_path, tmp_path / "work", patients=2, scale=0.3)
    assert mounted == []
    notebook.locate_camus("/content/drive/MyDrive/CAMUS", tmp_path / "work", patients=2, scale=0.3)
    assert mounted == ["/content/drive"]
    assert len(writes) == 1  # the Drive folder does not exist here: synthetic


def test_locate_camus_writes_and_then_reuses_a_real_synthetic_camus(tmp_path):
    first = notebook.locate_camus("", tmp_path, patients=2, scale=0.1)
    files = sorted(p for p in first[0].rglob("*") if p.is_file())
    stamps = [p.stat().st_mtime_ns for p in files]
    assert any(p.name.startswith("Info_") for p in files)
    assert notebook.locate_camus("", tmp_path, patients=2, scale=0.1) == first
    assert [p.stat().st_mtime_ns for p in files] == stamps  # reused, not written again


def test_prepare_fold_splits_the_prepared_groups(tmp_path, monkeypatch, capsys):
    from keras_runet import data

    class Splits(dict):  # as TFDS's splits dict: "group3+group4" adds the groups up
        def __getitem__(self, split):
            count = sum(dict.__getitem__(self, g) for g in split.split("+"))
            return types.SimpleNamespace(num_examples=count)

    # A small dataset: groups 5..10 are missing.
    splits = Splits({f"group{g}": 4 * g for g in (1, 2, 3, 4)})
    info = types.SimpleNamespace(full_name="camus/256/1.0.0", splits=splits)
    builder = types.SimpleNamespace(info=info)
    calls = []

    def fake_prepare(manual_dir, data_dir, config):
        calls.append((manual_dir, data_dir, config))
        return builder

    monkeypatch.setattr(data, "prepare_camus", fake_prepare)
    fold = notebook.prepare_fold(tmp_path / "m", tmp_path / "d", 1)
    assert calls == [(tmp_path / "m", tmp_path / "d", "256")]
    assert fold.builder is builder
    assert fold.splits == {"train": "group3+group4", "validation": "group2", "test": "group1"}
    assert fold.sizes == {"train": 28, "validation": 8, "test": 4}
    assert tuple(fold) == (builder, fold.splits, fold.sizes)  # the notebooks unpack it
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "camus/256/1.0.0"
    assert out[1].split() == ["train", "28", "images", "(group3+group4)"]


def test_label_colormap_has_one_colour_per_label():
    from tfds_camus.vocabulary import LABELS

    colormap = notebook.label_colormap()
    assert colormap.N == len(LABELS) == len(notebook.LABEL_COLOURS)
    assert colormap(0)[3] == 0.0  # the background is transparent
