"""Summaries, Markdown / JSON / CSV reports, ejection fraction table, figures."""

import json
import math

import numpy as np
import pytest

from keras_runet.evaluation import (
    OutlierThresholds,
    ejection_fraction_table,
    evaluate_and_report,
    format_markdown,
    load_summary,
    patient_volumes,
    read_per_image_csv,
    summarize,
    write_report,
)
from keras_runet.evaluation.figures import worst_rows

NAN = float("nan")


def fake_row(model, output, instant, quality, hd, mad, sp=0.9, cx=0.99, **extra):
    row = {
        "model": model,
        "output": output,
        "patient_id": extra.pop("patient_id", "patient0001"),
        "view": extra.pop("view", "2CH"),
        "instant": instant,
        "image_quality": quality,
        "postprocessed": False,
    }
    for s in ("LVendo", "LVepi", "LA"):
        row.update(
            {
                f"{s}_dice": 0.9,
                f"{s}_mad_mm": mad,
                f"{s}_hd_mm": hd,
                f"{s}_mad_pooled_mm": mad,
                f"{s}_convexity": cx,
                f"{s}_simplicity": sp,
                f"{s}_ref_convexity": 1.0,
                f"{s}_ref_simplicity": 0.9,
            }
        )
    row.update(extra)
    return row


def test_summary_counts_outliers_per_model_output_and_subset():
    rows = [
        fake_row("runet", "segmentation", "ED", "Good", hd=5.0, mad=1.0),
        fake_row("runet", "segmentation", "ED", "Poor", hd=8.5, mad=1.0),  # geo (ED: > 8.2)
        fake_row("runet", "segmentation", "ES", "Medium", hd=8.5, mad=1.0),  # fine at ES
        fake_row("runet", "segmentation", "ES", "Poor", hd=5.0, mad=1.0, cx=0.5),  # ana
        fake_row("runet", "coarse", "ED", "Good", hd=NAN, mad=NAN),  # missing: geo
        fake_row("unet1", "segmentation", "ED", "Good", hd=9.9, mad=4.5, sp=0.3),  # both
    ]
    summary = summarize(rows)
    groups = {(g["model"], g["output"]): g for g in summary["groups"]}
    assert set(groups) == {
        ("runet", "segmentation"),
        ("runet", "coarse"),
        ("unet1", "segmentation"),
    }
    seg = groups[("runet", "segmentation")]["subsets"]
    assert seg["all"]["n"] == 4
    assert seg["all"]["geometric_outliers"] == {"count": 1, "percent": 25.0}
    assert seg["all"]["anatomical_outliers"]["count"] == 1
    assert seg["all"]["both_outliers"]["count"] == 0
    assert seg["ED"]["n"] == 2 and seg["ES"]["n"] == 2
    assert seg["Good+Medium"]["n"] == 2 and seg["Poor"]["n"] == 2
    assert seg["Poor"]["geometric_outliers"]["count"] == 1
    hd = seg["all"]["structures"]["LVendo"]["hd_mm"]
    assert hd["mean"] == pytest.approx(np.mean([5, 8.5, 8.5, 5]))
    assert hd["sd"] == pytest.approx(np.std([5, 8.5, 8.5, 5]))
    coarse = groups[("runet", "coarse")]["subsets"]["all"]
    assert coarse["geometric_outliers"]["count"] == 1
    assert coarse["structures"]["LVendo"]["hd_mm"]["n_nan"] == 1
    assert math.isnan(coarse["structures"]["LVendo"]["hd_mm"]["mean"])
    assert groups[("unet1", "segmentation")]["subsets"]["all"]["both_outliers"]["count"] == 1
    # Other thresholds: recomputed from the metrics.
    strict = summarize(rows, OutlierThresholds(hd_mm_es=8.0))
    seg = {(g["model"], g["output"]): g for g in strict["groups"]}[("runet", "segmentation")]
    assert seg["subsets"]["all"]["geometric_outliers"]["count"] == 2

    md = format_markdown(summary)
    assert "| runet | segmentation | 4 |" in md
    assert "1 (25.0 %)" in md
    assert "## By instant and image quality" in md
    assert "n/a" in md  # the coarse output has no finite HD


def _disks(length, diameter):
    return length, tuple([diameter] * 20)


def _volume_rows(model, pid, ed_d, es_d, ref_ed_d, ref_es_d):
    rows = []
    for view in ("2CH", "4CH"):
        for instant, d, rd in (("ED", ed_d, ref_ed_d), ("ES", es_d, ref_es_d)):
            length, diam = _disks(80.0, d)
            rlength, rdiam = _disks(80.0, rd)
            rows.append(
                fake_row(
                    model,
                    "segmentation",
                    instant,
                    "Good",
                    hd=3.0,
                    mad=1.0,
                    patient_id=pid,
                    view=view,
                    lv_length_mm=length,
                    lv_diameters_mm=diam,
                    ref_lv_length_mm=rlength,
                    ref_lv_diameters_mm=rdiam,
                )
            )
    return rows


def cylinder_ml(d, length=80.0):
    return math.pi * (d / 2) ** 2 * length / 1000


def test_patient_volumes_and_ejection_fraction_table():
    rows = _volume_rows("m", "patient0001", 40.0, 30.0, 40.0, 32.0)
    rows += _volume_rows("m", "patient0002", 44.0, 30.0, 42.0, 30.0)
    vols = {v["patient_id"]: v for v in patient_volumes(rows)}
    assert vols["patient0001"]["EDV"] == pytest.approx(cylinder_ml(40))
    assert vols["patient0001"]["EF"] == pytest.approx(100 * (1 - (30 / 40) ** 2))
    # Against the reference masks.
    table = ejection_fraction_table(rows)
    assert table["reference"] == "reference masks"
    (g,) = table["groups"]
    edv_diff = [cylinder_ml(40) - cylinder_ml(40), cylinder_ml(44) - cylinder_ml(42)]
    assert g["EDV"]["bias"] == pytest.approx(np.mean(edv_diff))
    assert g["EDV"]["mae"] == pytest.approx(np.mean(np.abs(edv_diff)))
    assert g["EDV"]["corr"] == pytest.approx(1.0)
    # Against given references (cfg keys), one patient without them.
    refs = {"patient0001": {"LVedv": 100.0, "LVesv": 50.0, "LVef": 50.0, "EF": NAN}}
    table = ejection_fraction_table(rows, refs)
    (g,) = table["groups"]
    assert g["EF"]["n"] == 1
    assert g["EF"]["bias"] == pytest.approx(vols["patient0001"]["EF"] - 50.0)
    assert math.isnan(g["EF"]["corr"])  # one patient: no correlation
    # Volumes in, references required.
    with pytest.raises(ValueError, match="references"):
        ejection_fraction_table(patient_volumes(rows))


def test_write_report_files_round_trip(tmp_path):
    rows = _volume_rows("unet1", "patient0001", 40.0, 30.0, 41.0, 31.0)
    rows += _volume_rows("unet1", "patient0002", 45.0, 33.0, 44.0, 32.0)
    rows[0]["LVendo_hd_mm"] = NAN
    paths = write_report(rows, tmp_path / "out")
    assert {"markdown", "json", "csv", "hd_figure", "volumes_csv", "detector_figure"} <= set(paths)
    volumes = read_per_image_csv(paths["volumes_csv"])
    assert [v["patient_id"] for v in volumes] == ["patient0001", "patient0002"]
    assert volumes[0]["EDV"] == pytest.approx(cylinder_ml(40))
    for p in paths.values():
        assert p.is_file() and p.stat().st_size > 0
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]
    text = paths["json"].read_text()
    assert "NaN" not in text
    data = json.loads(text)
    assert data["n_images"] == len(rows)
    assert data["groups"][0]["ejection_fraction"]["n_patients"] == 2
    assert format_markdown(load_summary(paths["json"])) == paths["markdown"].read_text()
    back = read_per_image_csv(paths["csv"])
    assert len(back) == len(rows)
    for a, b in zip(rows, back, strict=True):
        for k, v in a.items():
            if isinstance(v, float) and math.isnan(v):
                assert math.isnan(b[k])
            elif isinstance(v, tuple):
                assert b[k] == pytest.approx(v)
            else:
                assert b[k] == v, k
    assert summarize(back)["groups"][0]["subsets"]["all"]["n"] == len(rows)


def test_evaluate_and_report_draws_the_worst_cases(tmp_path):
    ref = np.zeros((120, 100), np.uint8)
    ref[20:90, 25:75] = 2
    ref[30:90, 35:65] = 1
    ref[90:110, 35:65] = 3
    items = []
    for k in range(4):
        items.append(
            {
                "model": "m",
                "patient_id": f"patient000{k}",
                "view": "2CH",
                "instant": "ED",
                "image_quality": "Good",
                "pred": np.roll(ref, 3 * k, axis=0),
                "ref": ref,
                "spacing": (0.3, 0.3),
                "image": np.full(ref.shape, 80, np.uint8),
            }
        )
    rows, paths = evaluate_and_report(items, tmp_path, worst_k=2)
    assert paths["worst_figure"].is_file()
    assert [r["patient_id"] for r in worst_rows(rows, 2)] == ["patient0003", "patient0002"]


def test_report_modules_of_one_concern_keep_the_old_names():
    # tables (summary, EF), markdown, report files: what callers imported from reports.
    from keras_runet.evaluation import _validation, markdown, reports, tables
    from tfds_camus import vocabulary

    assert reports.summarize is tables.summarize
    assert reports.patient_volumes is tables.patient_volumes
    assert reports.ejection_fraction_table is tables.ejection_fraction_table
    assert reports.format_markdown is markdown.format_markdown
    assert reports.SUBSETS == ("all", "ED", "ES", "Good+Medium", "Poor")
    assert _validation.STRUCTURES == vocabulary.STRUCTURES
    assert _validation.LV_STRUCTURES == OutlierThresholds().structures == ("LVendo", "LVepi")
    assert _validation.LA == "LA"


def test_the_report_warns_when_reference_masks_are_anatomical_outliers(tmp_path):
    rows = _volume_rows("unet1", "patient0001", 40.0, 30.0, 41.0, 31.0)
    rows += _volume_rows("unet1", "patient0002", 45.0, 33.0, 44.0, 32.0)
    quiet = write_report(rows, tmp_path / "quiet")
    assert "**Warning:**" not in quiet["markdown"].read_text()
    assert json.loads(quiet["json"].read_text())["warnings"] == []
    rows[0]["LVendo_ref_simplicity"] = 0.2  # one expert tracing of 8 below the limit
    rows[0]["ref_anatomical_outlier"] = True
    loud = write_report(rows, tmp_path / "loud")
    (warning,) = json.loads(loud["json"].read_text())["warnings"]
    assert warning.startswith("warning: 1 of 8 reference masks (12.5 %)"), warning
    assert "**Warning:** 1 of 8 reference masks" in loud["markdown"].read_text()


def test_report_says_why_edv_and_esv_are_missing_with_ef_only_references():
    from keras_runet.evaluation import format_markdown, summarize

    rows = _volume_rows("m", "patient0001", 40.0, 30.0, 40.0, 32.0)
    rows += _volume_rows("m", "patient0002", 44.0, 30.0, 42.0, 30.0)
    ef_only = {p: {"EF": 40.0, "EDV": NAN, "ESV": NAN} for p in ("patient0001", "patient0002")}
    text = format_markdown(summarize(rows, references=ef_only))
    assert "EDV and ESV: n/a, the reference gives no volume" in text
    full = {p: {"EF": 40.0, "EDV": 100.0, "ESV": 60.0} for p in ("patient0001", "patient0002")}
    assert "the reference gives no volume" not in format_markdown(summarize(rows, references=full))
    assert "the reference gives no volume" not in format_markdown(summarize(rows))  # masks
