"""The ``camus`` TFDS builder: TFDS's own test case over dummy_data/, and runs on synthetic trees."""

import logging
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow_datasets as tfds

import tfds_camus
from tfds_camus import phantom, reader
from tfds_camus.camus import camus_dataset_builder

DUMMY = Path(camus_dataset_builder.__file__).parent / "dummy_data"


# --- tfds.testing over dummy_data/ (patients 1: group1, 42: group2, 455: group10) -----------


class CamusOriginalTest(tfds.testing.DatasetBuilderTestCase):
    """Original release: person 455 is testing/patient0005, without masks: skipped."""

    DATASET_CLASS = camus_dataset_builder.Builder
    EXAMPLE_DIR = str(DUMMY / "original")
    BUILDER_CONFIG_NAMES_TO_TEST = ["256", "native"]
    SPLITS = {"group1": 4, "group2": 4}
    SKIP_CHECKSUMS = True


class CamusNiftiTest(tfds.testing.DatasetBuilderTestCase):
    """2023 release, with database_split/ (train / test repeat the groups' examples)."""

    DATASET_CLASS = camus_dataset_builder.Builder
    EXAMPLE_DIR = str(DUMMY / "nifti")
    BUILDER_CONFIG_NAMES_TO_TEST = ["256"]
    SPLITS = {
        "group1": 4,
        "group2": 4,
        "group10": 4,
        "train": 8,
        "test": 4,
    }
    OVERLAPPING_SPLITS = ["train", "test"]
    SKIP_CHECKSUMS = True


class CamusNiftiHalfSequenceTest(CamusNiftiTest):
    """Every frame of the 3-frame half sequences: 2 views x 3 frames per patient."""

    BUILDER_CONFIG_NAMES_TO_TEST = ["half_sequence_256"]
    SPLITS = {
        "group1": 6,
        "group2": 6,
        "group10": 6,
        "train": 12,
        "test": 6,
    }


# --- the builder on synthetic trees --------------------------------------------------------


def test_import_registers_camus_and_never_imports_keras_runet():
    import subprocess

    assert tfds.builder_cls("camus") is tfds_camus.Builder
    code = (
        "import sys, tfds_camus, tensorflow_datasets as tfds; "
        "assert 'camus' in tfds.list_builders(); "
        "assert 'keras_runet' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    # TensorFlow itself loads keras; tfds_camus's own code must not import it.
    package = Path(tfds_camus.__file__).parent
    for source in package.rglob("*.py"):
        for line in source.read_text().splitlines():
            words = line.split()
            if words[:1] in (["import"], ["from"]) and len(words) > 1:
                assert not words[1].startswith(("keras", "keras_runet")), (source, line)


def test_configs_and_features():
    builder = tfds.builder("camus", data_dir="/nonexistent")
    assert builder.builder_config.name == "256"
    assert [c.name for c in builder.BUILDER_CONFIGS] == ["256", "native", "half_sequence_256"]
    f = builder.info.features
    assert f["image"].shape == (256, 256, 1) and f["mask"].shape == (256, 256, 1)
    assert f["native_mask"].shape == (None, None, 1)
    assert f["view"].names == ["2CH", "4CH"]
    assert f["instant"].names == ["ED", "ES", "other"]
    assert f["image_quality"].names == ["Good", "Medium", "Poor", "Unknown"]
    assert f["spacing"].shape == (2,) and f["spacing"].dtype == np.float32
    assert f["native_shape"].shape == (2,) and f["native_shape"].dtype == np.int32
    native = tfds.builder("camus/native", data_dir="/nonexistent").info.features
    assert native["image"].shape == (None, None, 1)


def _prepare(config, manual_dir, data_dir, **kwargs):
    builder = tfds.builder(f"camus/{config}", data_dir=str(data_dir), **kwargs)
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir))
    )
    return builder


def _examples(builder, split):
    return list(tfds.as_numpy(builder.as_dataset(split=split)))


def test_native_config_returns_exactly_what_was_written(tmp_path):
    patients = [1, 2, 42, 455]  # groups 1, 1, 2, 10
    root = phantom.write_synthetic_camus(
        tmp_path / "src",
        patient_ids=patients,
        layout="nifti",
        scale=0.12,
        half_sequence_frames=(3, 4),
    )
    builder = _prepare("native", root, tmp_path / "data")
    # synthetic database_split: 1..400 training, 401..450 validation (none here), 451.. testing
    assert set(builder.info.splits) == {"group1", "group2", "group10", "train", "test"}
    assert builder.info.splits["test"].num_examples == 4
    assert {ex["patient_id"] for ex in _examples(builder, "test")} == {b"patient0455"}
    examples = _examples(builder, "group1+group2+group10")
    seen = {}
    for ex in examples:
        pid = ex["patient_id"].decode()
        view = reader.VIEWS[ex["view"]]
        instant = camus_dataset_builder.INSTANTS[ex["instant"]]
        seen[(pid, view, instant)] = ex
    expected = {
        (f"patient{p:04d}", v, i) for p in patients for v in reader.VIEWS for i in ("ED", "ES")
    }
    assert set(seen) == expected and len(examples) == len(expected)
    for (pid, view, instant), ex in seen.items():
        g = phantom.patient_params(pid, scale=0.12, half_sequence_frames=(3, 4)).views[view]
        np.testing.assert_allclose(ex["spacing"], [g.row_mm, g.col_mm], rtol=1e-6)
        assert tuple(ex["native_shape"]) == (g.rows, g.cols)
        d = reader.load_instant(root, pid, view, instant)
        np.testing.assert_array_equal(ex["image"][..., 0], d["image"])
        np.testing.assert_array_equal(ex["mask"][..., 0], d["gt"])
        np.testing.assert_array_equal(ex["native_mask"][..., 0], d["gt"])
        assert ex["frame_index"] == d["info"][instant] - d["info"]["ED"]
        assert not ex["es_to_ed"]
        assert ex["ef"] == pytest.approx(d["info"]["EF"])
        assert math.isnan(ex["edv"]) and math.isnan(ex["esv"])  # the 2023 cfg has no volumes
        quality = camus_dataset_builder.QUALITIES[ex["image_quality"]]
        assert quality == d["info"]["ImageQuality"]
    group1 = {ex["patient_id"].decode() for ex in _examples(builder, "group1")}
    assert group1 == {"patient0001", "patient0002"}


def test_256_config_on_the_original_release(tmp_path, caplog):
    root = phantom.write_synthetic_camus(
        tmp_path / "src",
        patient_ids=[2, 42, 460],
        layout="original",
        scale=0.12,
        half_sequence_frames=(3, 4),
    )
    with caplog.at_level(logging.INFO, logger="tfds_camus"):
        builder = _prepare("256", root, tmp_path / "data")
    assert set(builder.info.splits) == {"group1", "group2"}  # 460 is unlabeled (testing/)
    assert "group3: 50 of its 50 patients" in caplog.text
    assert "1 patients of testing/ have no ground truth" in caplog.text
    assert builder.info.metadata["unlabelled_testing_patients"] == ["testing/patient0010"]
    for ex in _examples(builder, "group1+group2"):
        pid, view = ex["patient_id"].decode(), reader.VIEWS[ex["view"]]
        instant = camus_dataset_builder.INSTANTS[ex["instant"]]
        d = reader.load_instant(root, pid, view, instant)
        assert ex["image"].shape == ex["mask"].shape == (256, 256, 1)
        np.testing.assert_array_equal(ex["native_mask"][..., 0], d["gt"])
        np.testing.assert_allclose(ex["spacing"], d["spacing"], rtol=1e-6)
        assert set(np.unique(ex["mask"])) == {0, 1, 2, 3}
        assert ex["frame_index"] == d["info"][instant] - d["info"]["ED"] > -1
        assert ex["edv"] == pytest.approx(d["info"]["LVedv"])
        assert ex["ef"] == pytest.approx(d["info"]["LVef"])
        # mask resized by nearest neighbour: its labels' areas follow the native mask's
        lv_native = (d["gt"] == 1).mean()
        assert (ex["mask"] == 1).mean() == pytest.approx(lv_native, rel=0.1)


def test_fold_splits_load(tmp_path):
    root = phantom.write_synthetic_camus(
        tmp_path / "src", patient_ids=[1, 42, 56], scale=0.1, half_sequence_frames=(3, 3)
    )  # groups 1, 2, 3
    builder = _prepare("256", root, tmp_path / "data")
    splits = tfds_camus.fold_splits(1)  # train on groups 3..10, of which only 3 exists here
    assert {ex["patient_id"] for ex in _examples(builder, splits["test"])} == {b"patient0001"}
    assert {ex["patient_id"] for ex in _examples(builder, splits["validation"])} == {b"patient0042"}
    assert {ex["patient_id"] for ex in _examples(builder, "group3")} == {b"patient0056"}
    with pytest.raises(Exception, match="group4"):
        builder.as_dataset(split=splits["train"])  # absent groups are absent splits


def test_empty_manual_dir_fails_with_instructions(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(AssertionError, match="CREATIS"):
        _prepare("256", tmp_path / "empty", tmp_path / "data")
    (tmp_path / "wrong" / "stuff").mkdir(parents=True)
    with pytest.raises(reader.CamusFormatError, match="(?s)no CAMUS release.*CREATIS"):
        _prepare("256", tmp_path / "wrong", tmp_path / "data")


def test_incomplete_patient_is_reported_or_skipped(tmp_path, caplog):
    root = phantom.write_synthetic_camus(
        tmp_path / "src",
        patient_ids=[1, 2],
        layout="original",
        scale=0.1,
        half_sequence_frames=(3, 3),
    )
    (root / "training/patient0002/patient0002_4CH_ES_gt.raw").unlink()
    (root / "training/patient0002/patient0002_4CH_ES_gt.mhd").unlink()
    with pytest.raises(reader.InvalidPatientsError, match="patient0002_4CH_ES_gt.mhd: missing"):
        _prepare("256", root, tmp_path / "data1")
    with caplog.at_level(logging.WARNING, logger="tfds_camus"):
        builder = _prepare("256", root, tmp_path / "data2", skip_incomplete_patients=True)
    assert "skipping 1 invalid patient(s)" in caplog.text
    assert builder.info.splits["group1"].num_examples == 4
    assert [s["patient"] for s in builder.info.metadata["skipped_patients"]] == ["patient0002"]


def test_half_sequence_config_needs_the_2023_release(tmp_path):
    root = phantom.write_synthetic_camus(
        tmp_path / "src",
        patient_ids=[1],
        layout="original",
        scale=0.1,
        half_sequence_frames=(3, 3),
    )
    with pytest.raises(reader.CamusFormatError, match="2023"):
        _prepare("half_sequence_256", root, tmp_path / "data")


def test_half_sequence_frames_and_instants(tmp_path):
    root = phantom.write_synthetic_camus(
        tmp_path / "src", patient_ids=[1], scale=0.1, half_sequence_frames=(4, 5)
    )
    builder = _prepare("half_sequence_256", root, tmp_path / "data")
    examples = _examples(builder, "group1")
    for view_index, view in enumerate(reader.VIEWS):
        seq = reader.load_half_sequence(root, "patient0001", view)
        frames = sorted(
            (ex for ex in examples if ex["view"] == view_index), key=lambda ex: ex["frame_index"]
        )
        assert [ex["frame_index"] for ex in frames] == list(range(seq["images"].shape[0]))
        instants = [camus_dataset_builder.INSTANTS[ex["instant"]] for ex in frames]
        assert instants == ["ED"] + ["other"] * (len(frames) - 2) + ["ES"]
        assert all(ex["nb_frames"] == len(frames) for ex in frames)
        for ex, gt in zip(frames, seq["gt"], strict=True):
            np.testing.assert_array_equal(ex["native_mask"][..., 0], gt)
