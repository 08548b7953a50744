"""tfds_camus.reader: layouts, Info_*.cfg, images, spacing, and the checks on what it reads."""

import gzip
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from tfds_camus import phantom, reader


@pytest.fixture(scope="module")
def nifti_root(tmp_path_factory):
    out = tmp_path_factory.mktemp("nifti")
    return phantom.write_synthetic_camus(
        out, patient_ids=[1, 2], layout="nifti", scale=0.15, half_sequence_frames=(3, 4)
    )


@pytest.fixture(scope="module")
def original_root(tmp_path_factory):
    out = tmp_path_factory.mktemp("original")
    return phantom.write_synthetic_camus(
        out, patient_ids=[1, 2, 460], layout="original", scale=0.15, half_sequence_frames=(3, 4)
    )


def _copy(root, tmp_path):
    dst = tmp_path / "copy"
    shutil.copytree(root, dst)
    return dst


# --- layout (more in test_tfds_camus_layout.py) ---------------------------------------------


def test_detect_original_layout(original_root):
    layout = reader.detect_layout(original_root)
    assert layout.kind == "original"
    assert [(p.subset, p.patient_id) for p in layout.patients] == [
        ("training", "patient0001"),
        ("training", "patient0002"),
        ("testing", "patient0010"),  # person 460: the challenge's test set restarts at 0001
    ]
    assert layout.split_dir is None
    assert reader.list_patients(original_root) == [
        "patient0001",
        "patient0002",
        "testing/patient0010",
    ]
    assert reader.list_patients(original_root, labeled_only=True) == ["patient0001", "patient0002"]


def test_detect_original_inner_folder(original_root):
    layout = reader.detect_layout(original_root / "training")
    assert layout.kind == "original"
    assert reader.list_patients(layout) == ["patient0001", "patient0002"]
    testing = reader.detect_layout(original_root / "testing")
    assert [p.key for p in testing.patients] == ["testing/patient0010"]


@pytest.mark.parametrize("sub", ["", "CAMUS_public", "CAMUS_public/database_nifti"])
def test_detect_nifti_layout_at_any_level(nifti_root, sub):
    layout = reader.detect_layout(nifti_root / sub if sub else nifti_root)
    assert layout.kind == "nifti"
    assert layout.split_dir is not None and layout.split_dir.name == "database_split"
    assert reader.list_patients(layout) == ["patient0001", "patient0002"]
    assert set(reader.read_split_lists(layout)) == set(reader.SPLIT_NAMES)


def test_wrong_folder_is_a_clear_error(tmp_path):
    (tmp_path / "something").mkdir()
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(reader.CamusFormatError, match=str(tmp_path)) as e:
        reader.detect_layout(tmp_path)
    assert "no CAMUS release found" in str(e.value)
    with pytest.raises(reader.CamusFormatError, match="not a folder"):
        reader.detect_layout(tmp_path / "missing")


# --- images and spacing -------------------------------------------------------------------


def test_spacing_is_row_col_and_a_transposed_image_swaps_it(tmp_path):
    array = np.arange(6 * 4, dtype=np.uint8).reshape(6, 4)  # 6 rows, 4 cols
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((0.3, 0.15))  # SimpleITK: (x = col, y = row)
    for ext in (".mhd", ".nii.gz"):
        sitk.WriteImage(image, str(tmp_path / f"a{ext}"))
        sitk.WriteImage(sitk.PermuteAxes(image, [1, 0]), str(tmp_path / f"t{ext}"))
        a, spacing_a = reader.read_image(tmp_path / f"a{ext}")
        t, spacing_t = reader.read_image(tmp_path / f"t{ext}")
        assert a.shape == (6, 4) and t.shape == (4, 6)
        np.testing.assert_array_equal(t, a.T)
        assert spacing_a == pytest.approx((0.15, 0.3))
        assert spacing_t == pytest.approx((0.3, 0.15))


def test_load_instant_returns_the_written_spacing(nifti_root, original_root):
    for root in (nifti_root, original_root):
        for view in reader.VIEWS:
            params = phantom.patient_params("patient0002", scale=0.15, half_sequence_frames=(3, 4))
            g = params.views[view]
            d = reader.load_instant(root, "patient0002", view, "ES")
            assert d["image"].dtype == np.uint8 and d["gt"].dtype == np.uint8
            assert d["image"].shape == d["gt"].shape == (g.rows, g.cols)
            assert d["spacing"] == pytest.approx((g.row_mm, g.col_mm), rel=1e-6)
            assert d["frame_index"] == d["info"]["ES"] - d["info"]["ED"] > 0
            assert d["es_to_ed"] is False


def test_testing_folder_of_the_original_release_has_no_gt(original_root):
    d = reader.load_instant(original_root, "testing/patient0010", "2CH", "ED")
    assert d["gt"] is None and d["image"].ndim == 2
    same = reader.load_instant(original_root, "patient0010", "2CH", "ED", subset="testing")
    np.testing.assert_array_equal(same["image"], d["image"])
    with pytest.raises(reader.CamusFormatError, match="patient0010 not found"):
        reader.load_instant(original_root, "patient0010", "2CH", "ED")  # not in training/


def test_original_release_instants_are_3d_with_a_singleton(original_root):
    path = original_root / "training/patient0001/patient0001_2CH_ED.mhd"
    assert sitk.GetArrayFromImage(sitk.ReadImage(str(path))).shape[0] == 1  # as the real files
    assert reader.read_image(path)[0].ndim == 2


def test_truncated_raw_names_the_file_and_the_bytes(original_root, tmp_path):
    root = _copy(original_root, tmp_path)
    raw = root / "training/patient0001/patient0001_2CH_ED.raw"
    size = raw.stat().st_size
    raw.write_bytes(raw.read_bytes()[:100])
    with pytest.raises(
        reader.CamusFormatError, match=f"patient0001_2CH_ED.raw: truncated: 100 of {size} bytes"
    ):
        reader.load_instant(root, "patient0001", "2CH", "ED")
    raw.unlink()
    with pytest.raises(reader.CamusFormatError, match="patient0001_2CH_ED.mhd: its data file"):
        reader.load_instant(root, "patient0001", "2CH", "ED")


def test_corrupt_nifti_names_the_file(nifti_root, tmp_path):
    root = _copy(nifti_root, tmp_path)
    path = root / "CAMUS_public/database_nifti/patient0001/patient0001_4CH_ES.nii.gz"
    path.write_bytes(gzip.compress(b"this is not a nifti file" * 10))
    with pytest.raises(reader.CamusFormatError, match="patient0001_4CH_ES.nii.gz"):
        reader.load_instant(root, "patient0001", "4CH", "ES")
    path.write_bytes(path.read_bytes()[:20])  # a truncated gzip stream
    with pytest.raises(reader.CamusFormatError, match="patient0001_4CH_ES.nii.gz"):
        reader.load_instant(root, "patient0001", "4CH", "ES")


def test_truncated_nifti_is_an_error_not_zeros(nifti_root, tmp_path):
    """SimpleITK reads a .nii.gz cut in half without complaint, filling zeros: we do not."""
    root = _copy(nifti_root, tmp_path)
    path = root / "CAMUS_public/database_nifti/patient0002/patient0002_2CH_ED.nii.gz"
    rows, cols = reader.read_image(path)[0].shape
    expected = 352 + rows * cols  # NIfTI-1 header + uint8 pixels
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    sitk.ReadImage(str(path))  # the trap: no error from SimpleITK itself
    with pytest.raises(
        reader.CamusFormatError,
        match=rf"patient0002_2CH_ED.nii.gz: truncated: \d+ of {expected} bytes",
    ):
        reader.load_instant(root, "patient0002", "2CH", "ED")
    with pytest.raises(reader.CamusFormatError, match="truncated"):
        reader.read_image_header(path)


def test_multi_member_gzip_is_read(nifti_root, tmp_path):
    """A .nii.gz written as two gzip members (legal) is complete: no false alarm."""
    root = _copy(nifti_root, tmp_path)
    path = root / "CAMUS_public/database_nifti/patient0001/patient0001_2CH_ED.nii.gz"
    raw = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(raw[:1000]) + gzip.compress(raw[1000:]))
    image, _ = reader.read_image(path)
    np.testing.assert_array_equal(image, reader.read_image(nifti_root / path.relative_to(root))[0])


def _rewrite(path, fn):
    image = sitk.ReadImage(str(path))
    array = fn(sitk.GetArrayFromImage(image))
    out = sitk.GetImageFromArray(array)
    out.SetSpacing(image.GetSpacing())
    sitk.WriteImage(out, str(path))
    return out


def test_gt_label_7_is_rejected(nifti_root, tmp_path):
    root = _copy(nifti_root, tmp_path)
    gt = root / "CAMUS_public/database_nifti/patient0002/patient0002_2CH_ED_gt.nii.gz"

    def add_seven(a):
        a = a.copy()
        a[..., a.shape[-2] // 2, a.shape[-1] // 2] = 7
        return a

    _rewrite(gt, add_seven)
    with pytest.raises(reader.CamusFormatError, match=r"patient0002_2CH_ED_gt.nii.gz.*\[7\]"):
        reader.load_instant(root, "patient0002", "2CH", "ED")
    seq_gt = (
        root / "CAMUS_public/database_nifti/patient0002/patient0002_2CH_half_sequence_gt.nii.gz"
    )
    _rewrite(seq_gt, add_seven)
    with pytest.raises(reader.CamusFormatError, match="half_sequence_gt"):
        reader.load_half_sequence(root, "patient0002", "2CH")


def test_gt_on_another_grid_is_rejected(original_root, tmp_path):
    root = _copy(original_root, tmp_path)
    gt = root / "training/patient0002/patient0002_4CH_ED_gt.mhd"
    _rewrite(gt, lambda a: a[..., :-1, :])  # (1, rows, cols) in the original release
    with pytest.raises(reader.CamusFormatError, match="patient0002_4CH_ED_gt.mhd.*shape"):
        reader.load_instant(root, "patient0002", "4CH", "ED")
    _rewrite(gt, lambda a: np.pad(a, ((0, 0), (0, 1), (0, 0))))  # shape back, then change spacing
    image = sitk.ReadImage(str(gt))
    image.SetSpacing((1.0, 1.0, 1.0))
    sitk.WriteImage(image, str(gt))
    with pytest.raises(reader.CamusFormatError, match="patient0002_4CH_ED_gt.mhd.*spacing"):
        reader.load_instant(root, "patient0002", "4CH", "ED")


def test_frames_outside_the_sequence_are_rejected(original_root, tmp_path, caplog):
    root = _copy(original_root, tmp_path)
    cfg = root / "training/patient0001/Info_2CH.cfg"
    text = cfg.read_text()
    nb = reader.read_info_cfg(cfg)["NbFrame"]
    cfg.write_text(text.replace(f"NbFrame: {nb}", f"NbFrame: {nb + 5}"))
    # NbFrame only repeats what the sequence file says: a disagreement is a warning
    d = reader.load_instant(root, "patient0001", "2CH", "ES")
    assert "NbFrame" in caplog.text and "using the file" in caplog.text
    assert d["num_frames"] == nb
    warnings = []
    reader.load_instant(root, "patient0001", "2CH", "ES", warnings=warnings)
    assert len(warnings) == 1 and "Info_2CH.cfg: NbFrame" in warnings[0]
    cfg.write_text(
        "".join(
            ln if not ln.startswith("ES") else f"ES: {nb + 1}\n" for ln in text.splitlines(True)
        )
    )
    with pytest.raises(reader.CamusFormatError, match=r"Info_2CH.cfg: ES = .* outside"):
        reader.load_instant(root, "patient0001", "2CH", "ES")


def test_missing_files_are_listed(nifti_root, tmp_path):
    root = _copy(nifti_root, tmp_path)
    patient = root / "CAMUS_public/database_nifti/patient0001"
    (patient / "patient0001_2CH_ED.nii.gz").unlink()
    (patient / "Info_2CH.cfg").unlink()
    with pytest.raises(reader.MissingFilesError) as e:
        reader.load_instant(root, "patient0001", "2CH", "ED")
    assert {p.name for p in e.value.missing} == {"patient0001_2CH_ED.nii.gz", "Info_2CH.cfg"}
    assert "patient0001_2CH_ED.nii.gz" in str(e.value) and str(patient) in str(e.value)
    with pytest.raises(reader.CamusFormatError, match="patient0009 not found"):
        reader.load_instant(root, "patient0009", "2CH", "ED")


def test_half_sequence_matches_the_instants(nifti_root):
    seq = reader.load_half_sequence(nifti_root, "patient0001", "4CH")
    ed = reader.load_instant(nifti_root, "patient0001", "4CH", "ED")
    es = reader.load_instant(nifti_root, "patient0001", "4CH", "ES")
    n = seq["images"].shape[0]
    assert seq["images"].shape == seq["gt"].shape and n == seq["info"]["NbFrame"]
    np.testing.assert_array_equal(seq["images"][ed["frame_index"]], ed["image"])
    np.testing.assert_array_equal(seq["gt"][es["frame_index"]], es["gt"])
    assert seq["spacing"] == pytest.approx(ed["spacing"])


def test_half_sequence_needs_the_2023_release(original_root):
    with pytest.raises(reader.CamusFormatError, match="2023"):
        reader.load_half_sequence(original_root, "patient0001", "2CH")


# --- Info_*.cfg ------------------------------------------------------------------------------


def test_cfg_tolerant_crlf_extra_and_missing_keys(tmp_path):
    path = tmp_path / "Info_2CH.cfg"
    path.write_bytes(
        b"ED: 1\r\nES: 14\r\n\r\nNbFrame: 14\r\nSex: F\r\nAge: 67\r\n"
        b"ImageQuality: Medium\r\nLVedv: 104.8\r\nScanner: Vivid E95\r\nFrameRate = 33\r\n"
    )
    info = reader.read_info_cfg(path)
    assert info["ED"] == 1 and isinstance(info["ED"], int)
    assert info["ES"] == 14 and info["NbFrame"] == 14
    assert info["Sex"] == "F" and info["ImageQuality"] == "Medium"
    assert info["Age"] == 67 and info["LVedv"] == pytest.approx(104.8)
    assert info["Scanner"] == "Vivid E95"  # unknown keys kept
    assert info["FrameRate"] == 33
    for key in ("LVesv", "LVef", "EF"):  # missing keys are NaN
        assert math.isnan(info[key])
    assert not any("\r" in str(v) for v in info.values())


def test_cfg_bad_line_names_the_file(tmp_path):
    path = tmp_path / "Info_4CH.cfg"
    path.write_text("ED: 1\nthis line has no key\n")
    with pytest.raises(reader.CamusFormatError, match=r"Info_4CH.cfg: line 2"):
        reader.read_info_cfg(path)
    with pytest.raises(reader.CamusFormatError, match="Info_missing.cfg"):
        reader.read_info_cfg(tmp_path / "Info_missing.cfg")


# --- views stored ES -> ED -------------------------------------------------------------------


@pytest.mark.parametrize(
    "layout, sequence", [("nifti", "half"), ("original", "half"), ("original", "cycle")]
)
def test_views_stored_es_to_ed_come_back_in_ed_to_es_order(tmp_path, layout, sequence):
    root = phantom.write_synthetic_camus(
        tmp_path,
        patient_ids=[3],
        layout=layout,
        scale=0.1,
        half_sequence_frames=(4, 5),
        es_to_ed=["patient0003_4CH"],
        original_sequence=sequence,
    )
    files = reader.patient_files(root, "patient0003", "4CH")
    info = reader.read_info_cfg(files.info)
    stored = sitk.GetArrayFromImage(sitk.ReadImage(str(files.sequence)))
    n = stored.shape[0]
    assert info["ED"] > info["ES"] and info["NbFrame"] == n  # the file runs ES -> ED
    if sequence == "half":
        assert (info["ED"], info["ES"]) == (n, 1)
    ed = reader.load_instant(root, "patient0003", "4CH", "ED")
    es = reader.load_instant(root, "patient0003", "4CH", "ES")
    np.testing.assert_array_equal(stored[info["ED"] - 1], ed["image"])  # ED is still ED
    np.testing.assert_array_equal(stored[info["ES"] - 1], es["image"])
    assert ed["es_to_ed"] and es["es_to_ed"]
    assert ed["frame_index"] == 0 and es["frame_index"] == info["ED"] - info["ES"]
    other = reader.load_instant(root, "patient0003", "2CH", "ES")  # the 2CH view is not reversed
    assert not other["es_to_ed"] and other["frame_index"] > 0
    if layout == "nifti":
        seq = reader.load_half_sequence(root, "patient0003", "4CH")
        assert seq["es_to_ed"] and seq["instants"][0] == "ED" and seq["instants"][-1] == "ES"
        np.testing.assert_array_equal(seq["images"][0], ed["image"])
        np.testing.assert_array_equal(seq["images"][-1], es["image"])
        np.testing.assert_array_equal(seq["gt"][0], ed["gt"])  # masks follow their images
        np.testing.assert_array_equal(seq["gt"][-1], es["gt"])
        assert seq["frame_index"].tolist() == list(range(n))
        np.testing.assert_array_equal(seq["images"], stored[::-1])


def test_frame_order_is_computed_from_the_cfg():
    path = Path("Info_4CH.cfg")
    forward = reader.frame_order({"ED": 3, "ES": 12, "NbFrame": 20}, path, 20)
    assert not forward.es_to_ed and forward.ed_index == 2
    assert forward.frame_index("ED") == 0 and forward.frame_index("ES") == 9
    assert forward.instant_at(2) == "ED" and forward.instant_at(11) == "ES"
    backward = reader.frame_order({"ED": 18, "ES": 1, "NbFrame": 18}, path, 18)
    assert backward.es_to_ed and backward.ed_index == 0
    assert backward.frame_index("ES") == 17 and backward.instant_at(17) == "ES"
    np.testing.assert_array_equal(backward.in_ed_to_es_order(np.arange(18)), np.arange(18)[::-1])
    unknown = reader.frame_order({"ED": math.nan, "ES": math.nan}, path, None)
    assert unknown.frame_index("ED") == -1 and not unknown.es_to_ed
    with pytest.raises(reader.CamusFormatError, match="ED must be a frame number"):
        reader.frame_order({"ED": "first", "ES": 2}, path, 5)
