"""Paired comparisons of models on the same images: McNemar, Wilcoxon, bootstrap CI, and the
report's "Paired comparisons" section."""

import json
import math

import numpy as np
import pytest
from scipy import stats

from keras_runet.evaluation import (
    OutlierThresholds,
    compare_models,
    format_markdown,
    load_summary,
    mcnemar_test,
    pair_rows,
    paired_difference,
    write_report,
)

NAN = float("nan")


def row(model, patient, hd, *, output="segmentation", view="2CH", instant="ED", sp=0.9, cx=0.99):
    r = {
        "model": model,
        "output": output,
        "patient_id": patient,
        "view": view,
        "instant": instant,
        "image_quality": "Good",
        "postprocessed": False,
    }
    missing = not math.isfinite(hd)  # an empty structure: no distance, no shape
    for s in ("LVendo", "LVepi", "LA"):
        r.update(
            {
                f"{s}_dice": 0.0 if missing else 0.9,
                f"{s}_mad_mm": NAN if missing else 1.0,
                f"{s}_hd_mm": hd,
                f"{s}_mad_pooled_mm": NAN if missing else 1.0,
                f"{s}_convexity": NAN if missing else cx,
                f"{s}_simplicity": NAN if missing else sp,
                f"{s}_ref_convexity": 1.0,
                f"{s}_ref_simplicity": 0.9,
            }
        )
    return r


def test_mcnemar_is_the_exact_binomial_test_on_the_discordant_images():
    # Hand-known: 0 images where only A is an outlier, 6 where only B is: p = 2 * 0.5**6.
    r = mcnemar_test([False] * 6 + [True] * 3 + [False] * 5, [True] * 9 + [False] * 5)
    assert (r["n"], r["both"], r["only_a"], r["only_b"], r["neither"]) == (14, 3, 0, 6, 5)
    assert r["p"] == pytest.approx(2 * 0.5**6)
    # A constructed table against scipy: 3 only-A, 11 only-B among 40 images.
    a = [True] * 3 + [False] * 11 + [True] * 7 + [False] * 19
    b = [False] * 3 + [True] * 11 + [True] * 7 + [False] * 19
    r = mcnemar_test(a, b)
    assert (r["only_a"], r["only_b"], r["both"], r["neither"]) == (3, 11, 7, 19)
    assert r["p"] == pytest.approx(stats.binomtest(3, 14, 0.5).pvalue)
    assert mcnemar_test(b, a)["p"] == pytest.approx(r["p"])  # symmetric
    # No discordant image: no evidence of a difference.
    assert mcnemar_test([True, False], [True, False])["p"] == 1.0
    with pytest.raises(ValueError, match="one length"):
        mcnemar_test([True], [True, False])


def test_paired_difference_matches_scipy_and_drops_nan_pairs():
    rng = np.random.default_rng(1)
    a = rng.gamma(4.0, 1.5, 30)
    b = a + rng.normal(0.4, 1.0, 30)
    a_nan, b_nan = a.copy(), b.copy()
    a_nan[2], b_nan[7] = NAN, NAN  # empty structures: two pairs dropped
    b_list = list(b_nan)
    b_list[11] = None
    r = paired_difference(a_nan, b_list)
    keep = np.ones(30, bool)
    keep[[2, 7, 11]] = False
    assert (r["n"], r["n_dropped"]) == (27, 3)
    assert r["mean_diff"] == pytest.approx(np.mean(a[keep] - b[keep]))
    assert r["mean_a"] == pytest.approx(a[keep].mean())
    assert r["mean_b"] == pytest.approx(b[keep].mean())
    assert r["wilcoxon_p"] == pytest.approx(stats.wilcoxon(a[keep], b[keep]).pvalue)
    assert r["ci_low"] < r["mean_diff"] < r["ci_high"]
    # Every difference zero: p = 1; all the same: a point interval; nothing: NaN.
    same = paired_difference([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])
    assert same["wilcoxon_p"] == 1.0 and same["ci_low"] == same["ci_high"] == 0.0
    shift = paired_difference([1.0, 2.0, 3.0], [0.5, 1.5, 2.5])
    assert shift["ci_low"] == shift["ci_high"] == pytest.approx(0.5)
    empty = paired_difference([NAN], [1.0])
    assert empty["n"] == 0 and empty["n_dropped"] == 1 and math.isnan(empty["wilcoxon_p"])


def test_bootstrap_ci_holds_the_true_mean_difference_and_is_reproducible():
    # Differences built with a known mean (-0.5) and a symmetric spread around it.
    rng = np.random.default_rng(3)
    half = rng.exponential(1.0, 100)
    d = -0.5 + np.r_[half, -half]
    b = rng.uniform(2, 8, d.size)
    a = b + d
    r1 = paired_difference(a, b, seed=7)
    r2 = paired_difference(a, b, seed=7)
    assert r1 == r2  # the same seed, the same interval
    assert r1["mean_diff"] == pytest.approx(-0.5)
    assert r1["ci_low"] < -0.5 < r1["ci_high"]
    # About the normal-theory interval (n = 200).
    half_width = 1.96 * d.std(ddof=1) / np.sqrt(d.size)
    assert r1["ci_high"] - r1["ci_low"] == pytest.approx(2 * half_width, rel=0.15)
    r3 = paired_difference(a, b, seed=8)
    assert (r3["ci_low"], r3["ci_high"]) != (r1["ci_low"], r1["ci_high"])


def _two_models():
    rows = []
    # 12 images; unet1 has 4 geometric outliers (HD > 8.2), runet 1 (one shared); runet
    # misses its structures on image 11 (NaN: an outlier, and its distances dropped). No
    # tied differences: scipy's Wilcoxon is then exact (and fast).
    for k in range(12):
        pid = f"patient{k:04d}"
        rows.append(row("unet1", pid, 9.5 + 0.01 * k if k < 4 else 5.0 + 0.1 * k))
        rows.append(row("runet", pid, 9.65 if k == 0 else (NAN if k == 11 else 4.8 + 0.13 * k)))
        rows.append(row("runet", pid, 7.0, output="coarse"))  # not compared
    rows.append(row("unet1", "patient0099", 5.0))  # an image of unet1 only
    return rows


def test_compare_models_pairs_images_and_counts_only_one_model_outliers():
    rows = _two_models()
    paired = pair_rows(rows, "unet1", "runet")
    assert len(paired["pairs"]) == 12 and (paired["only_a"], paired["only_b"]) == (1, 0)
    assert all(a["patient_id"] == b["patient_id"] for a, b in paired["pairs"])
    (c,) = compare_models(rows, OutlierThresholds())
    assert (c["model_a"], c["model_b"], c["n_images"], c["only_a_images"]) == (
        "unet1",
        "runet",
        12,
        1,
    )
    geo = c["outliers"]["geometric"]
    assert (geo["both"], geo["only_a"], geo["only_b"]) == (1, 3, 1)
    assert geo["p"] == pytest.approx(stats.binomtest(3, 4, 0.5).pvalue)
    assert c["outliers"]["anatomical"]["only_b"] == 1  # the missing structure
    hd = c["distances"]["LVendo"]["hd_mm"]
    assert (hd["n"], hd["n_dropped"]) == (11, 1)
    a = np.array([*(9.5 + 0.01 * k for k in range(4)), *(5.0 + 0.1 * k for k in range(4, 11))])
    b = np.array([9.65, *(4.8 + 0.13 * k for k in range(1, 11))])
    assert hd["mean_diff"] == pytest.approx(np.mean(a - b))
    assert hd["wilcoxon_p"] == pytest.approx(stats.wilcoxon(a, b).pvalue)
    # One model: nothing to compare.
    assert compare_models([r for r in rows if r["model"] == "unet1"]) == []


def test_two_rows_of_one_image_are_refused_with_the_image_named():
    rows = [row("a", "patient0001", 5.0), row("a", "patient0001", 6.0), row("b", "p", 5.0)]
    with pytest.raises(ValueError, match="patient0001"):
        pair_rows(rows, "a", "b")
    with pytest.raises(ValueError, match="two different models"):
        pair_rows(rows, "a", "a")


def test_report_has_paired_comparisons_with_two_models_only(tmp_path):
    rows = _two_models()
    paths = write_report(rows, tmp_path / "two", figures=False)
    text = paths["markdown"].read_text()
    assert "## Paired comparisons" in text and "### unet1 vs runet (segmentation)" in text
    assert "| geometric | 12 | 1 | 3 | 1 |" in text
    data = json.loads(paths["json"].read_text())
    (c,) = data["paired_comparisons"]
    assert c["outliers"]["geometric"]["only_a"] == 3
    assert format_markdown(load_summary(paths["json"])) == text  # the JSON says it all
    one = write_report([r for r in rows if r["model"] == "unet1"], tmp_path / "one", figures=False)
    assert "Paired comparisons" not in one["markdown"].read_text()
    assert json.loads(one["json"].read_text())["paired_comparisons"] == []
