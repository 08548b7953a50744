"""``runet predict``: label maps in the input's format and geometry, overlays, the CSV of
anatomical criteria, the suspicious-shape flag, and per-file errors on bad input."""

import csv
import os

import numpy as np
import pytest
import SimpleITK as sitk
import tensorflow as tf
from PIL import Image

import keras_runet
from keras_runet import predict as pr
from keras_runet.cli import main as cli_main
from keras_runet.evaluation import OutlierThresholds, convexity, quality_score, simplicity
from keras_runet.predict import rows as rows_module

SIZE = 64
# The columns of predictions.csv before the quality score, the frames, the areas in mm^2.
OLD_COLUMNS = (
    "file",
    "status",
    "error",
    "label_map",
    "overlay",
    "height",
    "width",
    "spacing_row_mm",
    "spacing_col_mm",
    *(
        f"{s}_{m}"
        for s in ("LVendo", "LVepi", "LA")
        for m in ("area_px", "convexity", "simplicity")
    ),
    "suspicious_shape",
    "suspicious_reasons",
)


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("model")
    model = keras_runet.build_model("runet", input_shape=(SIZE, SIZE, 1), width=0.125, dil=3)
    path = tmp / "runet.keras"
    model.save(path)
    return model, path


def _ellipse(shape, cy, cx, a, b):
    rows, cols = np.mgrid[0 : shape[0], 0 : shape[1]]
    return ((rows - cy) / a) ** 2 + ((cols - cx) / b) ** 2 <= 1.0


def _heart(shape=(120, 100)):
    lm = np.zeros(shape, np.uint8)
    lm[_ellipse(shape, 50, 50, 36, 22)] = 2
    lm[_ellipse(shape, 50, 50, 30, 16)] = 1
    lm[_ellipse(shape, 98, 50, 12, 18) & (lm == 0)] = 3
    return lm


def test_shape_criteria_flags_implausible_shapes():
    good = _heart()
    row = pr.shape_criteria(good, spacing=(0.3, 0.3))
    assert not row["suspicious_shape"], row["suspicious_reasons"]
    assert row["quality_score"] == pytest.approx(quality_score(row)) and row["quality_score"] > 0
    assert row["LVendo_convexity"] == pytest.approx(convexity(good == 1))
    assert row["LVepi_simplicity"] == pytest.approx(simplicity(np.isin(good, (1, 2)), (0.3, 0.3)))
    assert row["LVendo_area_px"] == int((good == 1).sum())

    # A bite out of the cavity (concave): convexity drops below the expert minimum.
    bitten = good.copy()
    bitten[_ellipse(good.shape, 50, 66, 14, 12) & (good == 1)] = 2
    row = pr.shape_criteria(bitten)
    assert row["suspicious_shape"] and "LVendo_convexity" in row["suspicious_reasons"]
    assert row["quality_score"] < 0  # the score is negative exactly when suspicious

    # Two blobs of cavity (a typical failure): simplicity and convexity fall.
    split = good.copy()
    split[45:56, :] = np.where(split[45:56, :] == 1, 2, split[45:56, :])
    assert pr.shape_criteria(split)["suspicious_shape"]

    # A missing structure cannot be measured: suspicious.
    no_lv = np.where(good == 1, 2, good).astype(np.uint8)
    row = pr.shape_criteria(no_lv)
    assert row["suspicious_shape"] and "LVendo_simplicity" in row["suspicious_reasons"]
    assert row["quality_score"] == -np.inf

    # The thresholds are configurable: with limits of 0 nothing measurable is flagged.
    zero = OutlierThresholds(
        simplicity_lvendo=0, convexity_lvendo=0, simplicity_lvepi=0, convexity_lvepi=0
    )
    assert not pr.shape_criteria(bitten, thresholds=zero)["suspicious_shape"]
    assert pr.shape_criteria(bitten, thresholds=zero)["quality_score"] > 0


def test_predictions_csv_has_the_quality_score_and_an_older_csv_still_reads(tmp_path):
    src = tmp_path / "img.png"
    Image.fromarray(np.zeros((120, 100), np.uint8)).save(src)
    label_map = tmp_path / "out" / "img.png"
    label_map.parent.mkdir()
    Image.fromarray(_heart()).save(label_map)  # written after its source
    row = {
        "file": str(src),
        "status": "ok",
        "error": "",
        "label_map": str(label_map),
        "height": 120,
        "width": 100,
        **pr.shape_criteria(_heart(), spacing=(0.3, 0.3)),
    }
    pr.write_csv([row], tmp_path / "new.csv")
    with open(tmp_path / "new.csv", newline="") as fh:
        assert "quality_score" in next(csv.reader(fh))
    (back,) = pr.read_csv(tmp_path / "new.csv")
    assert back["quality_score"] == pytest.approx(row["quality_score"], rel=1e-5)
    # A CSV of an earlier version, without the score (nor the columns added with it): it
    # reads, the score is None there, and a rerun (which keeps its done rows) measures the
    # criteria again on the label map, filling the score in.
    old_columns = [c for c in pr.CSV_COLUMNS if c in OLD_COLUMNS]
    old_csv = tmp_path / "out" / "predictions.csv"
    with open(old_csv, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=old_columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerow({k: rows_module._fmt_cell(row.get(k)) for k in old_columns})
    (old,) = pr.read_csv(old_csv)
    assert old["quality_score"] is None and old["suspicious_shape"] is False
    (done,) = rows_module._done_rows(old_csv)[str(src)]
    assert done["quality_score"] == pytest.approx(row["quality_score"], rel=1e-4)


def _sitk(array, spacing_xy, origin=(0.0, 0.0), direction=(1.0, 0.0, 0.0, 1.0)):
    img = sitk.GetImageFromArray(array)
    img.SetSpacing(spacing_xy)
    img.SetOrigin(origin)
    img.SetDirection(direction)
    return img


def _make_inputs(folder):
    rng = np.random.default_rng(0)
    folder.mkdir()
    good = {}
    px = (rng.random((80, 60)) * 255).astype(np.uint8)
    Image.fromarray(px).save(folder / "a_png.png")
    good["a_png.png"] = px / 255.0
    px = (rng.random((90, 70)) * 255).astype(np.uint8)
    sitk.WriteImage(
        _sitk(px, (0.3, 0.15), origin=(5.0, -2.0), direction=(0.0, 1.0, 1.0, 0.0)),
        str(folder / "b_mhd.mhd"),
    )
    good["b_mhd.mhd"] = px / 255.0
    px = rng.random((1, 50, 66)).astype(np.float32)  # a 3-D file with one slice, [0, 1]
    img3 = sitk.GetImageFromArray(px)
    img3.SetSpacing((0.2, 0.25, 1.0))
    img3.SetOrigin((1.0, 2.0, 3.0))
    sitk.WriteImage(img3, str(folder / "c_nii.nii.gz"))
    good["c_nii.nii.gz"] = px[0]
    # Bad inputs, each with its own reason.
    Image.fromarray((rng.random((40, 40, 3)) * 255).astype(np.uint8)).save(folder / "rgb.png")
    (folder / "text.png").write_text("this is not an image")
    (folder / "empty.png").write_bytes(b"")
    nan = rng.random((40, 40)).astype(np.float32)
    nan[3, 3] = np.nan
    sitk.WriteImage(_sitk(nan, (0.3, 0.3)), str(folder / "nan.mhd"))
    seq = (rng.random((3, 40, 40)) * 255).astype(np.uint8)
    sitk.WriteImage(sitk.GetImageFromArray(seq), str(folder / "seq.mhd"))
    # Skipped in a folder: not an image format, CAMUS annotation.
    (folder / "notes.txt").write_text("x")
    Image.fromarray(np.zeros((40, 40), np.uint8)).save(folder / "a_gt.png")
    return good


def _read_csv(path):
    """Rows by file name; a sequence's rows under ``name#frame``."""
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    return {
        row["file"].rsplit("/", 1)[-1] + (f"#{row['frame']}" if row["frame"] else ""): row
        for row in rows
    }


def test_predict_folder_formats_geometry_csv_and_errors(model_file, tmp_path, capsys):
    model, path = model_file
    good = _make_inputs(tmp_path / "in")
    out = tmp_path / "out"
    code = cli_main(
        ["predict", str(path), str(tmp_path / "in"), "--out", str(out), "--save-coarse"]
    )
    assert code == 1  # some files failed
    printed = capsys.readouterr().out
    assert "4 of 8 file(s) segmented (1 sequence(s))" in printed
    assert "2 other file(s) skipped" in printed
    assert "[8/8] " in printed and "rgb.png: error" in printed and "(3 frames)" in printed

    rows = _read_csv(out / "predictions.csv")
    assert set(rows) == {
        "a_png.png",
        "b_mhd.mhd",
        "c_nii.nii.gz",
        "rgb.png",
        "text.png",
        "empty.png",
        "nan.mhd",
        "seq.mhd#0",  # a 3-D image: a sequence, one row per frame
        "seq.mhd#1",
        "seq.mhd#2",
    }
    errors = {name: r["error"] for name, r in rows.items() if r["status"] == "error"}
    assert set(errors) == {"rgb.png", "text.png", "empty.png", "nan.mhd"}
    assert "3 channels" in errors["rgb.png"]
    assert "not a readable PNG" in errors["text.png"]
    assert "not a readable PNG" in errors["empty.png"]
    assert "NaN" in errors["nan.mhd"]
    for name, message in errors.items():
        assert name in message  # every error names its file

    predictor = pr.Predictor(model)
    # PNG: a PNG label map at the native size, an overlay, the same labels as the
    # serving graph (resize, model, probabilities back to native size, argmax).
    lm = np.asarray(Image.open(out / "a_png.png"))
    assert lm.shape == (80, 60) and lm.dtype == np.uint8 and lm.max() <= 3
    expected = predictor(good["a_png.png"].astype(np.float32))["segmentation"]
    assert np.array_equal(lm, expected)
    x = good["a_png.png"].astype(np.float32)[None, ..., None]
    probs = tf.image.resize(
        model(tf.image.resize(x, (SIZE, SIZE)))["segmentation"], (80, 60)
    ).numpy()[0]
    top2 = np.sort(probs, -1)[..., -2:]
    clear = top2[..., 1] - top2[..., 0] > 1e-4
    assert np.array_equal(lm[clear], probs.argmax(-1)[clear])
    overlay = np.asarray(Image.open(out / "overlays" / "a_png.overlay.png"))
    assert overlay.shape == (80, 60, 3)

    # MetaImage: spacing, origin and direction of the input.
    ref = sitk.ReadImage(str(tmp_path / "in" / "b_mhd.mhd"))
    got = sitk.ReadImage(str(out / "b_mhd.mhd"))
    assert got.GetSize() == ref.GetSize() == (70, 90)
    assert got.GetSpacing() == pytest.approx(ref.GetSpacing())
    assert got.GetOrigin() == pytest.approx(ref.GetOrigin())
    assert got.GetDirection() == pytest.approx(ref.GetDirection())
    assert (out / "b_mhd.raw").exists() and (out / "b_mhd_coarse.mhd").exists()
    assert float(rows["b_mhd.mhd"]["spacing_row_mm"]) == pytest.approx(0.15)
    assert float(rows["b_mhd.mhd"]["spacing_col_mm"]) == pytest.approx(0.3)

    # NIfTI with one slice: written back as one slice with its geometry.
    ref = sitk.ReadImage(str(tmp_path / "in" / "c_nii.nii.gz"))
    got = sitk.ReadImage(str(out / "c_nii.nii.gz"))
    assert got.GetSize() == ref.GetSize() == (66, 50, 1)
    assert got.GetSpacing() == pytest.approx(ref.GetSpacing())
    assert got.GetOrigin() == pytest.approx(ref.GetOrigin())

    # The CSV's criteria are those of the written label maps.
    for name in ("a_png.png", "b_mhd.mhd", "c_nii.nii.gz"):
        row = rows[name]
        assert row["status"] == "ok" and row["error"] == ""
        labels = sitk.GetArrayFromImage(sitk.ReadImage(row["label_map"]))
        labels = labels.reshape(labels.shape[-2:])
        spacing = None
        if row["spacing_row_mm"]:
            spacing = (float(row["spacing_row_mm"]), float(row["spacing_col_mm"]))
        crit = pr.shape_criteria(labels, spacing)
        assert row["suspicious_shape"] == str(crit["suspicious_shape"])
        assert float(row["quality_score"]) == pytest.approx(crit["quality_score"], rel=1e-5)
        for key in ("LVendo_convexity", "LVepi_simplicity", "LA_area_px"):
            if row[key] == "":
                assert np.isnan(crit[key])
            else:
                assert float(row[key]) == pytest.approx(crit[key], rel=1e-5)


def test_predict_only_good_files_exit_zero_and_usage_errors(model_file, tmp_path, capsys):
    _, path = model_file
    Image.fromarray(np.full((40, 52), 128, np.uint8)).save(tmp_path / "x.png")
    out = tmp_path / "out"
    assert cli_main(["predict", str(path), str(tmp_path / "x.png"), "--out", str(out)]) == 0
    assert (out / "x.png").exists() and (out / "predictions.csv").exists()
    capsys.readouterr()
    assert cli_main(["predict", str(path), str(tmp_path / "missing"), "--out", str(out)]) == 2
    assert "missing" in capsys.readouterr().err
    (tmp_path / "empty_dir").mkdir()
    assert cli_main(["predict", str(path), str(tmp_path / "empty_dir"), "--out", str(out)]) == 2
    assert "no images" in capsys.readouterr().err
    assert (
        cli_main(["predict", str(tmp_path / "x.png"), str(tmp_path / "x.png"), "--out", str(out)])
        == 2
    )
    assert "neither a .keras file" in capsys.readouterr().err
    # Outputs never overwrite inputs.
    rows = pr.predict_files(
        keras_runet.export.load_model(path), [tmp_path / "x.png"], tmp_path, overlays=False
    )
    assert rows[0]["status"] == "error" and "overwrite an input" in rows[0]["error"]


def test_read_input_image_intensities_and_spacing(tmp_path):
    ramp16 = (np.arange(60 * 80).reshape(60, 80) * 13).astype(np.uint16)
    Image.fromarray(ramp16).save(tmp_path / "p16.png")
    img = pr.read_input_image(tmp_path / "p16.png", png_spacing=(0.2, 0.4))
    np.testing.assert_allclose(img.pixels, ramp16 / 65535.0, rtol=1e-6)
    assert img.spacing == (0.2, 0.4) and img.fmt == "png"
    # 8-bit values stored as int16 in a MetaImage: / 255, as the CAMUS reader takes them.
    px = np.arange(40 * 30, dtype=np.int16).reshape(40, 30) % 256
    sitk.WriteImage(_sitk(px, (0.3, 0.15)), str(tmp_path / "i16.mhd"))
    img = pr.read_input_image(tmp_path / "i16.mhd")
    np.testing.assert_allclose(img.pixels, px / 255.0, rtol=1e-6)
    assert img.spacing == pytest.approx((0.15, 0.3))  # (row, col) from SimpleITK's (x, y)
    sitk.WriteImage(_sitk(px - 10, (1.0, 1.0)), str(tmp_path / "neg.mhd"))
    with pytest.raises(pr.ImageReadError, match="neg.mhd: negative"):
        pr.read_input_image(tmp_path / "neg.mhd")
    with pytest.raises(pr.ImageReadError, match="scan.jpg: not a supported image"):
        pr.read_input_image(tmp_path / "scan.jpg")


def test_truncated_files_are_refused_not_read_as_zeros(tmp_path):
    px = (np.arange(120 * 90).reshape(120, 90) % 256).astype(np.uint8)
    sitk.WriteImage(_sitk(px, (0.3, 0.15)), str(tmp_path / "cut.nii.gz"), True)
    data = (tmp_path / "cut.nii.gz").read_bytes()
    (tmp_path / "cut.nii.gz").write_bytes(data[: len(data) // 2])
    sitk.ReadImage(str(tmp_path / "cut.nii.gz"))  # SimpleITK alone says nothing
    with pytest.raises(pr.ImageReadError, match=r"cut.nii.gz: truncated: \d+ of 11152 bytes"):
        pr.read_input_image(tmp_path / "cut.nii.gz")
    sitk.WriteImage(_sitk(px, (0.3, 0.15)), str(tmp_path / "cut.mhd"))
    raw = tmp_path / "cut.raw"
    raw.write_bytes(raw.read_bytes()[:5000])
    with pytest.raises(pr.ImageReadError, match="cut.raw: truncated: 5000 of 10800 bytes"):
        pr.read_input_image(tmp_path / "cut.mhd")


def test_reference_shapes_are_not_suspicious(tmp_path):
    """The flag must not fire on plausible hearts: none of the synthetic CAMUS references
    (expert-like shapes on CAMUS grids, anisotropic spacing) is flagged."""
    from tfds_camus.phantom import write_synthetic_camus

    root = write_synthetic_camus(tmp_path / "camus", 3, layout="original", scale=0.5)
    files = sorted(root.rglob("*_E[DS]_gt.mhd"))
    assert len(files) == 12
    for f in files:
        image = sitk.ReadImage(str(f))
        labels = sitk.GetArrayFromImage(image).reshape(image.GetSize()[::-1][-2:])
        spacing = (image.GetSpacing()[1], image.GetSpacing()[0])
        row = pr.shape_criteria(labels, spacing)
        assert not row["suspicious_shape"], (f.name, row["suspicious_reasons"])


def test_a_killed_predict_keeps_its_record_and_the_rerun_skips_what_is_done(
    model_file, tmp_path, capsys
):
    model, path = model_file
    inputs = tmp_path / "in"
    inputs.mkdir()
    for i in range(4):
        Image.fromarray(np.full((40, 52), 40 * i, np.uint8)).save(inputs / f"img{i}.png")
    files = sorted(inputs.glob("*.png"))
    out = tmp_path / "out"

    def die_after_two(index, total, rows):
        if index == 2:
            raise KeyboardInterrupt("killed")

    with pytest.raises(KeyboardInterrupt):
        pr.predict_files(model, files, out, overlays=False, on_file=die_after_two)
    record = pr.read_csv(out / "predictions.csv")  # written as each file was done
    assert [r["file"] for r in record] == [str(f) for f in files[:2]]
    assert all(r["status"] == "ok" and isinstance(r["suspicious_shape"], bool) for r in record)
    argv = ["predict", str(path), str(inputs), "--out", str(out), "--no-overlays"]
    assert cli_main(argv) == 0
    printed = capsys.readouterr().out
    assert printed.count("done earlier, skipped") == 2 and "4 of 4 file(s) segmented" in printed
    rows = pr.read_csv(out / "predictions.csv")
    assert sorted(r["file"] for r in rows) == sorted(str(f) for f in files)  # each once
    # A changed input is segmented again; --force does them all.
    os.utime(files[3], ns=(4 * 10**18, 4 * 10**18))  # newer than its label map
    assert cli_main(argv) == 0
    assert capsys.readouterr().out.count("done earlier, skipped") == 3
    assert cli_main([*argv, "--force"]) == 0
    assert "skipped" not in capsys.readouterr().out
