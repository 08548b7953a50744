"""Raw and post-processed predictions in one report (``postprocess="both"``), the mode's
normaliser, and the thresholds named in the report's header."""

import json
import math

import numpy as np
import pytest
from scipy.stats import binomtest

from keras_runet.evaluation import (
    OutlierThresholds,
    evaluate_and_report,
    evaluate_label_maps,
    format_markdown,
    load_summary,
    read_per_image_csv,
    summarize,
)
from keras_runet.evaluation.postprocess import postprocess_mode, postprocess_passes
from keras_runet.evaluation.reports import evaluate_modes
from keras_runet.evaluation.tables import postprocessing_effect


def test_the_mode_reads_names_and_the_old_bools_and_nothing_else():
    assert [postprocess_mode(v) for v in ("raw", "post", "both")] == ["raw", "post", "both"]
    assert postprocess_mode(False) == "raw" and postprocess_mode(True) == "post"
    assert postprocess_mode(np.bool_(True)) == "post"  # a bool read back from numpy
    assert postprocess_passes("both") == (False, True) and postprocess_passes(True) == (True,)
    for bad in ("Post", "yes", 1, 0, None, ""):
        with pytest.raises(ValueError, match=f"got {bad!r}"):
            postprocess_mode(bad)


def _heart(shape=(100, 80)):
    ref = np.zeros(shape, np.uint8)
    ref[10:50, 12:36] = 2  # myocardium
    ref[14:46, 16:32] = 1  # LV cavity
    ref[50:60, 14:34] = 3  # left atrium
    return ref


def _items(n_blobs=3, n_clean=3):
    """Predictions equal to the reference, the first ``n_blobs`` with a detached LV island
    17 mm from the heart: raw, a geometric (HD) and anatomical (convexity) outlier; the
    post-processing (largest component) removes the island."""
    ref = _heart()
    items = []
    for k in range(n_blobs + n_clean):
        pred = ref.copy()
        if k < n_blobs:
            pred[88:93, 66:71] = 1
        items.append(
            {
                "pred": pred,
                "ref": ref,
                "spacing": (0.3, 0.3),
                "instant": "ED" if k % 2 else "ES",
                "model": "runet",
                "patient_id": f"patient{k:04d}",
                "view": "2CH",
                "image_quality": "Good",
                "roi_fraction": 0.1 * k,
            }
        )
    return items


def _same(a, b):
    assert a.keys() == b.keys()
    for k, v in a.items():
        if isinstance(v, float) and math.isnan(v):
            assert math.isnan(b[k]), k
        elif isinstance(v, tuple | list):
            assert list(b[k]) == pytest.approx(list(v), nan_ok=True), k
        else:
            assert b[k] == v, k


def test_both_gives_the_rows_of_each_mode_evaluated_alone_and_the_effect(tmp_path):
    items = _items()
    raw_alone = evaluate_label_maps(items, postprocess=False)
    post_alone = evaluate_label_maps(items, postprocess=True)
    assert [r["geometric_outlier"] for r in raw_alone] == [True] * 3 + [False] * 3
    assert not any(r["geometric_outlier"] or r["anatomical_outlier"] for r in post_alone)

    rows, post = evaluate_modes(items, "both")
    assert all(r["roi_fraction"] == it["roi_fraction"] for r, it in zip(rows, items, strict=True))
    for mine, alone in [*zip(rows, raw_alone, strict=True), *zip(post, post_alone, strict=True)]:
        _same({k: v for k, v in mine.items() if k != "roi_fraction"}, alone)
    assert evaluate_modes(items, "raw")[1] is None

    (effect,) = postprocessing_effect(rows, post)
    assert (effect["model"], effect["output"], effect["n_images"]) == ("runet", "segmentation", 6)
    geo = effect["outliers"]["geometric"]
    assert (geo["raw"], geo["post"], geo["only_raw"], geo["only_post"]) == (3, 0, 3, 0)
    assert geo["p"] == pytest.approx(binomtest(3, 3, 0.5).pvalue)  # McNemar: 3 discordant
    hd = effect["structures"]["LVendo"]["hd_mm"]
    assert hd["mean_raw"] == pytest.approx(np.mean([r["LVendo_hd_mm"] for r in raw_alone]))
    assert hd["mean_post"] == 0.0
    dice = effect["structures"]["LVendo"]["dice"]
    assert dice["mean_raw"] < 1.0 == dice["mean_post"]

    # The report: raw rows everywhere, the post-processed ones beside them.
    _, paths = evaluate_and_report(items, tmp_path, postprocess="both", figures=False)
    assert paths["postprocessed_csv"].name == "per_image_postprocessed.csv"
    for mine, alone in zip(read_per_image_csv(paths["csv"]), raw_alone, strict=True):
        assert mine["postprocessed"] is False and mine["LVendo_hd_mm"] == alone["LVendo_hd_mm"]
    back = read_per_image_csv(paths["postprocessed_csv"])
    assert [r["geometric_outlier"] for r in back] == [False] * 6
    summary = json.loads(paths["json"].read_text())
    assert summary["postprocess"] == "both" and summary["postprocessed"] is False
    assert summary["groups"][0]["subsets"]["all"]["geometric_outliers"]["count"] == 3
    (g,) = summary["postprocessed_predictions"]["groups"]
    (alone,) = summarize(post_alone)["groups"]
    assert g["subsets"]["all"]["geometric_outliers"] == {"count": 0, "percent": 0.0}
    for x in ("LVendo", "LVepi"):
        for m in ("dice", "hd_mm", "mad_mm"):
            mine, theirs = (h["subsets"]["all"]["structures"][x][m] for h in (g, alone))
            assert mine["mean"] == pytest.approx(theirs["mean"]) and mine["n"] == theirs["n"]
    assert summary["postprocessing_effect"][0]["outliers"]["anatomical"]["only_raw"] == 3
    text = paths["markdown"].read_text()
    assert "## Post-processed predictions" in text and "### Effect of the post-processing" in text
    assert "| runet | segmentation | geometric | 6 | 3 | 0 | 3 | 0 | 0.2500 |" in text
    assert format_markdown(load_summary(paths["json"])) == text  # re-rendered from the JSON

    # "raw" again in the same folder: the stale post-processed rows go.
    _, paths = evaluate_and_report(items, tmp_path, postprocess="raw", figures=False)
    assert not (tmp_path / "per_image_postprocessed.csv").exists()
    assert "Post-processed predictions" not in paths["markdown"].read_text()


def test_the_effect_refuses_rows_that_are_not_the_same_images():
    rows, post = evaluate_modes(_items(1, 1), "both")
    with pytest.raises(ValueError, match="row 0: the raw row is about"):
        postprocessing_effect(rows, post[::-1])
    with pytest.raises(ValueError, match="2 raw rows but 1 post-processed"):
        postprocessing_effect(rows, post[:1])


def test_the_header_names_thresholds_that_are_not_table_one():
    rows = evaluate_label_maps(_items(1, 1))
    assert "Outlier thresholds: the paper's Table I." in format_markdown(summarize(rows))
    other = OutlierThresholds(hd_mm_ed=9.0, convention="isotropic")
    text = format_markdown(summarize(rows, other))
    assert "not the paper's Table I: hd_mm_ed 9.0 (Table I: 8.2); shape convention isotropic" in (
        text
    )
