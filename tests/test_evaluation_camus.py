"""Evaluation on the synthetic CAMUS (tfds_camus.phantom), and ``runet evaluate``."""

import csv
import math

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage as ndi

from keras_runet.cli import main
from keras_runet.evaluation import (
    OutlierThresholds,
    ejection_fraction_table,
    evaluate_label_maps,
)
from tfds_camus import phantom, reader

VIEWS = ("2CH", "4CH")
INSTANTS = ("ED", "ES")


@pytest.fixture(scope="module")
def camus(tmp_path_factory):
    root = tmp_path_factory.mktemp("camus")
    return phantom.write_synthetic_camus(root, num_patients=4, layout="original", scale=0.5)


@pytest.fixture(scope="module")
def references(camus):
    return {
        (pid, view, instant): reader.load_instant(camus, pid, view, instant)
        for pid in reader.list_patients(camus, labeled_only=True)
        for view in VIEWS
        for instant in INSTANTS
    }


def _items(references, pred_fn=None):
    for (pid, view, instant), data in references.items():
        yield {
            "model": "gt",
            "patient_id": pid,
            "view": view,
            "instant": instant,
            "image_quality": data["info"]["ImageQuality"],
            "pred": data["gt"] if pred_fn is None else pred_fn(data["gt"]),
            "ref": data["gt"],
            "spacing": data["spacing"],
        }


def test_synthetic_ground_truth_has_no_anatomical_outliers(references):
    rows = evaluate_label_maps(_items(references), workers=0)
    assert len(rows) == 16
    t = OutlierThresholds()
    for row in rows:
        assert not row["ref_anatomical_outlier"], row["anatomical_reasons"]
        assert not row["anatomical_outlier"] and not row["geometric_outlier"]
        assert row["LVendo_ref_simplicity"] > t.simplicity_lvendo
        assert row["LVendo_ref_convexity"] > t.convexity_lvendo
        assert row["LVepi_ref_simplicity"] > t.simplicity_lvepi
        assert row["LVepi_ref_convexity"] > t.convexity_lvepi


def test_volumes_of_the_synthetic_masks_match_the_cfg(references):
    rows = evaluate_label_maps(_items(references), workers=0)
    cfg = {pid: data["info"] for (pid, _, _), data in references.items()}
    (group,) = ejection_fraction_table(rows, cfg)["groups"]
    assert group["n_patients"] == 4
    for p in group["patients"]:
        assert p["EDV"] == pytest.approx(p["ref_EDV"], rel=0.03)
        assert p["ESV"] == pytest.approx(p["ref_ESV"], rel=0.03)
        assert p["EF"] == pytest.approx(p["ref_EF"], abs=1.5)


def _write_predictions(references, folder, shift_rows):
    """One patient per file format; the last one as probabilities at a lower resolution."""
    folder.mkdir()
    pids = sorted({pid for pid, _, _ in references})
    for (pid, view, instant), data in references.items():
        gt = data["gt"]
        pred = ndi.shift(gt, (shift_rows, 0), order=0)
        stem = folder / f"{pid}_{view}_{instant}"
        k = pids.index(pid)
        if k == 0:
            np.save(f"{stem}.npy", pred)
        elif k == 1:
            Image.fromarray(pred).save(f"{stem}.png")
        elif k == 2:
            import SimpleITK as sitk

            img = sitk.GetImageFromArray(pred)
            img.SetSpacing(data["spacing"][::-1])
            sitk.WriteImage(img, f"{stem}.nii.gz")
        else:
            probs = np.eye(4, dtype=np.float32)[pred[::2, ::2]]
            np.savez(f"{stem}.npz", segmentation=probs, coarse=np.eye(4, dtype=np.float32)[gt])


def test_runet_evaluate_on_saved_predictions(camus, references, tmp_path, capsys):
    _write_predictions(references, tmp_path / "unet1", shift_rows=4)
    out = tmp_path / "report"
    rc = main(
        [
            "evaluate",
            "--pred",
            f"unet1={tmp_path / 'unet1'}",
            "--camus",
            str(camus),
            "--out",
            str(out),
            "--workers",
            "2",
            "--worst",
            "2",
            "--distance-method",
            "kdtree",
        ]
    )
    assert rc == 0
    printed = capsys.readouterr().out
    assert "| unet1 | segmentation | 16 |" in printed
    assert "| unet1 | coarse | 4 |" in printed
    for name in (
        "report.md",
        "report.json",
        "per_image.csv",
        "hd_distribution.png",
        "worst_cases.png",
    ):
        assert (out / name).is_file(), name
    with open(out / "per_image.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 20
    seg = [r for r in rows if r["output"] == "segmentation"]
    # A 4-row shift at 2 x 0.154 mm per row is about 1.2 mm.
    hds = [float(r["LVendo_hd_mm"]) for r in seg]
    assert all(0.5 < h < 3.0 for h in hds)
    coarse = [r for r in rows if r["output"] == "coarse"]
    assert all(float(r["LVendo_hd_mm"]) == 0.0 for r in coarse)
    assert {r["image_quality"] for r in rows} <= {"Good", "Medium", "Poor"}
    assert not math.isnan(float(seg[0]["lv_length_mm"]))


def test_runet_evaluate_usage_errors(camus, references, tmp_path, capsys):
    rc = main(["evaluate", "--pred", str(tmp_path), "--camus", str(tmp_path / "no"), "--out", "x"])
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("runet evaluate: error:") and len(err.splitlines()) == 1
    (tmp_path / "empty").mkdir()
    rc = main(["evaluate", "--pred", str(tmp_path / "empty"), "--camus", str(camus), "--out", "x"])
    assert rc == 2
    assert "no prediction files" in capsys.readouterr().err
    bad = tmp_path / "bad"
    bad.mkdir()
    pid, view, instant = next(iter(references))
    np.save(bad / f"{pid}_{view}_{instant}.npy", np.zeros((7, 7), np.uint8))
    rc = main(["evaluate", "--pred", str(bad), "--camus", str(camus), "--out", str(tmp_path / "o")])
    assert rc == 2
    assert "native grid" in capsys.readouterr().err


@pytest.mark.parametrize("damage", ["nan_probabilities", "truncated_npy", "truncated_npz"])
def test_runet_evaluate_refuses_damaged_predictions(camus, references, tmp_path, capsys, damage):
    """A NaN in the probabilities, or a file cut short, is refused with the file's name,
    never evaluated as whatever argmax makes of it."""
    pred = tmp_path / "pred"
    pred.mkdir()
    (pid, view, instant), ref = next(iter(references.items()))
    probs = np.eye(4, dtype=np.float32)[ref["gt"]]
    if damage == "nan_probabilities":
        probs[: probs.shape[0] // 3] = np.nan
        path = pred / f"{pid}_{view}_{instant}.npy"
        np.save(path, probs)
    else:
        suffix = damage.rsplit("_", 1)[1]
        path = pred / f"{pid}_{view}_{instant}.{suffix}"
        (np.save if suffix == "npy" else np.savez)(path, probs)
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    argv = ["evaluate", "--pred", str(pred), "--camus", str(camus), "--out", str(tmp_path / "o")]
    assert main([*argv, "--workers", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(path) in err
    if damage == "nan_probabilities":
        assert "non-finite" in err
    assert not (tmp_path / "o" / "report.md").exists()


def test_runet_evaluate_both_reads_the_files_twice_and_matches_each_mode(
    camus, references, tmp_path, capsys
):
    """``--postprocess both``: the raw rows in per_image.csv, the same files post-processed
    in per_image_postprocessed.csv, each equal to that mode evaluated on its own."""
    from keras_runet.evaluation import read_per_image_csv

    def with_island(gt):  # a detached LV island in the corner: the post-processing drops it
        pred = gt.copy()
        pred[2:8, 2:8] = 1
        return pred

    folder = tmp_path / "unet1"
    folder.mkdir()
    two = sorted({pid for pid, _, _ in references})[:2]  # 8 images: enough, and quick
    chosen = {key: data for key, data in references.items() if key[0] in two}
    for (pid, view, instant), data in chosen.items():
        np.save(folder / f"{pid}_{view}_{instant}.npy", with_island(data["gt"]))
    out = tmp_path / "report"
    argv = ["evaluate", "--pred", f"unet1={folder}", "--camus", str(camus), "--out", str(out),
            "--workers", "0", "--worst", "1", "--postprocess", "both"]  # fmt: skip
    assert main(argv) == 0
    assert "## Post-processed predictions" in capsys.readouterr().out
    assert (out / "worst_cases.png").is_file()
    raw = read_per_image_csv(out / "per_image.csv")
    post = read_per_image_csv(out / "per_image_postprocessed.csv")
    order = sorted(chosen)  # the command evaluates the files sorted by image
    items = [dict(it, model="unet1") for it in _items(chosen, with_island)]
    items.sort(key=lambda it: (it["patient_id"], it["view"], it["instant"]))
    assert [(r["patient_id"], r["view"], r["instant"]) for r in raw] == order
    for flag, mine in ((False, raw), (True, post)):
        alone = evaluate_label_maps(items, postprocess=flag)
        for key in ("LVendo_hd_mm", "LVendo_dice", "LVepi_convexity", "geometric_outlier"):
            assert [r[key] for r in mine] == pytest.approx([r[key] for r in alone]), key
    assert all(r["geometric_outlier"] for r in raw) and not any(
        r["geometric_outlier"] for r in post
    )
