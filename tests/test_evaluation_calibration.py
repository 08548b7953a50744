"""Recomputing Table I's shape limits from reference masks (keras_runet.evaluation.calibration)
and ``runet thresholds``."""

import json
import math

import numpy as np
import pytest
from skimage.measure import perimeter
from skimage.morphology import convex_hull_image

from keras_runet.evaluation import OutlierThresholds
from keras_runet.evaluation.calibration import (
    calibrated_thresholds,
    reference_outlier_rate,
    reference_outlier_warning,
    reference_shape_rows,
    threshold_table,
)
from keras_runet.prediction_files import read_thresholds


def _reference(rect, notch=0):
    """A label map: the LV a rectangle (with a notch cut into its top), the myocardium a
    frame of 4 pixels around it; square pixels, so every convention's native numbers hold."""
    h, w = rect
    lm = np.zeros((h + 20, w + 20), np.uint8)
    lm[6 : h + 14, 6 : w + 14] = 2
    lm[10 : h + 10, 10 : w + 10] = 1
    if notch:
        lm[6 : 10 + notch, 10 + w // 3 : 10 + 2 * w // 3] = 0
    return lm


def _truth(mask):
    # Independent: skimage's hull of pixel centres and its 4-neighbourhood perimeter.
    cx = mask.sum() / convex_hull_image(mask, offset_coordinates=False).sum()
    sp = math.sqrt(4 * math.pi * mask.sum()) / perimeter(mask, neighborhood=4)
    return cx, sp


@pytest.fixture
def references():
    shapes = [((40, 30), 0), ((50, 20), 6), ((30, 30), 12), ((60, 25), 3), ((45, 35), 9)]
    return [
        {"ref": _reference(r, n), "spacing": (0.3, 0.3), "instant": ("ED", "ES")[i % 2]}
        for i, (r, n) in enumerate(shapes)
    ]


def test_calibration_returns_the_minimum_and_quantiles_of_the_references(references):
    rows = reference_shape_rows(references, "native")
    truth = {
        s: np.array([_truth(np.isin(it["ref"], labels)) for it in references])
        for s, labels in (("LVendo", (1,)), ("LVepi", (1, 2)))
    }
    for s, t in truth.items():
        np.testing.assert_allclose([r[f"{s}_convexity"] for r in rows], t[:, 0], atol=1e-12)
        np.testing.assert_allclose([r[f"{s}_simplicity"] for r in rows], t[:, 1], atol=1e-12)
    table = {(e["structure"], e["instant"], e["metric"]): e for e in threshold_table(rows)}
    cx_all = table["LVendo", "all", "convexity"]
    assert cx_all["n"] == 5 and cx_all["min"] == pytest.approx(truth["LVendo"][:, 0].min())
    assert cx_all["q1%"] == pytest.approx(np.quantile(truth["LVendo"][:, 0], 0.01))
    assert cx_all["q5%"] == pytest.approx(np.quantile(truth["LVendo"][:, 0], 0.05))
    sp_es = table["LVepi", "ES", "simplicity"]
    assert sp_es["n"] == 2 and sp_es["min"] == pytest.approx(truth["LVepi"][1::2, 1].min())

    t = calibrated_thresholds(rows, convention="native")
    assert t["convexity_lvendo"] == pytest.approx(truth["LVendo"][:, 0].min())
    assert t["simplicity_lvepi"] == pytest.approx(truth["LVepi"][:, 1].min())
    assert (t["mad_mm_ed"], t["hd_mm_es"]) == (3.5, 8.8)  # one annotation: kept
    q = calibrated_thresholds(rows, quantile=0.05, convention="native")
    assert q["simplicity_lvendo"] == pytest.approx(np.quantile(truth["LVendo"][:, 1], 0.05))
    # Under its own limits (the minimum), no reference is an outlier.
    loaded = OutlierThresholds.from_dict(t)
    assert loaded.convention.name == "native"
    ref_rows = [
        {f"{s}_ref_{m}": r[f"{s}_{m}"] for s in truth for m in ("simplicity", "convexity")}
        for r in rows
    ]
    assert reference_outlier_rate(ref_rows, loaded) == (0, 5)
    assert reference_outlier_rate(ref_rows, OutlierThresholds.from_dict(q))[0] == 1


def _ref_row(i, sp, cx, model="unet1"):
    row = {"patient_id": f"patient{i:04d}", "view": "2CH", "instant": "ED", "model": model}
    for s in ("LVendo", "LVepi"):
        row[f"{s}_ref_simplicity"], row[f"{s}_ref_convexity"] = sp, cx
    return row


def test_reference_outlier_warning_counts_each_image_once_under_the_thresholds_in_use():
    rows = [_ref_row(i, 0.9, 0.99) for i in range(99)] + [_ref_row(99, 0.5, 0.99)]
    assert reference_outlier_rate(rows) == (1, 100)
    assert reference_outlier_warning(rows) is None  # 1 %: not more than 1 %
    rows.append(_ref_row(100, 0.9, 0.5))
    rows += [_ref_row(i, 0.9, 0.99, model="runet") for i in range(101)]  # same images
    assert reference_outlier_rate(rows) == (2, 101)
    warning = reference_outlier_warning(rows)
    assert warning.startswith("warning: 2 of 101 reference masks (2.0 %)")
    assert "runet thresholds" in warning and "convention default" in warning
    lenient = OutlierThresholds(simplicity_lvendo=0.4, simplicity_lvepi=0.4, convexity_lvepi=0.4)
    assert reference_outlier_rate(rows, lenient) == (1, 101)  # recomputed, not the row's flag
    # per_image.csv as read back: strings; no reference shapes: no warning.
    assert reference_outlier_rate([{"ref_anatomical_outlier": "True"}] * 3) == (3, 3)
    assert reference_outlier_warning([{"ref_anatomical_outlier": None}]) is None


def test_thresholds_json_round_trips_and_old_files_still_load(tmp_path):
    t = OutlierThresholds(simplicity_lvendo=0.8, convention="vital")
    path = tmp_path / "t.json"
    path.write_text(json.dumps(t.to_dict()))
    assert read_thresholds(path) == t
    assert OutlierThresholds.from_dict(json.loads(json.dumps(t.to_dict()))) == t
    old = tmp_path / "old.json"  # written before conventions existed
    old.write_text(json.dumps({"hd_mm_ed": 9.0, "simplicity_lvepi": 0.5}))
    loaded = read_thresholds(old)
    assert loaded.hd_mm_ed == 9.0 and loaded.convention.name == "default"
    with pytest.raises(ValueError, match="unknown shape convention 'paper'; choose from"):
        OutlierThresholds(convention="paper")
    with pytest.raises(ValueError, match="quantiles must be fractions"):
        calibrated_thresholds([], quantile=1.5)
    with pytest.raises(ValueError, match="no reference mask with a measurable LVendo"):
        calibrated_thresholds([{"instant": "ED", "LVendo_simplicity": math.nan}])


def test_runet_thresholds_writes_a_json_that_evaluate_reads(tmp_path, capsys):
    from keras_runet.cli import main
    from tfds_camus.phantom import write_synthetic_camus

    camus = write_synthetic_camus(tmp_path / "camus", num_patients=2, scale=0.25)
    out = tmp_path / "out"
    rc = main(["thresholds", "--camus", str(camus), "--out", str(out), "--grid", "model"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "| LVendo | all | simplicity | 8 |" in printed
    t = read_thresholds(out / "thresholds.json")
    assert t.convention.simplicity_grid == t.convention.convexity_grid == "model"
    assert OutlierThresholds.from_dict(t.to_dict()) == t
    per_image = (out / "reference_shapes.csv").read_text().splitlines()
    assert len(per_image) == 9 and per_image[0].startswith("patient_id,view,instant")
    sp = [float(line.split(",")[3]) for line in per_image[1:]]
    assert t.simplicity_lvendo == pytest.approx(min(sp))
    assert main(["thresholds", "--camus", str(camus), "--out", str(out), "--quantile", "100"]) == 2
    assert "--quantile must be a percentage" in capsys.readouterr().err
    assert main(["thresholds", "--out", str(out)]) == 2
    with pytest.raises(SystemExit):
        main(["thresholds", "--camus", str(camus), "--out", str(out), "--convention", "x"])


def test_evaluation_measures_the_shapes_under_the_thresholds_convention():
    from keras_runet.evaluation import OutlierThresholds, evaluate_pair
    from keras_runet.evaluation.shapes import shape_metrics

    lab = np.zeros((300, 200), np.uint8)
    rows, cols = np.mgrid[0:300, 0:200]
    lab[((rows - 120) / 70) ** 2 + ((cols - 100) / 40) ** 2 <= 1] = 1
    lab[40:60, 90:150] = 1  # a bar across the top: not convex
    spacing = (0.2, 0.35)
    default = evaluate_pair(lab, lab, spacing, instant="ED")
    model = evaluate_pair(
        lab, lab, spacing, instant="ED", thresholds=OutlierThresholds(convention="model")
    )
    cx, sp = shape_metrics(lab == 1, spacing, "model")
    assert (model["LVendo_convexity"], model["LVendo_simplicity"]) == pytest.approx((cx, sp))
    assert model["LVendo_ref_simplicity"] == pytest.approx(sp)
    assert (default["LVendo_convexity"], default["LVendo_simplicity"]) == pytest.approx(
        shape_metrics(lab == 1, spacing)
    )
    assert model["LVendo_simplicity"] != pytest.approx(default["LVendo_simplicity"])
