"""The anatomical flag and the quality score as detectors of geometric outliers: precision,
recall, F1, AUROC (scikit-learn as the reference), the score's agreement with the flag, and
the report's "Failure detector" section and figure."""

import json
import math

import numpy as np
import pytest
from scipy.integrate import trapezoid

from keras_runet.evaluation import (
    OutlierThresholds,
    anatomical_outlier,
    auroc,
    detection_counts,
    failure_detector,
    quality_score,
    roc_curve,
    write_report,
)
from keras_runet.evaluation.figures import plot_failure_detector

NAN = float("nan")


def shapes(sp_endo=0.9, cx_endo=0.99, sp_epi=0.8, cx_epi=0.9):
    return {
        "LVendo_simplicity": sp_endo,
        "LVendo_convexity": cx_endo,
        "LVepi_simplicity": sp_epi,
        "LVepi_convexity": cx_epi,
    }


def test_quality_score_is_the_smallest_normalised_margin():
    t = OutlierThresholds()
    # LVendo Sp 0.8 against 0.741: (0.8 - 0.741) / (1 - 0.741); the other margins larger.
    row = shapes(sp_endo=0.8, cx_endo=0.995, sp_epi=0.9, cx_epi=0.95)
    assert quality_score(row, t) == pytest.approx((0.8 - 0.741) / 0.259)
    # LVepi Cx 0.6 below 0.694: negative.
    assert quality_score(shapes(cx_epi=0.6), t) == pytest.approx((0.6 - 0.694) / 0.306)
    assert quality_score(shapes(cx_endo=NAN), t) == -math.inf  # missing structure
    assert quality_score(shapes(sp_epi=None), t) == -math.inf
    assert quality_score(shapes(), OutlierThresholds(structures=())) == math.inf
    ref = {k.replace("_", "_ref_"): v for k, v in shapes(sp_endo=0.7).items()}
    assert quality_score(ref, t, prefix="ref_") < 0


def test_the_score_is_negative_exactly_when_the_anatomical_flag_is_raised():
    rng = np.random.default_rng(0)
    t = OutlierThresholds()
    limits = [0.741, 0.960, 0.529, 0.694]
    for _ in range(400):
        values = rng.uniform(0.4, 1.0, 4)
        values[rng.random(4) < 0.1] = NAN  # missing structures: flagged, score -inf
        for i in np.nonzero(rng.random(4) < 0.1)[0]:
            values[i] = limits[i]  # exactly at the limit: not flagged, margin 0
        row = shapes(*values)
        assert (quality_score(row, t) < 0) == anatomical_outlier(row, t)[0], values
    # Limits of 0 (nothing is flagged) and of 1 (the scale falls back to 1).
    zero = OutlierThresholds(
        simplicity_lvendo=0, convexity_lvendo=0, simplicity_lvepi=0, convexity_lvepi=0
    )
    assert quality_score(shapes(), zero) == pytest.approx(0.8)
    one = OutlierThresholds(convexity_lvendo=1.0)
    assert quality_score(shapes(cx_endo=0.99), one) == pytest.approx(-0.01)


# A constructed table: 12 images, failures (geometric outliers), flags and scores, with ties
# and a missing structure (-inf).
FAILURES = [True, True, True, False, False, False, False, False, True, False, False, False]
FLAGS = [True, True, False, True, False, False, False, False, True, False, False, False]
SCORES = [-math.inf, -0.2, 0.1, -0.05, 0.3, 0.1, 0.5, 0.7, -0.2, 0.9, 0.3, 0.25]


def test_precision_recall_f1_and_auroc_equal_scikit_learn():
    metrics = pytest.importorskip("sklearn.metrics")
    c = detection_counts(FLAGS, FAILURES)
    assert (c["tp"], c["fp"], c["fn"], c["tn"]) == (3, 1, 1, 7)
    assert c["precision"] == pytest.approx(metrics.precision_score(FAILURES, FLAGS))
    assert c["recall"] == pytest.approx(metrics.recall_score(FAILURES, FLAGS))
    assert c["f1"] == pytest.approx(metrics.f1_score(FAILURES, FLAGS))
    finite = np.nan_to_num(np.asarray(SCORES), neginf=-1e9)  # scikit-learn refuses inf
    expected = metrics.roc_auc_score(FAILURES, -finite)
    assert auroc(SCORES, FAILURES) == pytest.approx(expected)
    curve = roc_curve(SCORES, FAILURES)
    fpr, tpr, _ = metrics.roc_curve(FAILURES, -finite, drop_intermediate=False)
    np.testing.assert_allclose(curve["fpr"], fpr)
    np.testing.assert_allclose(curve["tpr"], tpr)
    assert trapezoid(curve["tpr"], curve["fpr"]) == pytest.approx(expected)


def test_detector_by_hand_and_undefined_ratios():
    # 4 failures x 8 successes = 32 pairs; successes scoring at or below a failure:
    # -0.05 < 0.1 (1), and the tie 0.1 = 0.1 (1/2): AUROC = 1 - 1.5 / 32.
    assert auroc(SCORES, FAILURES) == pytest.approx(1 - 1.5 / 32)
    # The flag's operating point lies on the score's ROC curve (flag <=> score < 0).
    curve = roc_curve(SCORES, FAILURES)
    c = detection_counts(FLAGS, FAILURES)
    point = (c["fp"] / (c["n"] - c["n_failures"]), c["tp"] / c["n_failures"])
    assert any(np.allclose(point, p) for p in zip(curve["fpr"], curve["tpr"], strict=True))
    none = detection_counts([False] * 3, [True, False, False])
    assert math.isnan(none["precision"]) and none["recall"] == 0 and math.isnan(none["f1"])
    assert math.isnan(detection_counts([True], [False])["recall"])
    assert math.isnan(auroc([0.1, 0.2], [False, False]))
    with pytest.raises(ValueError, match="NaN"):
        auroc([NAN, 0.2], [True, False])
    with pytest.raises(ValueError, match="one length"):
        detection_counts([True], [True, False])


def _rows():
    rows = []
    for k, (fail, score) in enumerate(zip(FAILURES, SCORES, strict=True)):
        # Shapes whose score is the table's: LVendo Sp margin = score, others far above.
        sp = NAN if score == -math.inf else 0.741 + score * 0.259
        r = {
            "model": "unet1",
            "output": "segmentation",
            "patient_id": f"patient{k:04d}",
            "view": "2CH",
            "instant": "ED",
            "image_quality": "Good",
            "postprocessed": False,
            **shapes(sp_endo=sp, cx_endo=0.999, sp_epi=0.99, cx_epi=0.99),
        }
        for s in ("LVendo", "LVepi", "LA"):
            hd = NAN if math.isnan(sp) else (9.0 + k / 10 if fail else 4.0 + k / 10)
            r.update({f"{s}_dice": 0.9, f"{s}_mad_mm": 1.0, f"{s}_hd_mm": hd})
            r.setdefault(f"{s}_convexity", 0.99)
            r.setdefault(f"{s}_simplicity", 0.9)
            r.update({f"{s}_ref_convexity": 1.0, f"{s}_ref_simplicity": 0.9})
        rows.append(r)
    return rows


def test_failure_detector_per_model_output_and_in_the_report(tmp_path):
    rows = _rows()
    (d,) = failure_detector(rows)
    assert (d["model"], d["output"], d["n"], d["n_failures"], d["n_flagged"]) == (
        "unet1",
        "segmentation",
        12,
        4,
        4,
    )
    assert d["n_missing"] == 1 and d["precision"] == pytest.approx(0.75)
    assert d["auroc"] == pytest.approx(1 - 1.5 / 32)
    paths = write_report(rows, tmp_path, figures=False)
    text = paths["markdown"].read_text()
    assert "## Failure detector" in text
    assert "| unet1 | segmentation | 12 | 4 | 4 | 3 | 0.750 | 0.750 | 0.750 | 0.953 |" in text
    # The figure write_report draws with figures=True (as test_write_report_files_round_trip).
    figure = plot_failure_detector(rows, tmp_path / "failure_detector.png")
    assert figure.stat().st_size > 10_000
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # written atomically
    (j,) = json.loads(paths["json"].read_text())["failure_detector"]
    assert j["auroc"] == pytest.approx(d["auroc"])
