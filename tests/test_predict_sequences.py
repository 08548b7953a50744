"""``runet predict`` on 2D+t sequences (CAMUS half sequences of both releases, DICOM cine
loops), DICOM images, saved probabilities, ``--thresholds`` and its rerun, and progress."""

import csv
import io
import json
import logging
import re

import keras
import numpy as np
import pytest
import SimpleITK as sitk
from PIL import Image

import keras_runet
from keras_runet import predict as pr
from keras_runet.cli import main as cli_main
from keras_runet.evaluation import evaluate_label_maps, simpson_biplane_volume
from keras_runet.evaluation.records import Progress
from keras_runet.predict import sequences as ps
from tfds_camus.phantom import write_synthetic_camus
from tfds_camus.textfiles import read_info_cfg
from tfds_camus.vocabulary import LABELS

# Intensity that encodes each label for the "oracle" model below, indexed by label (0
# background, 1 LV, 2 myocardium, 3 LA): the LV at the top of the range, so that the
# bilinear resizing of the serving graph blends it only into its neighbours' codes.
CODES = np.array([1 / 3, 1.0, 2 / 3, 0.0], np.float32)


class _Decode(keras.layers.Layer):
    """Softmax over the labels whose code is nearest to the pixel: the label map back."""

    def call(self, x):
        return keras.ops.softmax(-300.0 * keras.ops.square(x - CODES), axis=-1)


@pytest.fixture(scope="module")
def oracle():
    """A model that reads the label map an image encodes (CODES): known segmentations."""
    inp = keras.Input((256, 256, 1))
    return pr.Predictor(keras.Model(inp, {"segmentation": _Decode()(inp)}))


@pytest.fixture(scope="module")
def runet():
    model = keras_runet.build_model("runet", input_shape=(64, 64, 1), width=0.125, dil=3)
    return pr.Predictor(model)


def _same_geometry(got, ref):
    assert got.GetSize() == ref.GetSize()
    assert got.GetSpacing() == pytest.approx(ref.GetSpacing(), rel=1e-6)
    assert got.GetOrigin() == pytest.approx(ref.GetOrigin(), abs=1e-6)
    assert got.GetDirection() == pytest.approx(ref.GetDirection(), abs=1e-6)


def _by_file(rows):
    out = {}
    for r in rows:
        out.setdefault(r["file"].rsplit("/", 1)[-1], []).append(r)
    return out


def test_sequences_of_both_releases_give_one_label_map_with_the_input_geometry(runet, tmp_path):
    nifti = write_synthetic_camus(tmp_path / "n", 1, layout="nifti", scale=0.2,
                                  half_sequence_frames=(3, 3))  # fmt: skip
    original = write_synthetic_camus(tmp_path / "o", 1, layout="original", scale=0.2,
                                     half_sequence_frames=(3, 3))  # fmt: skip
    half = next(nifti.rglob("patient0001_2CH_half_sequence.nii.gz"))
    mhd = next(original.rglob("patient0001_4CH_sequence.mhd"))
    # The same frames with an origin, a direction (x and y swapped) and a time step.
    moved = sitk.ReadImage(str(half))
    sx, sy, _ = moved.GetSpacing()
    moved.SetSpacing((sx, sy, 0.025))
    moved.SetOrigin((4.0, -3.0, 0.5))
    moved.SetDirection((0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0))
    sitk.WriteImage(moved, str(tmp_path / "moved.nii.gz"), True)
    files = [half, mhd, tmp_path / "moved.nii.gz"]
    out = tmp_path / "out"
    rows = pr.predict_files(runet, files, out, progress=False, save_probabilities=True)
    by_file = _by_file(rows)
    for f in files:
        file_rows = by_file[f.name]
        ref = sitk.ReadImage(str(f))
        frames = ref.GetSize()[2]
        assert [r["frame"] for r in file_rows] == list(range(frames)) == [0, 1, 2]
        assert {r["frames"] for r in file_rows} == {frames}
        assert all(r["status"] == "ok" for r in file_rows)
        got = sitk.ReadImage(file_rows[0]["label_map"])
        _same_geometry(got, ref)  # the time axis's spacing included
        assert got.GetPixelID() == sitk.sitkUInt8
        labels = sitk.GetArrayFromImage(got)
        # Each frame through the same Predictor; the CSV's criteria are those frames'.
        image = pr.read_input_image(f)
        assert np.array_equal(labels, runet(image.pixels)["segmentation"])
        row_mm, col_mm = ref.GetSpacing()[1], ref.GetSpacing()[0]
        for r, lm in zip(file_rows, labels, strict=True):
            assert r["LVendo_area_px"] == int((lm == 1).sum())
            assert r["LVendo_area_mm2"] == pytest.approx(r["LVendo_area_px"] * row_mm * col_mm)
            crit = pr.shape_criteria(lm, (row_mm, col_mm))
            assert r["quality_score"] == crit["quality_score"]
        # Probabilities: one vector image on the same grid, its argmax the label map.
        probs = sitk.ReadImage(file_rows[0]["probabilities"])
        assert probs.GetNumberOfComponentsPerPixel() == len(LABELS)
        _same_geometry(probs, ref)
        p = sitk.GetArrayFromImage(probs)
        assert p.dtype == np.float32 and p.shape == (*labels.shape, len(LABELS))
        assert np.array_equal(p.argmax(-1), labels)
        # The overlay shows the ED-like and ES-like frames side by side; the area curve.
        width = labels.shape[2]
        overlay = np.asarray(Image.open(file_rows[0]["overlay"]))
        assert overlay.shape == (labels.shape[1], 2 * width + 4, 3)
        assert Image.open(file_rows[0]["area_plot"]).size[0] > 100
    assert (out / "plots" / "moved.lv_area.png").is_file()
    # No case has both views here: volumes.csv has its header only.
    with open(out / "volumes.csv", newline="") as fh:
        assert list(csv.DictReader(fh)) == []
    # predictions.csv reads back to the same rows, frame by frame.
    back = pr.read_csv(out / "predictions.csv")
    assert [(r["file"], r["frame"]) for r in back] == [(r["file"], r["frame"]) for r in rows]


def _encoded_sequences(tmp_path, frames=5):
    """The synthetic CAMUS's half-sequence masks, each written as the image the oracle reads
    back, with the masks' geometry; returns (input folder, {view: masks}, {view: cfg})."""
    root = write_synthetic_camus(tmp_path / "camus", 1, layout="nifti", scale=0.25,
                                 half_sequence_frames=(frames, frames))  # fmt: skip
    patient = next(root.rglob("patient0001"))
    folder = tmp_path / "in"
    folder.mkdir()
    masks, cfgs = {}, {}
    for view in ("2CH", "4CH"):
        gt = sitk.ReadImage(str(patient / f"patient0001_{view}_half_sequence_gt.nii.gz"))
        masks[view] = (sitk.GetArrayFromImage(gt), (gt.GetSpacing()[1], gt.GetSpacing()[0]))
        encoded = sitk.GetImageFromArray(CODES[masks[view][0]])
        encoded.CopyInformation(gt)
        sitk.WriteImage(encoded, str(folder / f"patient0001_{view}_half_sequence.nii.gz"))
        cfgs[view] = read_info_cfg(patient / f"Info_{view}.cfg")
    return folder, masks, cfgs


def test_volumes_from_the_frames_of_largest_and_smallest_lv_area(oracle, tmp_path, capsys):
    folder, masks, cfgs = _encoded_sequences(tmp_path)
    # A 2CH sequence without its 4CH view gets no volume.
    lone = sitk.ReadImage(str(folder / "patient0001_2CH_half_sequence.nii.gz"))
    sitk.WriteImage(lone, str(folder / "patient0002_2CH_half_sequence.nii.gz"))
    files = sorted(folder.iterdir())
    out = tmp_path / "out"
    rows = pr.predict_files(oracle, files, out, progress=False, overlays=False)
    with open(out / "volumes.csv", newline="") as fh:
        (vol,) = list(csv.DictReader(fh))
    assert vol["case"] == "patient0001" and vol["error"] == ""
    by_file = _by_file(rows)
    truth = {}
    for view, tag in (("2CH", "2ch"), ("4CH", "4ch")):
        # The frames of largest / smallest LV area are CAMUS's annotated ED / ES here (the
        # synthetic heart contracts from ED to ES).
        ed, es = int(cfgs[view]["ED"]) - 1, int(cfgs[view]["ES"]) - 1
        assert (int(vol[f"ed_frame_{tag}"]), int(vol[f"es_frame_{tag}"])) == (ed, es) == (0, 4)
        file_rows = by_file[f"patient0001_{view}_half_sequence.nii.gz"]
        ref_lv = (masks[view][0] == 1).sum(axis=(1, 2))
        np.testing.assert_allclose([r["LVendo_area_px"] for r in file_rows], ref_lv, rtol=0.03)
        lm = pr.read_label_map(file_rows[0]["label_map"])
        truth[view] = (lm[ed] == 1, lm[es] == 1, masks[view][0][ed] == 1,
                       masks[view][0][es] == 1, masks[view][1])  # fmt: skip
    (p2ed, p2es, r2ed, r2es, s2), (p4ed, p4es, r4ed, r4es, s4) = truth["2CH"], truth["4CH"]
    # Exactly Simpson's biplane on the written label maps' chosen frames ...
    assert float(vol["edv_ml"]) == pytest.approx(simpson_biplane_volume(p2ed, p4ed, s2, s4), 1e-5)
    assert float(vol["esv_ml"]) == pytest.approx(simpson_biplane_volume(p2es, p4es, s2, s4), 1e-5)
    # ... and close to it on the reference masks at the annotated ED and ES.
    edv, esv = (
        simpson_biplane_volume(r2ed, r4ed, s2, s4),
        simpson_biplane_volume(r2es, r4es, s2, s4),
    )
    assert float(vol["edv_ml"]) == pytest.approx(edv, rel=0.05)
    assert float(vol["esv_ml"]) == pytest.approx(esv, rel=0.08)
    assert float(vol["ef_percent"]) == pytest.approx(100 * (edv - esv) / edv, abs=3.0)
    # The CLI prints the volumes.
    ps.write_volumes_csv([{**vol, "edv_ml": 100.0, "esv_ml": 40.0, "ef_percent": 60.0}],
                         out / "volumes.csv")  # fmt: skip
    from keras_runet.commands.predict import _print_volumes

    _print_volumes(out / "volumes.csv")
    assert "patient0001: EDV 100.0 ml, ESV 40.0 ml, EF 60.0 %" in capsys.readouterr().out


def test_view_pairing_and_extreme_frames():
    assert ps.view_and_case("patient0001_4CH_sequence.mhd") == (
        "4CH", "patient0001_{view}_sequence.mhd", "patient0001")  # fmt: skip
    assert ps.view_and_case("john_2ch.dcm")[::2] == ("2CH", "john")
    assert ps.view_and_case("patient0001_2CH_vs_4CH.nii.gz") is None  # two views named
    assert ps.view_and_case("a12CHb.nii.gz") is None  # not a word
    seqs = [{"label_map": f"out/{n}"} for n in ("a_2CH.nii.gz", "a_4CH.nii.gz", "b_2CH.nii.gz")]
    ((case, two, four),) = ps.pair_views(seqs)
    assert case == "a" and two is seqs[0] and four is seqs[1]
    assert ps.pair_views([{"label_map": "x/a_2CH.nii"}, {"label_map": "y/a_4CH.nii"}]) == []
    assert ps.extreme_frames([3, 5, 5, 1, 1]) == (1, 3)  # the first on a tie
    with pytest.raises(ValueError, match="non-empty"):
        ps.extreme_frames([])
    # No spacing (a DICOM without one): no volume, and the reason.
    lm = np.zeros((2, 30, 20), np.uint8)
    lm[:, 5:25, 5:15] = 1
    row = ps.case_volumes("c", {"file": "a", "labels": lm, "spacing": None},
                          {"file": "b", "labels": lm, "spacing": (0.3, 0.3)})  # fmt: skip
    assert np.isnan(row["edv_ml"]) and "no pixel spacing for 2CH" in row["error"]


def _write_dicom(array, path, spacing=None, origin=None, vector=False, meta=None):
    img = sitk.GetImageFromArray(array, isVector=vector)
    if spacing is not None:
        img.SetSpacing(spacing)
    if origin is not None:
        img.SetOrigin(origin)
    for key, value in (meta or {}).items():
        img.SetMetaData(key, value)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()  # keep the SOP class given in meta
    writer.SetFileName(str(path))
    writer.Execute(img)
    return path


US_IMAGE = {"0008|0016": "1.2.840.10008.5.1.4.1.1.6.1", "0008|0060": "US"}
US_CINE = {"0008|0016": "1.2.840.10008.5.1.4.1.1.3.1", "0008|0060": "US"}


def test_dicom_images_cine_loops_rgb_and_ultrasound_spacing(runet, tmp_path):
    rng = np.random.default_rng(1)
    grey = (rng.random((40, 52)) * 255).astype(np.uint8)
    folder = tmp_path / "in"
    folder.mkdir()
    files = {
        "one.dcm": _write_dicom(grey, folder / "one.dcm", (0.3, 0.2)),
        "sixteen.dcm": _write_dicom(grey.astype(np.uint16) * 200, folder / "sixteen.dcm", (0.3, 0.2)),
        "cine.dcm": _write_dicom((rng.random((4, 40, 52)) * 255).astype(np.uint8),
                                 folder / "cine.dcm", (0.3, 0.2, 0.05), (1.0, 2.0, 3.0)),
        "rgb.dcm": _write_dicom((rng.random((40, 52, 3)) * 255).astype(np.uint8),
                                folder / "rgb.dcm", (0.3, 0.2), vector=True),
        "us.dcm": _write_dicom(grey, folder / "us.dcm", meta=US_IMAGE),
        "us_cine.dcm": _write_dicom(np.stack([grey] * 3), folder / "us_cine.dcm", meta=US_CINE),
    }  # fmt: skip
    found, _ = pr.find_images([folder])
    assert sorted(p.name for p in found) == sorted(files)
    out = tmp_path / "out"
    rows = pr.predict_files(runet, sorted(files.values()), out, progress=False)
    by_file = _by_file(rows)
    for name, path in files.items():
        file_rows = by_file[name]
        assert all(r["status"] == "ok" for r in file_rows), file_rows[0]["error"]
        label_map = out / name.replace(".dcm", ".nii.gz")  # DICOM in, NIfTI out
        assert file_rows[0]["label_map"] == str(label_map)
        ref, got = sitk.ReadImage(str(path)), sitk.ReadImage(str(label_map))
        _same_geometry(got, ref)
        image = pr.read_input_image(path)
        labels = pr.read_label_map(label_map)
        assert np.array_equal(labels, runet(image.pixels)["segmentation"])
    assert [r["frame"] for r in by_file["cine.dcm"]] == [0, 1, 2, 3]  # a cine loop: 2D+t
    assert sitk.ReadImage(str(out / "cine.nii.gz")).GetSpacing() == pytest.approx((0.3, 0.2, 0.05))
    assert by_file["one.dcm"][0]["frame"] is None
    assert (by_file["one.dcm"][0]["spacing_row_mm"], by_file["one.dcm"][0]["spacing_col_mm"]) == (
        pytest.approx(0.2), pytest.approx(0.3))  # fmt: skip
    sixteen = pr.read_input_image(files["sixteen.dcm"])
    np.testing.assert_allclose(sixteen.pixels, grey.astype(np.uint16) * 200 / 65535.0, rtol=1e-6)
    # RGB: grey by luminance (BT.601, as Pillow's "L" conversion, which rounds to 8 bits).
    rgb = sitk.GetArrayFromImage(sitk.ReadImage(str(files["rgb.dcm"])))[0]
    luma = np.asarray(Image.fromarray(rgb).convert("L")) / 255.0
    np.testing.assert_allclose(pr.read_input_image(files["rgb.dcm"]).pixels, luma, atol=0.6 / 255)
    # Ultrasound DICOM without PixelSpacing: SimpleITK's 1.0 is not taken for mm.
    for name in ("us.dcm", "us_cine.dcm"):
        for r in by_file[name]:
            assert r["spacing_row_mm"] is None and r["spacing_source"] == ""
            assert r["LVendo_area_mm2"] is None
    assumed = pr.read_input_image(files["us_cine.dcm"], png_spacing=(0.25, 0.3))
    assert assumed.spacing == (0.25, 0.3) and assumed.spacing_source == "assumed"
    assert pr.read_input_image(files["cine.dcm"], png_spacing=(9, 9)).spacing == pytest.approx(
        (0.2, 0.3))  # fmt: skip
    # Colour is converted for DICOM only: an RGB NIfTI is refused, with its name.
    colour = sitk.GetImageFromArray(np.zeros((8, 8, 3), np.uint8), isVector=True)
    sitk.WriteImage(colour, str(tmp_path / "colour.nii.gz"))
    with pytest.raises(pr.ImageReadError, match="colour.nii.gz: 3 channels per pixel"):
        pr.read_input_image(tmp_path / "colour.nii.gz")


def test_saved_probabilities_on_the_native_grid_argmax_to_the_label_map(runet, tmp_path):
    rng = np.random.default_rng(2)
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray((rng.random((40, 52)) * 255).astype(np.uint8)).save(folder / "a.png")
    img = sitk.GetImageFromArray((rng.random((36, 30)) * 255).astype(np.uint8))
    img.SetSpacing((0.3, 0.15))
    img.SetOrigin((5.0, -2.0))
    img.SetDirection((0.0, 1.0, 1.0, 0.0))
    sitk.WriteImage(img, str(folder / "b.mhd"))
    out = tmp_path / "out"
    rows = pr.predict_files(runet, sorted(folder.glob("*.[pm][nh][gd]")), out, progress=False,
                            save_probabilities=True)  # fmt: skip
    a, b = rows
    with np.load(a["probabilities"]) as npz:
        assert a["probabilities"] == str(out / "a.probabilities.npz")
        probs, names = npz["probabilities"], npz["class_names"]
    assert probs.dtype == np.float32 and probs.shape == (len(LABELS), 40, 52)
    assert list(names) == list(LABELS)
    np.testing.assert_allclose(probs.sum(axis=0), 1.0, atol=1e-5)
    assert np.array_equal(probs.argmax(axis=0), np.asarray(Image.open(out / "a.png")))
    nii = sitk.ReadImage(b["probabilities"])
    assert b["probabilities"] == str(out / "b.probabilities.nii.gz")
    _same_geometry(nii, img)
    p = sitk.GetArrayFromImage(nii)
    assert np.array_equal(p.argmax(-1), sitk.GetArrayFromImage(sitk.ReadImage(str(out / "b.mhd"))))
    # A rerun asking for probabilities that an earlier run did not write predicts again.
    pr.predict_files(runet, [folder / "a.png"], tmp_path / "again", progress=False)
    again = pr.predict_files(runet, [folder / "a.png"], tmp_path / "again", progress=False,
                             save_probabilities=True)  # fmt: skip
    assert not again[0].get("skipped") and (tmp_path / "again" / "a.probabilities.npz").is_file()


def _heart_codes(shape=(120, 100), bite=False):
    """A plausible heart, or one with a bite out of its cavity (a concave LV), as the image
    the oracle reads back."""
    rows, cols = np.mgrid[0 : shape[0], 0 : shape[1]]

    def ellipse(cy, cx, a, b):
        return ((rows - cy) / a) ** 2 + ((cols - cx) / b) ** 2 <= 1.0

    lm = np.zeros(shape, np.uint8)
    lm[ellipse(50, 50, 36, 22)] = 2
    lm[ellipse(50, 50, 30, 16)] = 1
    lm[ellipse(98, 50, 12, 18) & (lm == 0)] = 3
    if bite:
        lm[ellipse(50, 66, 14, 12) & (lm == 1)] = 2
    return (CODES[lm] * 255).round().astype(np.uint8)


def test_thresholds_flag_and_a_rerun_under_other_thresholds(oracle, tmp_path, capsys, monkeypatch):
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(_heart_codes()).save(folder / "good.png")
    Image.fromarray(_heart_codes(bite=True)).save(folder / "bitten.png")
    model_file = tmp_path / "m.keras"
    model_file.write_text("not loaded: the oracle stands in")
    argv = ["predict", str(model_file), str(folder), "--out", str(tmp_path / "out"),
            "--no-overlays", "--png-spacing", "0.3", "0.3"]  # fmt: skip
    # A bad thresholds file: a usage error naming it, before any model is loaded.
    (tmp_path / "bad.json").write_text("[1, 2]")
    assert cli_main([*argv, "--thresholds", str(tmp_path / "bad.json")]) == 2
    err = capsys.readouterr().err
    assert "--thresholds" in err and "bad.json" in err and "JSON object" in err
    assert cli_main([*argv, "--thresholds", str(tmp_path / "missing.json")]) == 2
    assert "missing.json" in capsys.readouterr().err

    from keras_runet.commands import _common

    monkeypatch.setattr(_common, "load_model_from_args", lambda args: oracle)
    assert cli_main(argv) == 0
    assert "suspicious shape: " in capsys.readouterr().out
    first = {r["file"]: r for r in pr.read_csv(tmp_path / "out" / "predictions.csv")}
    bitten, good = str(folder / "bitten.png"), str(folder / "good.png")
    assert first[bitten]["suspicious_shape"] and not first[good]["suspicious_shape"]
    # Limits of 0: nothing measurable is suspicious. The rerun predicts nothing again but
    # flags the earlier rows under the new thresholds, as a fresh run does.
    lenient = tmp_path / "lenient.json"
    lenient.write_text(json.dumps({"simplicity_lvendo": 0, "convexity_lvendo": 0,
                                   "simplicity_lvepi": 0, "convexity_lvepi": 0}))  # fmt: skip
    for extra in ([], ["--force"]):
        assert cli_main([*argv, "--thresholds", str(lenient), *extra]) == 0
        printed = capsys.readouterr().out
        assert printed.count("done earlier, skipped") == (0 if extra else 2)
        rows = {r["file"]: r for r in pr.read_csv(tmp_path / "out" / "predictions.csv")}
        assert not rows[bitten]["suspicious_shape"] and rows[bitten]["quality_score"] > 0
        if not extra:
            reused = rows
    for f in (good, bitten):  # the criteria as the CSV keeps them (6 digits)
        assert reused[f]["suspicious_shape"] == rows[f]["suspicious_shape"]
        assert reused[f]["quality_score"] == pytest.approx(rows[f]["quality_score"], rel=1e-4)
    # Another measurement convention: the criteria are measured again on the label maps.
    native = tmp_path / "native.json"
    native.write_text(json.dumps({"convention": "model"}))
    for extra in ([], ["--force"]):
        assert cli_main([*argv, "--thresholds", str(native), *extra]) == 0
        rows = {r["file"]: r for r in pr.read_csv(tmp_path / "out" / "predictions.csv")}
        assert rows[good]["shape_convention"] == "model"
        if not extra:
            reused = rows
    assert reused == rows
    assert reused[good]["LVendo_simplicity"] != first[good]["LVendo_simplicity"]
    # Another assumed spacing: predicted again.
    capsys.readouterr()
    assert cli_main([*argv[:-2], "0.2", "0.4"]) == 0
    assert "skipped" not in capsys.readouterr().out


def _items(n):
    ref = np.zeros((24, 20), np.uint8)
    ref[4:20, 4:16] = 2
    ref[6:18, 6:14] = 1
    return [{"pred": ref, "ref": ref, "spacing": (0.3, 0.3), "instant": "ED"}] * n


def test_progress_log_lines_count_the_items(caplog, monkeypatch, oracle, tmp_path):
    monkeypatch.setattr("sys.stderr", io.StringIO())  # not a terminal: log lines
    caplog.set_level(logging.INFO)

    def counts(name):
        lines = [r.getMessage() for r in caplog.records if r.name == name]
        assert all("elapsed" in line for line in lines)
        return [int(re.search(r": (\d+)/\d+ ", line)[1]) for line in lines]

    evaluate_label_maps(_items(23), workers=0)  # every 10 %: 3 items
    assert counts("keras_runet.evaluation.records") == [3, 6, 9, 12, 15, 18, 21, 23]
    assert "evaluating: 23/23 images (100 %)" in caplog.records[-1].getMessage()
    caplog.clear()
    evaluate_label_maps(_items(5), workers=0, progress=False)
    assert counts("keras_runet.evaluation.records") == []
    for i in range(3):
        Image.fromarray(_heart_codes()).save(tmp_path / f"{i}.png")
    pr.predict_files(oracle, sorted(tmp_path.glob("*.png")), tmp_path / "out", overlays=False)
    assert counts("keras_runet.predict") == [1, 2, 3]
    assert "predicting: 2/3 files (67 %)" in caplog.text and "left" in caplog.text

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    stream = Terminal()
    with Progress(4, "evaluating", stream=stream) as bar:  # a terminal: a tqdm bar
        for _ in range(4):
            bar.update()
    assert bar.mode == "bar" and "4/4" in stream.getvalue()
    with pytest.raises(ValueError, match="progress must be one of"):
        Progress(4, "x", "loud")
