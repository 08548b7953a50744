"""Per-image rows: label maps in, metrics and outlier flags out; parallel = serial."""

import ast
import math
from pathlib import Path

import numpy as np
import pytest
from skimage.draw import ellipse

from keras_runet.evaluation import (
    OutlierThresholds,
    convexity,
    dice,
    evaluate_label_maps,
    evaluate_pair,
    hausdorff_distance,
    lv_disks,
    mean_absolute_distance,
    postprocess_label_map,
    simplicity,
    to_native_grid,
)

SPACING = (0.154, 0.308)


def heart(shape=(390, 275), dr=0, dc=0, scale=1.0):
    """A small CAMUS-like label map: LV in a myocardium with a flat base, LA below."""
    lm = np.zeros(shape, np.uint8)
    base = 250 + dr
    rr, cc = ellipse(base + dr * 0, 137 + dc, 200 * scale, 60 * scale, shape)
    keep = rr < base
    lm[rr[keep], cc[keep]] = 2
    rr, cc = ellipse(base, 137 + dc, 170 * scale, 42 * scale, shape)
    keep = rr < base
    lm[rr[keep], cc[keep]] = 1
    rr, cc = ellipse(base + 60, 137 + dc, 58, 45, shape)
    free = lm[rr, cc] == 0
    lm[rr[free], cc[free]] = 3
    return lm


def test_perfect_prediction():
    ref = heart()
    row = evaluate_pair(ref, ref, SPACING, instant="ED", meta={"model": "m", "patient_id": "p"})
    for s in ("LVendo", "LVepi", "LA"):
        assert row[f"{s}_dice"] == 1.0
        assert row[f"{s}_hd_mm"] == 0.0
        assert row[f"{s}_mad_mm"] == 0.0
        assert row[f"{s}_convexity"] == row[f"{s}_ref_convexity"]
    assert not row["geometric_outlier"]
    assert not row["anatomical_outlier"]
    assert not row["ref_anatomical_outlier"]
    assert row["model"] == "m" and row["output"] == "segmentation" and row["patient_id"] == "p"
    assert (row["height"], row["width"]) == ref.shape
    assert (row["spacing_row_mm"], row["spacing_col_mm"]) == SPACING
    assert len(row["lv_diameters_mm"]) == 20
    assert row["lv_length_mm"] == row["ref_lv_length_mm"] > 0


def test_row_metrics_equal_the_single_mask_functions():
    ref = heart()
    pred = heart(dr=6, dc=-3, scale=0.95)
    row = evaluate_pair(pred, ref, SPACING, instant="ES")
    for s, labels in (("LVendo", [1]), ("LVepi", [1, 2]), ("LA", [3])):
        p, g = np.isin(pred, labels), np.isin(ref, labels)
        assert row[f"{s}_dice"] == pytest.approx(dice(p, g), abs=1e-12)
        assert row[f"{s}_hd_mm"] == pytest.approx(hausdorff_distance(p, g, SPACING), abs=1e-12)
        assert row[f"{s}_mad_mm"] == pytest.approx(mean_absolute_distance(p, g, SPACING), abs=1e-12)
        assert row[f"{s}_mad_pooled_mm"] == pytest.approx(
            mean_absolute_distance(p, g, SPACING, pooled=True), abs=1e-12
        )
        assert row[f"{s}_convexity"] == pytest.approx(convexity(p), abs=1e-12)
        assert row[f"{s}_simplicity"] == pytest.approx(simplicity(p, SPACING), abs=1e-12)
        assert row[f"{s}_ref_simplicity"] == pytest.approx(simplicity(g, SPACING), abs=1e-12)
        assert row[f"{s}_pred_area_mm2"] == pytest.approx(p.sum() * SPACING[0] * SPACING[1])
    length, diam = lv_disks(pred == 1, SPACING)
    assert row["lv_length_mm"] == pytest.approx(length)
    np.testing.assert_allclose(row["lv_diameters_mm"], diam)


def test_missing_structure_gives_nan_and_outliers_not_exceptions():
    ref = heart()
    pred = ref.copy()
    pred[pred == 1] = 2  # no LV cavity predicted
    row = evaluate_pair(pred, ref, SPACING, instant="ED")
    assert math.isnan(row["LVendo_hd_mm"]) and math.isnan(row["LVendo_mad_mm"])
    assert math.isnan(row["LVendo_convexity"]) and math.isnan(row["LVendo_simplicity"])
    assert row["LVendo_dice"] == 0.0
    assert row["geometric_outlier"] and "LVendo_hd_mm" in row["geometric_reasons"]
    assert row["anatomical_outlier"] and "LVendo_simplicity" in row["anatomical_reasons"]
    assert math.isnan(row["lv_length_mm"])
    empty = np.zeros_like(ref)
    row = evaluate_pair(empty, empty, SPACING, instant="ES")
    assert math.isnan(row["LVepi_dice"]) and math.isnan(row["LA_hd_mm"])


def test_geometric_thresholds_depend_on_the_instant():
    ref = np.zeros((200, 260), np.uint8)
    ref[80:170, 40:220] = 2
    ref[90:160, 50:210] = 1
    # 28 columns of 0.3 mm = 8.4 mm: above the ED limit (8.2), below the ES limit (8.8).
    pred = np.roll(ref, 28, axis=1)
    spacing = (0.3, 0.3)
    ed = evaluate_pair(pred, ref, spacing, instant="ED")
    es = evaluate_pair(pred, ref, spacing, instant="ES")
    assert ed["LVendo_hd_mm"] == pytest.approx(8.4)
    assert ed["geometric_outlier"] and "LVendo_hd_mm" in ed["geometric_reasons"]
    assert not es["geometric_outlier"]
    lenient = OutlierThresholds(hd_mm_ed=9.0, mad_mm_ed=10.0)
    assert not evaluate_pair(pred, ref, spacing, instant="ED", thresholds=lenient)[
        "geometric_outlier"
    ]


def test_anatomical_outlier_on_a_jagged_prediction():
    ref = heart()
    pred = ref.copy()
    pred[140:170, 60:137] = 0  # a deep notch into the LV and its myocardium
    row = evaluate_pair(pred, ref, SPACING, instant="ED")
    assert row["LVendo_convexity"] < 0.96
    assert row["anatomical_outlier"]
    assert not row["ref_anatomical_outlier"]


def test_postprocess_option_removes_islands_and_fills_holes():
    ref = heart()
    pred = ref.copy()
    pred[10:20, 10:20] = 1  # an island of LV far away
    pred[120:124, 130:134] = 0  # a hole in the LV
    raw = evaluate_pair(pred, ref, SPACING, instant="ED")
    post = evaluate_pair(pred, ref, SPACING, instant="ED", postprocess=True)
    assert raw["LVendo_hd_mm"] > 30
    assert post["LVendo_hd_mm"] == 0.0 and post["postprocessed"]
    cleaned = postprocess_label_map(pred)
    np.testing.assert_array_equal(cleaned, ref)


def test_postprocess_keeps_a_closed_ring_around_another_label():
    lm = np.zeros((40, 40), np.uint8)
    lm[5:35, 5:35] = 2
    lm[10:30, 10:30] = 1
    np.testing.assert_array_equal(postprocess_label_map(lm), lm)


def test_parallel_equals_serial_and_keeps_order():
    rng = np.random.default_rng(3)
    items = []
    for i in range(10):
        ref = heart(dr=int(rng.integers(-5, 5)))
        pred = heart(dr=int(rng.integers(-10, 10)), dc=int(rng.integers(-6, 6)))
        items.append(
            {
                "model": "unet1" if i % 2 else "runet",
                "output": "segmentation",
                "patient_id": f"patient{i:04d}",
                "view": "2CH",
                "instant": "ED" if i % 3 else "ES",
                "image_quality": "Good",
                "pred": pred,
                "ref": ref,
                "spacing": SPACING,
                "image": np.zeros(ref.shape, np.uint8),  # ignored
            }
        )
    serial = evaluate_label_maps(items, workers=0)
    parallel = evaluate_label_maps(iter(items), workers=2, chunksize=3)
    kdtree = evaluate_label_maps(items, workers=0, distance_method="kdtree")
    assert [r["patient_id"] for r in parallel] == [it["patient_id"] for it in items]
    for a, b, c in zip(serial, parallel, kdtree, strict=True):
        for k in a:
            if k.endswith("_mm") and isinstance(a[k], float):
                assert c[k] == pytest.approx(a[k], abs=1e-12, nan_ok=True), k
        assert a.keys() == b.keys() == c.keys()
        for k in a:
            if isinstance(a[k], float) and math.isnan(a[k]):
                assert math.isnan(b[k])
            else:
                assert a[k] == b[k], k


def test_to_native_grid_resizes_probabilities_then_argmax():
    native = heart()
    small = native[::3, ::2]
    probs = np.eye(4, dtype=np.float32)[small]
    back = to_native_grid(probs, native.shape)
    assert back.shape == native.shape and back.dtype == np.uint8
    assert dice(back == 1, native == 1) > 0.97
    same = to_native_grid(np.eye(4, dtype=np.float32)[native], native.shape)
    np.testing.assert_array_equal(same, native)
    probs[0, 0, 1] = np.nan
    with pytest.raises(ValueError, match="1 non-finite value"):
        to_native_grid(probs, native.shape)
    probs[0, 0, 1] = np.inf
    with pytest.raises(ValueError, match="non-finite"):
        to_native_grid(probs, native.shape)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"pred": np.zeros((5, 5), np.float32)}, "pred must be an integer label map"),
        ({"pred": np.full((5, 5), 4, np.uint8)}, "pred must hold labels 0..3"),
        ({"ref": np.zeros((5, 6), np.uint8)}, "same shape"),
        ({"instant": "EX"}, "instant"),
        ({"spacing": (0.1,)}, "spacing"),
    ],
)
def test_evaluate_pair_rejects_bad_inputs(kwargs, match):
    args = {"pred": np.zeros((5, 5), np.uint8), "ref": np.zeros((5, 5), np.uint8)}
    args.update(spacing=SPACING, instant="ED")
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        evaluate_pair(args.pop("pred"), args.pop("ref"), args.pop("spacing"), **args)


def test_bad_items_and_arguments():
    with pytest.raises(ValueError, match="missing"):
        evaluate_label_maps([{"pred": np.zeros((3, 3), np.uint8)}])
    with pytest.raises(ValueError, match="workers"):
        evaluate_label_maps([], workers=-1)
    with pytest.raises(ValueError, match="probabilities"):
        to_native_grid(np.zeros((4, 4)), (8, 8))
    with pytest.raises(ValueError, match="native_shape"):
        to_native_grid(np.zeros((4, 4, 4)), (8,))
    with pytest.raises(ValueError, match="OutlierThresholds.hd_mm_ed"):
        OutlierThresholds(hd_mm_ed=float("nan"))


def test_evaluation_modules_import_no_keras_or_tensorflow():
    import keras_runet.evaluation as ev

    for path in Path(ev.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            for name in names:
                top = name.split(".")[0]
                assert top not in {"keras", "tensorflow", "tensorflow_datasets"}, (path, name)
                assert not name.startswith("keras_runet.") or name.startswith(
                    "keras_runet.evaluation"
                ), (path, name)
