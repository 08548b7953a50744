"""The paper's 10-fold cross-validation: train, select, predict, evaluate on the native grid.

For each model and requested fold ``k`` (the patient-level folds of the CAMUS paper,
shipped with ``tfds_camus``): train on the fold's training patients, select the best epoch
on its validation patients (``val_segmentation_dice``), predict its test patients, bring
the probabilities back to each image's native grid (resize, then argmax) and evaluate
against the native reference mask in mm (:mod:`keras_runet.evaluation`). Every output of
the model is evaluated (RU-Net's ``coarse`` and ``segmentation`` are the paper's Table III
``o1`` and ``o2``). The per-fold rows are aggregated into the Table II style report.

Run directory::

    run_dir/
      cv_config.json
      <model>/fold<k>/     the training run (see keras_runet.training) +
                           per_image.csv (this fold's rows), predictions.npz,
                           evaluation.json (what the rows were computed with),
                           per_image_postprocessed.csv (postprocess "both")
      report.md  report.json  per_image.csv  hd_distribution.png  worst_cases.png
      per_image_postprocessed.csv (postprocess "both")

For RU-Net the per-image rows also carry ``roi_fraction``, the mean of the ROI mask the
first U-Net produced for that image, and the fold's progress line its mean: near 1.0 the
first U-Net predicted no background and the attention passed the whole image (see
docs/tuning.md).

A fold whose ``per_image.csv`` exists is skipped on a rerun (its rows are read back); an
interrupted fold resumes its training from its last finished epoch. The evaluation settings
(:func:`evaluation_settings`: the ``postprocess`` mode "raw", "post" or "both", and the
outlier thresholds) are not training settings: a rerun with other ones evaluates the saved
predictions again, without training, reusing the rows of a pass it already has (raw ->
both evaluates only the post-processed pass).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from keras_runet.config import TrainConfig
from keras_runet.evaluation.outliers import OutlierThresholds
from keras_runet.evaluation.postprocess import postprocess_mode, postprocess_passes
from keras_runet.evaluation.reports import POSTPROCESSED_CSV

# Predicting and evaluating a split lives in keras_runet.split_evaluation; its names stay
# importable from here (``runet evaluate`` and the notebooks use them).
from keras_runet.split_evaluation import (  # noqa: F401
    evaluate_items,
    evaluate_model_on_split,
    example_item,
    predict_examples,
    prediction_key,
    references_from_items,
    saved_items,
)
from keras_runet.training import train
from tfds_camus import folds as _folds
from tfds_camus.atomic import atomic_path, write_json

log = logging.getLogger(__name__)


def fold_split_strings(builder, k: int) -> dict[str, str]:
    """Fold ``k``'s train / validation / test split strings, limited to prepared groups.

    :func:`tfds_camus.folds.fold_splits` gives the paper's split strings (and checks ``k``);
    this keeps only the groups that ``builder`` has prepared. The synthetic or partial
    datasets hold only some of the ten patient groups; groups that were not prepared are
    left out (with a warning). Raises ValueError when the training, validation or test
    part would be empty.
    """
    available = set(builder.info.splits.keys())
    out = {}
    for part, split in _folds.fold_splits(int(k)).items():
        groups = split.split("+")
        kept = [g for g in groups if g in available]
        if len(kept) < len(groups):
            log.warning(
                "fold %d %s: groups %s are not in the prepared dataset; using %s",
                k, part, sorted(set(groups) - set(kept)), kept or "nothing",
            )  # fmt: skip
        if not kept:
            raise ValueError(
                f"fold {k} has no {part} patients in the prepared dataset (needs "
                f"{split}; prepared: {', '.join(sorted(available))})"
            )
        out[part] = "+".join(kept)
    return out


# The paper's folds: 8 groups of 50 patients to train on, one to validate, one to test.
PAPER_FOLD_PATIENTS = {"train": 400, "validation": 50, "test": 50}
_EXAMPLES_PER_PATIENT = 4  # configs "256" and "native": 2 views x (ED, ES)


def split_patient_counts(builder) -> dict[str, int]:
    """Patients per prepared split: from the dataset's metadata (camus >= 2.0.0), else
    counted from the examples (4 per patient in the ED / ES configs)."""
    counts = (builder.info.metadata or {}).get("patients_per_split")
    if counts:
        return {str(k): int(v) for k, v in counts.items()}
    return {
        name: split.num_examples // _EXAMPLES_PER_PATIENT
        for name, split in builder.info.splits.items()
    }


def fold_protocol(builder, folds: Sequence[int]) -> dict:
    """Training / validation / test patients of each fold on this dataset, against the paper.

    Returns:
        ``{"release": ..., "folds": [{"fold", "train", "validation", "test", "as_paper"}],
        "deviations": [lines naming each fold that cannot run as the paper ran it]}``.
        On the original release every fold deviates: its 450 labelled patients lack the
        paper's patients 451..500 (46 of test group 10, 4 of group 9).
    """
    counts = split_patient_counts(builder)
    release = (builder.info.metadata or {}).get("release")
    rows, deviations = [], []
    for k in folds:
        row = {"fold": int(k)}
        for part, split in _folds.fold_splits(int(k)).items():
            row[part] = sum(counts.get(g, 0) for g in split.split("+"))
        row["as_paper"] = all(row[p] == n for p, n in PAPER_FOLD_PATIENTS.items())
        rows.append(row)
        if not row["as_paper"]:
            deviations.append(
                f"fold {k}: {row['train']} / {row['validation']} / {row['test']} training / "
                "validation / test patients, not the paper's 400 / 50 / 50"
            )
    if deviations and release == "original":
        deviations.append(
            "this is the original challenge release: its training/ has masks for patients "
            "1..450 only, while the paper's folds hold 451..500 too (46 in group 10, 4 in "
            "group 9; the 2023 release has them all). Its testing/ patients are other people "
            "under the same ids and are never used in the folds."
        )
    return {"release": release, "folds": rows, "deviations": deviations}


def run_protocol(builder, folds: Sequence[int], config: TrainConfig) -> dict:
    """:func:`fold_protocol` and the training settings against the paper, in one record.

    Returns:
        The fold protocol with ``"preset"`` (the name ``config`` started from),
        ``"fold_deviations"`` (the folds', as :func:`fold_protocol` gives them),
        ``"setting_deviations"`` (:func:`keras_runet.presets.deviations` of ``config``
        against the ``paper`` preset) and ``"deviations"``, both lists in that order: what
        ``runet cv`` prints before it starts and the report's header lists; and
        ``"software"`` (:func:`software`).
    """
    from keras_runet.presets import deviations, fields_off_the_paper

    protocol = fold_protocol(builder, folds)
    protocol["preset"] = config.preset
    protocol["fold_deviations"] = list(protocol["deviations"])
    protocol["setting_deviations"] = deviations(config, "paper")
    table3 = config.preset == "paper-table3"
    protocol["fields_off_the_paper"] = fields_off_the_paper(
        config, "paper-table3" if table3 else "paper"
    )
    protocol["deviations"] = protocol["fold_deviations"] + protocol["setting_deviations"]
    protocol["software"] = software()
    return protocol


def software() -> dict:
    """What this process trains and evaluates with: the Keras backend and the versions (the
    report's header names them, so that a JAX run and a TensorFlow run read apart)."""
    import keras

    from keras_runet.version import __version__

    return {
        "keras_backend": keras.config.backend(),
        "keras": keras.__version__,
        "keras_runet": __version__,
    }


def format_fold_protocol(protocol: Mapping) -> list[str]:
    """Lines of a table of patients per fold, the preset (when the protocol names one,
    :func:`run_protocol`), and the deviations from the paper."""
    lines = []
    if protocol.get("preset"):
        from keras_runet.presets import PRESET_DESCRIPTIONS

        about = PRESET_DESCRIPTIONS.get(protocol["preset"])
        lines.append(f"Preset: {protocol['preset']}" + (f" ({about})" if about else ""))
    lines.append("fold  train  validation  test  (the paper: 400 / 50 / 50)")
    for r in protocol["folds"]:
        mark = "" if r["as_paper"] else "  <- not as in the paper"
        lines.append(
            f"{r['fold']:>4}  {r['train']:>5}  {r['validation']:>10}  {r['test']:>4}{mark}"
        )
    if protocol["deviations"]:
        lines.append("Deviations from the paper (folds and settings):")
        lines += [f"- {d}" for d in protocol["deviations"]]
    return lines


@dataclasses.dataclass
class FoldResult:
    """One fold of one model: its primary rows (and, for postprocess "both", the
    post-processed rows of the same predictions), and what the run did with it."""

    model: str
    fold: int
    rows: list[dict]
    skipped: bool
    seconds: float
    reevaluated: bool = False
    postprocessed_rows: list[dict] | None = None


class SettingsMismatchError(ValueError):
    """A run directory holds results made with other settings than the ones asked for."""


# What per_image.csv's rows were computed with; a change re-evaluates the saved predictions.
_EVALUATION_FILE = "evaluation.json"


def evaluation_settings(postprocess="raw", thresholds=None) -> dict:
    """What a fold's rows are computed with, as ``evaluation.json`` records it.

    Args:
        postprocess: "raw", "post", "both" or the bool of earlier versions
            (:func:`~keras_runet.evaluation.postprocess.postprocess_mode`).
        thresholds: :class:`~keras_runet.evaluation.OutlierThresholds`, its dict, or None
            (the paper's Table I).

    Returns:
        ``{"postprocess": mode, "thresholds": dict or None}``: None when the thresholds
        are Table I's, so that giving the defaults explicitly changes nothing.

    Raises:
        ValueError: a bad mode or thresholds dict (the message names it).
    """
    mode = postprocess_mode(postprocess)
    if isinstance(thresholds, Mapping):
        thresholds = OutlierThresholds.from_dict(thresholds)
    if thresholds is not None and not isinstance(thresholds, OutlierThresholds):
        raise ValueError(f"thresholds must be OutlierThresholds or a dict, got {thresholds!r}")
    if thresholds is None or thresholds == OutlierThresholds():
        return {"postprocess": mode, "thresholds": None}
    return {"postprocess": mode, "thresholds": thresholds.to_dict()}


def _recorded_settings(record: Mapping | None) -> dict | None:
    """The :func:`evaluation_settings` of an ``evaluation.json`` / ``cv_config.json`` record
    (a bool ``postprocess`` and no ``thresholds`` in earlier versions); None for a record
    that is not a settings record (an evaluation interrupted while it rewrote the rows)."""
    if record is None or "postprocess" not in record:
        return None
    try:
        return evaluation_settings(record["postprocess"], record.get("thresholds"))
    except ValueError:
        return None


def _reusable_rows(fold_dir: Path, rows: list[dict], done: dict | None, asked: dict) -> dict:
    """``{postprocess flag: rows}`` of a finished fold that the evaluation ``asked`` can
    reuse: those evaluated under the same thresholds (``done``: the fold's settings)."""
    if done is None or done["thresholds"] != asked["thresholds"]:
        return {}
    from keras_runet.evaluation import read_per_image_csv

    flags = postprocess_passes(done["postprocess"])
    saved = {flags[0]: rows}
    if len(flags) > 1 and (fold_dir / POSTPROCESSED_CSV).exists():
        saved[flags[1]] = read_per_image_csv(fold_dir / POSTPROCESSED_CSV)
    # The rows say themselves whether they are post-processed: a guard against a mix-up.
    return {
        flag: r for flag, r in saved.items() if all(bool(x["postprocessed"]) == flag for x in r)
    }


def run_fold(
    builder,
    model_name: str,
    fold: int,
    run_dir: str | os.PathLike,
    config: TrainConfig,
    *,
    workers: int = 0,
    postprocess="raw",
    thresholds: OutlierThresholds | None = None,
    verbose: int | str = 0,
    keep_predictions: bool = True,
    callbacks: list | None = None,
    evaluated_with: dict | None = None,
) -> FoldResult:
    """Train, predict and evaluate one model on one fold.

    A finished fold (its ``per_image.csv``) is skipped, or, if its rows were computed with
    other evaluation settings (:func:`evaluation_settings`: ``postprocess``, ``thresholds``;
    ``evaluated_with`` gives the run's previous settings for folds that predate
    ``evaluation.json``), evaluated again from its saved predictions, without training;
    the rows of a pass evaluated before under the same thresholds are reused.

    Args:
        builder, model_name, fold, run_dir, config: the dataset, the model, the fold, the
            run directory and the training configuration.
        workers: evaluation worker processes.
        postprocess: "raw", "post" or "both" (a bool reads as "raw" / "post"); with
            "both" the fold also writes ``per_image_postprocessed.csv``.
        thresholds: the outlier thresholds of the rows (default: Table I).
        verbose, callbacks: of the training.
        keep_predictions: save ``predictions.npz`` (needed to evaluate again).
        evaluated_with: see above.

    Returns:
        A :class:`FoldResult` (its ``postprocessed_rows`` for "both").
    """
    import keras

    from keras_runet.evaluation import read_per_image_csv, write_per_image_csv

    start = time.perf_counter()
    fold_dir = Path(run_dir) / model_name / f"fold{fold}"
    rows_path = fold_dir / "per_image.csv"
    post_path = fold_dir / POSTPROCESSED_CSV
    eval_path = fold_dir / _EVALUATION_FILE
    settings = evaluation_settings(postprocess, thresholds)
    passes = postprocess_passes(settings["postprocess"])
    thresholds = thresholds or OutlierThresholds()

    def write_rows(by_flag: dict) -> tuple[list, list | None]:
        # Until every file is written, evaluation.json is no settings record: an evaluation
        # interrupted here is done again in full, never mistaken for finished rows.
        write_json(eval_path, {"incomplete": settings})
        post = by_flag[True] if len(passes) > 1 else None
        if post is not None:
            write_per_image_csv(post, post_path)
        else:
            post_path.unlink(missing_ok=True)
        write_per_image_csv(by_flag[passes[0]], rows_path)
        write_json(eval_path, settings)
        return by_flag[passes[0]], post

    if rows_path.exists():
        rows = read_per_image_csv(rows_path)
        record = json.loads(eval_path.read_text()) if eval_path.exists() else evaluated_with
        # No record at all (a fold of an early version run alone): taken as asked.
        done = settings if record is None else _recorded_settings(record)
        saved = _reusable_rows(fold_dir, rows, done, settings)
        needed = [flag for flag in passes if flag not in saved]
        if done == settings and not needed:
            post = saved[True] if len(passes) > 1 else None
            return FoldResult(
                model_name, fold, saved[passes[0]], True, 0.0, postprocessed_rows=post
            )
        log.info("%s: evaluating the saved predictions again (%s -> %s)", fold_dir, done, settings)
        if needed:
            test = fold_split_strings(builder, fold)["test"]
            items = saved_items(builder, test, fold_dir, rows)
            for flag in needed:
                saved[flag] = evaluate_items(items, workers, flag, thresholds=thresholds)
        rows, post = write_rows(saved)
        seconds = time.perf_counter() - start
        return FoldResult(model_name, fold, rows, False, seconds, True, postprocessed_rows=post)
    splits = fold_split_strings(builder, fold)
    config = dataclasses.replace(config, model=model_name)
    result = train(
        config,
        builder.as_dataset(split=splits["train"]),
        builder.as_dataset(split=splits["validation"]),
        fold_dir,
        verbose=verbose,
        callbacks=callbacks,
    )
    model = keras.saving.load_model(result.best_path)
    predictions = predict_examples(
        model,
        builder.as_dataset(split=splits["test"], shuffle_files=False),
        image_size=config.image_size,
        batch_size=config.batch_size,
    )
    items = [dict(it, model=model_name, fold=fold) for out in predictions.values() for it in out]
    by_flag = {flag: evaluate_items(items, workers, flag, thresholds=thresholds) for flag in passes}
    if keep_predictions:
        arrays = {prediction_key(it): it["pred"] for it in items}
        with atomic_path(fold_dir / "predictions.npz", suffix=".npz") as tmp:
            np.savez_compressed(tmp, **arrays)
    refs = references_from_items(items)
    write_json(fold_dir / "references.json", refs)
    rows, post = write_rows(by_flag)  # per_image.csv last: it marks the fold as done
    seconds = time.perf_counter() - start
    return FoldResult(model_name, fold, rows, False, seconds, postprocessed_rows=post)


def _fold_line(res: FoldResult) -> str:
    seg = [r for r in res.rows if r.get("output") == "segmentation"]
    dice = np.nanmean([r["LVendo_dice"] for r in seg]) if seg else math.nan
    hd = np.nanmean([r["LVendo_hd_mm"] for r in seg]) if seg else math.nan
    geo = sum(bool(r["geometric_outlier"]) for r in seg)
    ana = sum(bool(r["anatomical_outlier"]) for r in seg)
    state = "done earlier, skipped" if res.skipped else f"{res.seconds:.0f} s"
    if res.reevaluated:
        state = f"saved predictions evaluated again, {res.seconds:.0f} s"
    roi = [r["roi_fraction"] for r in seg if r.get("roi_fraction") is not None]
    roi_text = f", ROI mask mean {np.mean(roi):.2f}" if roi else ""
    return (
        f"[{res.model} fold {res.fold}] {len(seg)} test images: LVendo Dice {dice:.3f}, "
        f"HD {hd:.1f} mm, outliers geo {geo} ana {ana}{roi_text} ({state})"
    )


def cross_validate(
    builder,
    models: Sequence[str],
    folds: Sequence[int],
    run_dir: str | os.PathLike,
    config: TrainConfig,
    *,
    workers: int = 0,
    postprocess="raw",
    thresholds: OutlierThresholds | None = None,
    verbose: int | str = 0,
    progress: Callable[[str], None] | None = None,
    figures: bool = True,
    force: bool = False,
) -> dict:
    """Cross-validate ``models`` on ``folds``; write the aggregated report in ``run_dir``.

    A rerun in the same ``run_dir`` reuses its finished folds only if they were trained with
    the same settings and dataset (else :class:`SettingsMismatchError` names the differing
    settings; ``force`` starts over); a change of ``postprocess`` or ``thresholds`` only
    evaluates the saved predictions again. More folds or models than before extend the run.

    Args:
        builder: a prepared TFDS camus builder (any config with ED/ES images).
        models: model names ("unet1", "shg", "runet").
        folds: fold numbers within 1..10.
        run_dir: the run directory (see the module docstring).
        config: the training configuration shared by the models (its ``model`` is
            replaced by each model name).
        workers: evaluation worker processes.
        postprocess: "raw" (default), "post" (evaluate post-processed predictions: largest
            component + holes) or "both" (the raw rows in every table, the same predictions
            post-processed in ``per_image_postprocessed.csv`` and the report's
            "Post-processed predictions"); a bool reads as "raw" / "post".
        thresholds: the outlier thresholds of the rows and the report (default: Table I).
        verbose: Keras verbosity while training.
        progress: called with one line per fold (e.g. ``print``).
        figures: draw the HD distribution and worst-case figures.
        force: discard what ``run_dir`` holds from earlier runs and train again.

    Raises:
        SettingsMismatchError: ``run_dir`` holds folds trained with other settings.

    Returns:
        ``{"rows": [...], "postprocessed_rows": [...] or None, "paths": {...},
        "summary": {...}}`` (the rows of every fold; post-processed for "both").
    """
    from keras_runet.evaluation import summarize, write_report

    evaluation = evaluation_settings(postprocess, thresholds)
    mode = evaluation["postprocess"]
    thresholds = thresholds or OutlierThresholds()

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    protocol = run_protocol(builder, folds, config)
    for line in protocol["fold_deviations"]:
        log.warning("%s", line)
    settings = {
        "models": list(models),
        "folds": [int(k) for k in folds],
        "train": config.to_json(),
        **evaluation,
        "dataset": f"{builder.info.full_name}",
        "dataset_fingerprint": dict(builder.info.metadata or {})
        .get("source", {})
        .get("fingerprint"),
        "protocol": protocol,
    }
    previous = _previous_settings(run_dir, settings, force)
    write_json(run_dir / "cv_config.json", settings)
    rows, post_rows, refs = [], [], {}
    for model_name in models:
        for k in folds:
            res = run_fold(
                builder,
                model_name,
                int(k),
                run_dir,
                config,
                workers=workers,
                postprocess=mode,
                thresholds=thresholds,
                verbose=verbose,
                evaluated_with=previous,
            )
            ref_path = run_dir / model_name / f"fold{k}" / "references.json"
            if ref_path.exists():
                refs.update(json.loads(ref_path.read_text()))
            rows.extend(res.rows)
            post_rows.extend(res.postprocessed_rows or [])
            if progress:
                progress(_fold_line(res))
    post_rows = post_rows if mode == "both" else None
    summary = summarize(rows, thresholds, references=refs or None)
    summary["protocol"] = protocol
    summary["params"] = model_params(models, config)
    paths = write_report(
        rows,
        run_dir,
        thresholds=thresholds,
        references=refs or None,
        summary=summary,
        figures=figures,
        postprocessed_rows=post_rows,
    )
    if figures:
        worst = _worst_case_figure(builder, rows, run_dir, postprocess=mode == "post")
        if worst:
            paths["worst_figure"] = worst
    return {"rows": rows, "postprocessed_rows": post_rows, "paths": paths, "summary": summary}


def model_params(models: Sequence[str], config: TrainConfig) -> dict[str, int]:
    """The parameter count of each model as ``config`` builds it (Table II's Params)."""
    from keras_runet.models import build_model

    counts = {}
    for name in models:
        counts[name] = int(build_model(name, **config.build_kwargs()).count_params())
    return counts


def _previous_settings(run_dir: Path, settings: dict, force: bool) -> dict | None:
    """Checks ``run_dir``'s earlier ``cv_config.json`` against ``settings``.

    Returns:
        The evaluation settings its folds were evaluated with, as the file holds them
        (``postprocess``, a bool in earlier versions, and ``thresholds`` when recorded;
        read by :func:`_recorded_settings`), or None: a new run.

    Raises:
        SettingsMismatchError: the training settings or the dataset differ (unless
            ``force``, which removes the earlier folds).
    """
    import shutil

    path = run_dir / "cv_config.json"
    if not path.exists():
        return None
    old = json.loads(path.read_text())
    diffs = []
    for key in ("dataset", "dataset_fingerprint"):
        if key in old and old[key] != settings[key]:
            diffs.append(f"{key} {old[key]} -> {settings[key]}")
    # Through TrainConfig: a field added since (at its default, the old behaviour) is no
    # difference.
    old_train = TrainConfig.from_json(old["train"]).to_json() if "train" in old else {}
    new_train = settings["train"]
    for key in sorted((set(old_train) | set(new_train)) - {"model"}):
        if old_train.get(key) != new_train.get(key):
            diffs.append(f"{key} {old_train.get(key)!r} -> {new_train.get(key)!r}")
    if not diffs:
        recorded = {"postprocess": old.get("postprocess", False)}
        if "thresholds" in old:
            recorded["thresholds"] = old["thresholds"]
        return recorded
    if not force:
        raise SettingsMismatchError(
            f"{run_dir} holds a cross-validation trained with other settings "
            f"({'; '.join(diffs)}); its finished folds would be mixed with new ones under "
            "the new settings. Use another --out, or --force to discard them and train again."
        )
    for model_name in set(old.get("models", [])) | set(settings["models"]):
        shutil.rmtree(run_dir / model_name, ignore_errors=True)
    log.warning("%s: earlier folds removed (--force): %s", run_dir, "; ".join(diffs))
    return None


def _worst_case_figure(builder, rows, run_dir, *, postprocess: bool = False, k: int = 6):
    """Overlays of the worst final segmentations (largest LV HD), from saved predictions
    (post-processed as the rows were, when ``postprocess``)."""
    from keras_runet.evaluation.figures import case_title, plot_worst_cases, worst_indices
    from keras_runet.evaluation.postprocess import postprocess_label_map

    seg_rows = [r for r in rows if r.get("output") == "segmentation"]
    if not seg_rows:
        return None
    cases = []
    wanted = [seg_rows[i] for i in worst_indices(seg_rows, k)]
    images = _native_images(builder, {(r["patient_id"], r["view"], r["instant"]) for r in wanted})
    for r in wanted:
        npz = Path(run_dir) / r["model"] / f"fold{int(r['fold'])}" / "predictions.npz"
        if not npz.exists():
            continue
        key = (r["patient_id"], r["view"], r["instant"])
        with np.load(npz) as preds:
            pred = preds[f"segmentation/{r['patient_id']}_{r['view']}_{r['instant']}"]
        if postprocess:
            pred = postprocess_label_map(pred)
        ref, image, spacing = images.get(key, (None, None, None))
        if ref is None:
            continue
        cases.append(
            {"pred": pred, "ref": ref, "image": image, "spacing": spacing, "title": case_title(r)}
        )
    if not cases:
        return None
    return plot_worst_cases(cases, Path(run_dir) / "worst_cases.png")


def _native_images(builder, keys):
    """``{(patient, view, instant): (native ref mask, image on the native grid, spacing)}``."""
    from skimage.transform import resize

    out = {}
    splits = [s for s in builder.info.splits.keys() if s.startswith("group")]
    for split in splits:
        for ex in builder.as_dataset(split=split).as_numpy_iterator():
            item = example_item(ex)
            key = (item["patient_id"], item["view"], item["instant"])
            if key in keys:
                ref = ex["native_mask"][..., 0]
                image = resize(ex["image"][..., 0] / 255.0, ref.shape, order=1)
                out[key] = (ref, image, tuple(float(s) for s in ex["spacing"]))
        if len(out) == len(keys):
            break
    return out
