"""`runet cv`, `runet demo --quick` and `runet evaluate` end to end on a tiny synthetic CAMUS
(the `camus_tiny` fixture of conftest.py)."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_runet import cli


def test_runet_cv_writes_the_report_and_skips_finished_folds(camus_tiny, tmp_path, capsys):
    out = tmp_path / "cv"
    argv = [
        "cv", "--data-dir", str(camus_tiny["data_dir"]), "--models", "unet1,runet",
        "--folds", "1,2", "--out", str(out), "--epochs", "2", "--width", "0.125",
        "--image-size", "32x32", "--patience", "0", "--workers", "0",
    ]  # fmt: skip
    assert cli.main(argv) == 0
    printed = capsys.readouterr().out
    for model in ("unet1", "runet"):
        for k in (1, 2):
            assert f"[{model} fold {k}] 8 test images" in printed
    for name in ("report.md", "report.json", "per_image.csv", "hd_distribution.png"):
        assert (out / name).exists(), name
    from keras_runet.evaluation import read_per_image_csv

    rows = read_per_image_csv(out / "per_image.csv")
    # 2 folds x 8 test images x (unet1: 1 output + runet: 2 outputs)
    assert len(rows) == 2 * 8 * 3
    patients = {r["patient_id"] for r in rows if str(r["fold"]) == "1"}
    assert patients == set(camus_tiny["ids"][:2])  # fold 1 tests group 1's patients
    for r in rows:
        assert 0.0 <= r["LVepi_dice"] <= 1.0
        assert r["spacing_row_mm"] > 0 and r["height"] > 100  # native grid, not 32 x 32
        assert np.isnan(r["LVepi_hd_mm"]) or r["LVepi_hd_mm"] >= 0
        assert r["ref_anatomical_outlier"] in (False, 0)  # the phantom's truth is plausible
    summary = json.loads((out / "report.json").read_text())
    assert {(g["model"], g["output"]) for g in summary["groups"]} == {
        ("unet1", "segmentation"), ("runet", "coarse"), ("runet", "segmentation"),
    }  # fmt: skip
    report = (out / "report.md").read_text()
    assert "LVendo HD" in report
    # the patients per fold, before the run and in the report (2 per group prepared here)
    assert "Patients per fold" in printed
    assert "   1      4           2     2  <- not as in the paper" in printed
    assert "| 1 | 4 | 2 | 2 | **no** |" in report and "Deviations from the paper" in report
    assert summary["protocol"]["folds"][1] == {
        "fold": 2, "train": 4, "validation": 2, "test": 2, "as_paper": False,
    }  # fmt: skip
    # RU-Net's rows carry the mean of their ROI mask, in [sig(-1), 1] with the paper's slope
    # and second shift; fold 1's mean (from the prediction pass itself) agrees with the mask
    # computed apart, on the training pipeline's own batches.
    roi_floor = 1.0 / (1.0 + np.exp(1.0))
    for r in rows:
        if r["model"] == "runet":
            assert roi_floor - 1e-6 <= r["roi_fraction"] <= 1.0 + 1e-6
        else:
            assert r.get("roi_fraction") is None
    assert "ROI mask mean" in printed

    from keras_runet.data import make_dataset
    from keras_runet.models import roi_mask_means

    fold1 = [
        r["roi_fraction"]
        for r in rows
        if r["model"] == "runet" and r["output"] == "segmentation" and str(r["fold"]) == "1"
    ]
    best = keras.saving.load_model(out / "runet" / "fold1" / "best.keras")
    test_split = camus_tiny["builder"].as_dataset(split="group1", shuffle_files=False)
    batches = make_dataset(test_split, ["coarse"], image_size=(32, 32), cache=False)
    expected = np.mean([
        m for images, _ in batches
        for m in roi_mask_means(best, images, best.predict_on_batch(images)["coarse"])
    ])  # fmt: skip
    assert np.mean(fold1) == pytest.approx(expected, abs=1e-4)
    # A rerun skips the finished folds.
    assert cli.main(argv) == 0
    assert printed.count("skipped") == 0
    assert capsys.readouterr().out.count("done earlier, skipped") == 4
    # Other training settings: refused, naming them, instead of mixing the results.
    best = out / "unet1" / "fold1" / "best.keras"
    trained_at = best.stat().st_mtime_ns
    assert cli.main([a if a != "2" else "3" for a in argv]) == 2  # --epochs 2 -> 3
    err = capsys.readouterr().err
    assert "other settings (epochs 2 -> 3)" in err and "--force" in err
    config = json.loads((out / "cv_config.json").read_text())
    assert config["train"]["epochs"] == 2 and config["postprocess"] == "raw"  # not rewritten
    assert config["thresholds"] is None  # Table I
    # Post-processing only changes the evaluation: the saved predictions are evaluated again.
    # (A bare --postprocess keeps its old meaning: the post-processed rows only.)
    training_files = {
        f: f.stat().st_mtime_ns
        for f in out.glob("*/fold*/*")
        if f.name in ("best.keras", "last.keras", "state.json", "history.csv")
    }
    assert len(training_files) == 4 * 4

    def not_retrained():
        return all(f.stat().st_mtime_ns == t for f, t in training_files.items())

    assert cli.main([*argv, "--postprocess"]) == 0
    assert capsys.readouterr().out.count("saved predictions evaluated again") == 4
    assert best.stat().st_mtime_ns == trained_at and not_retrained()
    again = read_per_image_csv(out / "per_image.csv")
    assert len(again) == len(rows) and all(r["postprocessed"] for r in again)
    assert json.loads((out / "cv_config.json").read_text())["postprocess"] == "post"
    # Both: the raw rows again as the primary ones (equal to the first evaluation, now from
    # predictions.npz), the post-processed ones beside them, in every fold and the report.
    assert cli.main([*argv, "--postprocess", "both"]) == 0
    printed = capsys.readouterr().out
    assert printed.count("saved predictions evaluated again") == 4 and not_retrained()
    assert "## Post-processed predictions" in printed
    both = read_per_image_csv(out / "per_image.csv")
    post = read_per_image_csv(out / "per_image_postprocessed.csv")
    assert [r["LVendo_hd_mm"] for r in both] == pytest.approx(
        [r["LVendo_hd_mm"] for r in rows], nan_ok=True
    )
    assert [r["LVendo_dice"] for r in post] == [r["LVendo_dice"] for r in again]
    assert not any(r["postprocessed"] for r in both) and all(r["postprocessed"] for r in post)
    for fold_dir in out.glob("*/fold*"):
        assert json.loads((fold_dir / "evaluation.json").read_text()) == {
            "postprocess": "both", "thresholds": None,
        }  # fmt: skip
        assert (fold_dir / "per_image_postprocessed.csv").exists()
    summary = json.loads((out / "report.json").read_text())
    assert summary["postprocess"] == "both" and len(summary["postprocessing_effect"]) == 3
    # Other thresholds: evaluated again (not retrained), recorded, and named in the report.
    strict = tmp_path / "strict.json"
    strict.write_text(json.dumps({"hd_mm_ed": 1.0, "hd_mm_es": 1.0}))
    assert cli.main([*argv, "--postprocess", "both", "--thresholds", str(strict)]) == 0
    printed = capsys.readouterr().out
    assert printed.count("saved predictions evaluated again") == 4 and not_retrained()
    assert "not the paper's Table I: hd_mm_ed 1.0 (Table I: 8.2)" in printed
    strict_rows = read_per_image_csv(out / "per_image.csv")
    expected = [r["LVendo_hd_mm"] > 1.0 or r["LVepi_hd_mm"] > 1.0 for r in strict_rows]
    assert [r["geometric_outlier"] for r in strict_rows] == [
        e or r["geometric_outlier"] for e, r in zip(expected, both, strict=True)
    ]
    fold = json.loads((out / "unet1" / "fold1" / "evaluation.json").read_text())
    assert fold["postprocess"] == "both" and fold["thresholds"]["hd_mm_ed"] == 1.0
    assert json.loads((out / "report.json").read_text())["thresholds"]["hd_mm_es"] == 1.0
    # The same settings once more (the recorded thresholds read back equal): nothing to do.
    from keras_runet.config import TrainConfig
    from keras_runet.cross_validation import run_fold
    from keras_runet.prediction_files import read_thresholds

    config = TrainConfig.from_json(json.loads((out / "cv_config.json").read_text())["train"])
    for model, k in (("unet1", 1), ("runet", 2)):
        res = run_fold(camus_tiny["builder"], model, k, out, config, postprocess="both",
                       thresholds=read_thresholds(strict))  # fmt: skip
        assert res.skipped and len(res.postprocessed_rows) == len(res.rows) > 0


@pytest.mark.parametrize(
    "argv,message",
    [
        (["train", "--data-dir", "/no/such/dir", "--out", "x"], "not prepared in /no/such/dir"),
        (["train", "--data-dir", "D", "--out", "x", "--model", "vnet"], "unknown model vnet"),
        (["cv", "--data-dir", "D", "--out", "x", "--folds", "12"], "folds are numbered 1 to 10"),
        (["prepare", "--manual-dir", "/no/such/camus", "--data-dir", "x"], "does not exist"),
        (["train", "--data-dir", "D", "--out", "x", "--image-size", "100"], "multiples of 32"),
        (["train", "--data-dir", "D", "--out", "x", "--lr", "-1"], "--lr must be a positive"),
        (["train", "--data-dir", "D", "--out", "x", "--lr", "nan"], "--lr must be a positive"),
        (["train", "--data-dir", "D", "--out", "x", "--width", "0"], "--width must be a pos"),
        (["cv", "--data-dir", "D", "--out", "x", "--shift", "1.5"], "--shift must be within"),
        (["train", "--data-dir", "D", "--out", "x", "--shift", "0"], "--shift must be within"),
        (
            ["cv", "--data-dir", "D", "--out", "x", "--thresholds", "/no/t.json"],
            "--thresholds /no/t",
        ),
    ],
)
def test_user_mistakes_exit_2_with_one_line(argv, message, camus_tiny, capsys):
    argv = [str(camus_tiny["data_dir"]) if a == "D" else a for a in argv]
    with pytest.raises(SystemExit) if "--image-size" in argv else _nullcontext():
        code = cli.main(argv)
        assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err and message in err[-1]
    assert not any("Traceback" in line for line in err)


class _nullcontext:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@pytest.mark.parametrize("command", ["cv", "evaluate"])
def test_postprocess_takes_a_mode_and_alone_keeps_its_old_meaning(command):
    from keras_runet.cli import build_parser

    parser = build_parser([command])
    base = [command, "--out", "x"] + (["--data-dir", "D"] if command == "cv" else [])
    assert parser.parse_args(base).postprocess == "raw"
    assert parser.parse_args([*base, "--postprocess"]).postprocess == "post"
    assert parser.parse_args([*base, "--postprocess", "--workers", "0"]).postprocess == "post"
    assert parser.parse_args([*base, "--postprocess", "both"]).postprocess == "both"
    with pytest.raises(SystemExit):
        parser.parse_args([*base, "--postprocess", "yes"])


def test_cli_error_in_a_fresh_process_has_no_traceback(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "keras_runet.cli", "cv", "--data-dir", str(tmp_path / "none"),
         "--out", str(tmp_path / "o"), "--models", "unet1,vnet"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("runet cv: error: unknown model vnet")


def test_demo_quick_leaves_the_promised_artefacts(tmp_path, capsys):
    out = tmp_path / "demo"
    assert cli.main(["demo", "--quick", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Geometric performance and outliers" in printed
    for rel in ("cv/report.md", "cv/report.json", "cv/per_image.csv", "cv/worst_cases.png",
                "cv/training_curves.png", "export/runet/1/saved_model.pb"):  # fmt: skip
        assert (out / rel).exists(), rel
    summary = json.loads((out / "cv" / "report.json").read_text())
    assert summary["n_images"] == 3 * 4  # 1 test patient x 4 images x 3 outputs
    assert os.path.getsize(out / "cv" / "worst_cases.png") > 10_000


def test_runet_evaluate_a_model_on_a_dataset_split(camus_tiny, tmp_path, capsys):
    from keras_runet.evaluation import read_per_image_csv
    from keras_runet.models import build_runet

    model_path = tmp_path / "runet.keras"
    build_runet(input_shape=(64, 64, 1), width=0.25).save(model_path)
    out = tmp_path / "eval"
    argv = ["evaluate", "--model-file", str(model_path), "--data-dir",
            str(camus_tiny["data_dir"]), "--fold", "2", "--out", str(out), "--workers", "0"]  # fmt: skip
    assert cli.main(argv) == 0
    assert "Geometric performance and outliers" in capsys.readouterr().out
    rows = read_per_image_csv(out / "per_image.csv")
    assert len(rows) == 8 * 2  # group 2: 8 images, two outputs
    assert {r["patient_id"] for r in rows} == set(camus_tiny["ids"][2:4])
    assert {r["output"] for r in rows} == {"coarse", "segmentation"}
    assert all(r["model"] == "runet" and r["height"] > 100 for r in rows)
    assert (out / "worst_cases.png").exists()
    # Each row carries the mean of RU-Net's ROI mask from the prediction pass: their mean
    # over the split is the one a second, separate pass measures.
    from keras_runet.split_evaluation import roi_fraction

    model = keras.saving.load_model(model_path)
    split = camus_tiny["builder"].as_dataset(split="group2", shuffle_files=False)
    seg = [r["roi_fraction"] for r in rows if r["output"] == "segmentation"]
    assert len(seg) == 8 and all(0.0 <= f <= 1.0 for f in seg)
    assert np.mean(seg) == pytest.approx(roi_fraction(model, split, image_size=(64, 64)), abs=1e-5)
    # Mixing the two modes, or a missing model file, is a one-line usage error.
    assert cli.main([*argv[:-4], "--out", str(out), "--camus", "x"]) == 2
    assert cli.main(["evaluate", "--model-file", str(tmp_path / "none.keras"), "--data-dir",
                     str(camus_tiny["data_dir"]), "--fold", "1", "--out", str(out)]) == 2  # fmt: skip
    assert "no such file" in capsys.readouterr().err
