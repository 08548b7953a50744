"""A study's results: the table of trials, the objective's figure, the best trial, retraining it."""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import math
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import keras
import keras_tuner

from keras_runet.config import TrainConfig
from keras_runet.training import train
from keras_runet.tuning.space import HP_NAMES, SearchSpace, train_config_for
from keras_runet.tuning.tuner import METRICS
from tfds_camus.atomic import atomic_path, write_json

log = logging.getLogger(__name__)


@dataclasses.dataclass
class StudyResult:
    """What :func:`run_search` returns.

    Attributes:
        study_dir: the study directory.
        role: ``"single"``, ``"chief"`` or ``"worker"``.
        rows: :func:`trial_rows` (empty on a worker, which does not hold the oracle).
        best: the best row, or None (no completed trial, or on a worker).
        paths: the written files (``results_csv``, ``figure``, ``best_json``).
        trials_run: trials this process ran (0 on the chief).
    """

    study_dir: Path
    role: str
    rows: list[dict]
    best: dict | None
    paths: dict[str, Path]
    trials_run: int


def _hp_value(trial, name):
    return trial.hyperparameters.values.get(name)


def trial_rows(oracle: keras_tuner.Oracle) -> list[dict]:
    """One row per trial of ``oracle``: id, status, hyper-parameters, metrics, score.

    Columns: ``trial_id``, ``status``, ``dil``, ``shift``, ``learning_rate``,
    ``coarse_loss_weight``, ``epochs`` (Hyperband's budget), every metric of
    :data:`METRICS` (NaN when the trial reported none), ``score`` (the objective's value)
    and ``is_best`` (the COMPLETED trial with the best score, the earliest of ties; none
    if no trial completed).
    """
    # Not oracle.get_best_trials: it also ranks trials that did not complete, and orders
    # ties by however the trials were loaded. Here: the best score, the earliest trial.
    scored = [
        (float(t.score), trial_id)
        for trial_id, t in sorted(oracle.trials.items())
        if str(t.status) == "COMPLETED" and t.score is not None and not math.isnan(t.score)
    ]
    best_id = None
    if scored:
        pick = max if oracle.objective.direction == "max" else min
        best_score = pick(score for score, _ in scored)
        best_id = next(trial_id for score, trial_id in scored if score == best_score)
    rows = []
    for trial_id in sorted(oracle.trials):
        trial = oracle.trials[trial_id]
        row = {"trial_id": trial_id, "status": str(trial.status)}
        for name in HP_NAMES:
            row[name] = _hp_value(trial, name)
        row["epochs"] = _hp_value(trial, "tuner/epochs")
        for name in METRICS:
            value = trial.metrics.get_last_value(name) if trial.metrics.exists(name) else None
            row[name] = math.nan if value is None else float(value)
        row["score"] = math.nan if trial.score is None else float(trial.score)
        row["is_best"] = trial_id == best_id
        rows.append(row)
    return rows


def write_results_csv(rows: Sequence[dict], path: str | os.PathLike) -> Path:
    """Write :func:`trial_rows` as a CSV, atomically (empty cells for absent values)."""
    path = Path(path)
    fields = list(rows[0]) if rows else ["trial_id", "status", "dil", "shift"]
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(fields)
        for row in rows:
            writer.writerow(["" if row.get(k) is None else row.get(k) for k in fields])
    return path


def read_results_csv(path: str | os.PathLike) -> list[dict]:
    """Rows of ``results.csv`` as strings (``trial_id``, ``status``, ...)."""
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def plot_objective(
    rows: Sequence[dict],
    path: str | os.PathLike,
    *,
    objective: str = "val_outlier_rate",
    direction: str = "min",
    space: SearchSpace | None = None,
) -> Path:
    """Scatter of the objective over (dil, shift); the best trial is starred.

    Args:
        rows: :func:`trial_rows`.
        path: the PNG to write (atomically).
        objective: the metric coloured.
        direction: ``"min"`` or ``"max"`` (which end is best).
        space: when given, the axes span its ranges (the whole searched space).

    Returns:
        The path.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = Path(path)
    ok = [r for r in rows if r["status"] == "COMPLETED" and not math.isnan(r[objective])]
    failed = [r for r in rows if r["status"] != "COMPLETED"]
    fig = Figure(figsize=(6.4, 4.8), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    if ok:
        cmap = "viridis_r" if direction == "min" else "viridis"
        sc = ax.scatter(
            [r["dil"] for r in ok],
            [r["shift"] for r in ok],
            c=[r[objective] for r in ok],
            cmap=cmap,
            s=70,
            edgecolors="k",
            linewidths=0.5,
        )
        fig.colorbar(sc, ax=ax, label=f"{objective} ({direction}imise)")
        pick = min if direction == "min" else max
        flagged = [r for r in ok if r.get("is_best")]
        best = flagged[0] if flagged else pick(ok, key=lambda r: r[objective])
        ax.scatter(
            [best["dil"]], [best["shift"]], marker="*", s=400, facecolors="none",
            edgecolors="red", linewidths=1.5,
            label=f"best: trial {best['trial_id']} ({best[objective]:.3f})",
        )  # fmt: skip
        for r in ok:
            ax.annotate(
                r["trial_id"], (r["dil"], r["shift"]), textcoords="offset points",
                xytext=(5, 5), fontsize=7,
            )  # fmt: skip
    if failed:
        ax.scatter(
            [r["dil"] for r in failed if r["dil"] is not None],
            [r["shift"] for r in failed if r["shift"] is not None],
            marker="x", color="grey", label="not completed",
        )  # fmt: skip
    if space is not None:
        dils = space.dil_values or space.dil_range
        shifts = space.shift_values or space.shift_range
        pad_d, pad_s = max(1.0, 0.04 * (max(dils) - min(dils))), 0.04
        ax.set_xlim(min(dils) - pad_d, max(dils) + pad_d)
        ax.set_ylim(min(shifts) - pad_s, max(shifts) + pad_s)
    ax.set_xlabel("dil (dilation box side, pixels)")
    ax.set_ylabel("shift (first binarisation)")
    ax.set_title(f"RU-Net search: {len(ok)} completed trial(s) of {len(rows)}")
    ax.grid(alpha=0.3)
    if ok or failed:
        ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=fig.dpi)
    return path


def write_study_results(
    study_dir: str | os.PathLike,
    oracle: keras_tuner.Oracle,
    *,
    role: str = "single",
    figure: bool = True,
    space: SearchSpace | None = None,
) -> StudyResult:
    """Write ``results.csv``, ``best.json`` and ``objective.png`` from ``oracle``.

    Returns:
        A :class:`StudyResult` (``trials_run`` 0).
    """
    study_dir = Path(study_dir)
    rows = trial_rows(oracle)
    paths = {"results_csv": write_results_csv(rows, study_dir / "results.csv")}
    best = next((r for r in rows if r["is_best"]), None)
    objective = oracle.objective
    write_json(
        study_dir / "best.json",
        {"objective": objective.name, "direction": objective.direction, "best": best},
    )
    paths["best_json"] = study_dir / "best.json"
    if figure:
        paths["figure"] = plot_objective(
            rows, study_dir / "objective.png", objective=objective.name,
            direction=objective.direction, space=space,
        )  # fmt: skip
    return StudyResult(study_dir, role, rows, best, paths, 0)


def best_train_config(study_dir: str | os.PathLike, epochs: int | None = None) -> TrainConfig:
    """The :class:`TrainConfig` of the study's best trial (``epochs`` replaced if given)."""
    study_dir = Path(study_dir)
    best_path = study_dir / "best.json"
    best = json.loads(best_path.read_text())["best"] if best_path.exists() else None
    if not best:
        raise ValueError(f"{study_dir} has no completed trial yet: nothing to retrain")
    description = json.loads((study_dir / "study.json").read_text())
    config = TrainConfig.from_json(description["train"])
    return train_config_for(best, config, epochs=epochs)


def retrain_best(
    study_dir: str | os.PathLike,
    train_examples,
    val_examples,
    *,
    epochs: int | None = None,
    fit_verbose: int | str = 0,
) -> Path:
    """Retrain the best trial's hyper-parameters; copy the best epoch to ``best.keras``.

    The run lives in ``study_dir/best_run`` (resumable like any
    :func:`keras_runet.training.train` run).

    Args:
        study_dir: a study with at least one completed trial.
        train_examples, val_examples: the study's splits.
        epochs: epochs of the retraining (default: the study's).
        fit_verbose: Keras verbosity.

    Returns:
        ``study_dir/best.keras``.
    """
    study_dir = Path(study_dir)
    config = best_train_config(study_dir, epochs)
    keras.backend.clear_session()
    result = train(
        config, train_examples, val_examples, study_dir / "best_run", verbose=fit_verbose
    )
    target = study_dir / "best.keras"
    with atomic_path(target, suffix=".keras") as tmp:
        shutil.copy2(result.best_path, tmp)
    log.info(
        "retrained dil=%d shift=%.3f for %d epochs: val_segmentation_dice %.4f -> %s",
        config.dil, config.shift, result.epochs_run, result.best_score, target,
    )  # fmt: skip
    return target
