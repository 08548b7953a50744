"""KerasTuner search over RU-Net's ``dil`` and ``shift`` (paper, Tables II and III).

The paper tunes RU-Net's two hyper-parameters, the side ``dil`` of the box that dilates the
first segmentation and the threshold ``shift`` of the first binarisation, and reports that
the outlier reduction is stable across them. This module runs that search with KerasTuner,
on one machine or distributed (KerasTuner's chief / worker mode).

Pieces:

- :class:`SearchSpace`: ranges (or explicit values) of ``dil`` and ``shift``, optionally the
  learning rate and the weight of the ``coarse`` output's loss.
- :class:`RunetHyperModel`: a ``keras_tuner.HyperModel`` that builds and compiles RU-Net
  from a trial's hyper-parameters (the same :func:`~keras_runet.training.build_and_compile`
  as ``runet train``).
- :class:`RunetTuner`: a ``keras_tuner.Tuner`` whose trial trains with
  :func:`keras_runet.training.train` (resumable: an interrupted trial continues at its last
  finished epoch), then predicts the validation patients, brings the predictions back to
  the native grid and evaluates them with :func:`keras_runet.evaluation.evaluate_label_maps`.
  It reports to the oracle (see :data:`METRICS`):

  ``val_segmentation_dice`` (Keras metric, best epoch), ``val_outlier_rate`` (fraction of
  validation images that are a geometric or an anatomical outlier),
  ``val_geometric_outlier_rate``, ``val_anatomical_outlier_rate``, ``val_native_dice``
  (mean LVendo / LVepi / LA Dice on the native grid), ``val_roi_fraction`` (the fraction
  of the image RU-Net's ROI mask keeps: near 1, the first U-Net does not predict
  background yet and ``dil`` and ``shift`` have no effect) and ``seconds``.
- :func:`make_objective` (explicit directions: DESIGN.md trap), :func:`make_oracle`
  (random, grid, hyperband, bayesian), :func:`run_search` (the whole study, resumable),
  :func:`trial_rows` / :func:`write_results_csv` / :func:`plot_objective` (the results
  table and figure), :func:`retrain_best`.

Study directory::

    study_dir/
      study.json         the study's configuration (a rerun must match it)
      keras_tuner/       KerasTuner's project: oracle.json, tuner<id>.json,
                         trial_<id>/trial.json, trial_<id>/run/ (the training run, see
                         keras_runet.training), trial_<id>/result.json
      executions.jsonl   one line each time a trial starts running (trial, tuner id, pid)
      results.csv        one row per trial: trial_id, status, hyper-parameters, metrics
      objective.png      the objective over (dil, shift), best trial marked
      best.json          the best trial's hyper-parameters and metrics
      best_run/ best.keras   after :func:`retrain_best`

Distributed search: set ``KERASTUNER_TUNER_ID`` (``chief`` for the oracle process,
``tuner0``, ``tuner1``, ... for workers), ``KERASTUNER_ORACLE_IP`` and
``KERASTUNER_ORACLE_PORT`` in every process, then call :func:`run_search` in each. The
chief serves the oracle (it trains nothing) and returns when every trial has ended; the
workers ask it for trials and run them. See docs/tuning.md.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import json
import logging
import math
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import keras
import keras_tuner
import numpy as np

from keras_runet.training import TrainConfig, atomic_write_json, build_and_compile, train

log = logging.getLogger(__name__)

#: ``--objective`` name -> (metric reported to the oracle, direction).
OBJECTIVES = {
    "dice": ("val_segmentation_dice", "max"),
    "outliers": ("val_outlier_rate", "min"),
    "geometric": ("val_geometric_outlier_rate", "min"),
    "anatomical": ("val_anatomical_outlier_rate", "min"),
}
#: Every metric a trial reports to the oracle.
METRICS = (
    "val_segmentation_dice",
    "val_outlier_rate",
    "val_geometric_outlier_rate",
    "val_anatomical_outlier_rate",
    "val_native_dice",
    "val_roi_fraction",
    "seconds",
)
ORACLES = ("random", "grid", "hyperband", "bayesian")
#: Hyper-parameter names in the KerasTuner space.
HP_NAMES = ("dil", "shift", "learning_rate", "coarse_loss_weight")
PROJECT_NAME = "keras_tuner"


# --------------------------------------------------------------------------- search space


def _check_range(name, value, kind, low_limit, high_limit=None):
    try:
        low, high = (kind(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be two numbers (low, high), got {value!r}") from None
    if not low_limit <= low <= high or (high_limit is not None and high > high_limit):
        upper = f" <= {high_limit}" if high_limit is not None else ""
        raise ValueError(f"{name} must satisfy {low_limit} <= low <= high{upper}, got {value!r}")
    return low, high


@dataclasses.dataclass
class SearchSpace:
    """The hyper-parameters a search explores.

    ``dil`` and ``shift`` are always tuned; give either a range (with an optional step) or
    explicit values (the paper's sweep: ``dil_values=(11, 30), shift_values=(0.5, 0.7)``).
    The grid oracle needs a finite grid: a ``shift_step`` or ``shift_values`` (``dil`` is an
    integer range with ``dil_step``, 1 by default).

    Attributes:
        dil_range: ``(low, high)`` of the dilation box side, integers >= 1 (default 3..40).
        dil_step: step of ``dil`` within its range.
        dil_values: explicit ``dil`` values instead of the range.
        shift_range: ``(low, high)`` of the first binarisation threshold, within (0, 1).
        shift_step: step of ``shift`` within its range (None: continuous).
        shift_values: explicit ``shift`` values instead of the range.
        tune_learning_rate: also tune Adam's learning rate (log scale).
        learning_rate_range: its ``(low, high)``.
        tune_loss_weights: also tune the weight of the ``coarse`` output's loss (the
            ``segmentation`` output's weight stays 1).
        coarse_loss_weight_range: its ``(low, high)``.

    Example:
        >>> space = SearchSpace(dil_values=(11, 30), shift_values=(0.5, 0.7))
        >>> space.grid_size()
        4
    """

    dil_range: tuple[int, int] = (3, 40)
    dil_step: int = 1
    dil_values: tuple[int, ...] | None = None
    shift_range: tuple[float, float] = (0.1, 0.9)
    shift_step: float | None = None
    shift_values: tuple[float, ...] | None = None
    tune_learning_rate: bool = False
    learning_rate_range: tuple[float, float] = (1e-4, 1e-2)
    tune_loss_weights: bool = False
    coarse_loss_weight_range: tuple[float, float] = (0.1, 2.0)

    def __post_init__(self):
        self.dil_range = _check_range("dil_range", self.dil_range, int, 1)
        self.shift_range = _check_range("shift_range", self.shift_range, float, 0.0, 1.0)
        self.learning_rate_range = _check_range(
            "learning_rate_range", self.learning_rate_range, float, 1e-12
        )
        self.coarse_loss_weight_range = _check_range(
            "coarse_loss_weight_range", self.coarse_loss_weight_range, float, 0.0
        )
        if int(self.dil_step) < 1:
            raise ValueError(f"dil_step must be at least 1, got {self.dil_step!r}")
        self.dil_step = int(self.dil_step)
        if self.shift_step is not None:
            if not 0 < float(self.shift_step) <= 1:
                raise ValueError(f"shift_step must be within (0, 1], got {self.shift_step!r}")
            self.shift_step = float(self.shift_step)
        if self.dil_values is not None:
            values = tuple(sorted({int(v) for v in self.dil_values}))
            if not values or values[0] < 1:
                raise ValueError(f"dil_values must be integers >= 1, got {self.dil_values!r}")
            self.dil_values = values
        if self.shift_values is not None:
            values = tuple(sorted({float(v) for v in self.shift_values}))
            if not values or not all(0 < v < 1 for v in values):
                raise ValueError(f"shift_values must be within (0, 1), got {self.shift_values!r}")
            self.shift_values = values

    def is_finite(self) -> bool:
        """Whether every tuned hyper-parameter takes finitely many values (grid search)."""
        shift_ok = self.shift_values is not None or self.shift_step is not None
        return shift_ok and not self.tune_learning_rate and not self.tune_loss_weights

    def grid_size(self) -> int | None:
        """Number of points of the grid (None when the space is not finite)."""
        if not self.is_finite():
            return None
        if self.dil_values is not None:
            n_dil = len(self.dil_values)
        else:
            n_dil = (self.dil_range[1] - self.dil_range[0]) // self.dil_step + 1
        if self.shift_values is not None:
            n_shift = len(self.shift_values)
        else:
            low, high = self.shift_range
            n_shift = int(math.floor((high - low) / self.shift_step + 1e-9)) + 1
        return n_dil * n_shift

    def declare(self, hp: keras_tuner.HyperParameters) -> dict:
        """Declare the space on ``hp``; return the current values by name."""
        if self.dil_values is not None:
            dil = hp.Choice("dil", list(self.dil_values), ordered=True)
        else:
            dil = hp.Int("dil", *self.dil_range, step=self.dil_step)
        if self.shift_values is not None:
            shift = hp.Choice("shift", list(self.shift_values), ordered=True)
        else:
            shift = hp.Float("shift", *self.shift_range, step=self.shift_step)
        values = {"dil": int(dil), "shift": float(shift)}
        if self.tune_learning_rate:
            values["learning_rate"] = hp.Float(
                "learning_rate", *self.learning_rate_range, sampling="log"
            )
        if self.tune_loss_weights:
            values["coarse_loss_weight"] = hp.Float(
                "coarse_loss_weight", *self.coarse_loss_weight_range
            )
        return values

    def to_json(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(self).items()}


# --------------------------------------------------------------------------- hypermodel


class RunetHyperModel(keras_tuner.HyperModel):
    """RU-Net as a KerasTuner hypermodel: ``dil``, ``shift`` (and optionally the learning
    rate and the ``coarse`` loss weight) from the trial, the rest from a base config.

    Args:
        space: the :class:`SearchSpace`.
        base_config: the :class:`~keras_runet.training.TrainConfig` every trial starts
            from (width, image size, epochs, batch size, seed, ...); its ``model`` must be
            ``"runet"``.
        name: the hypermodel's name.

    Example:
        >>> hm = RunetHyperModel(SearchSpace(), TrainConfig(width=0.25, image_size=(64, 64)))
        >>> model = hm.build(keras_tuner.HyperParameters())  # compiled, outputs coarse + seg
    """

    def __init__(
        self,
        space: SearchSpace | None = None,
        base_config: TrainConfig | None = None,
        *,
        name: str = "runet_hypermodel",
        **kwargs,
    ):
        super().__init__(name=name, **kwargs)
        self.space = space or SearchSpace()
        self.base_config = base_config or TrainConfig()
        if self.base_config.model != "runet":
            raise ValueError(
                f"the search tunes RU-Net's dil and shift; base_config.model must be 'runet', "
                f"got {self.base_config.model!r}"
            )

    def train_config(self, hp: keras_tuner.HyperParameters) -> TrainConfig:
        """The :class:`TrainConfig` of a trial's hyper-parameters."""
        values = self.space.declare(hp)
        changes = {"dil": values["dil"], "shift": values["shift"]}
        if "learning_rate" in values:
            changes["learning_rate"] = float(values["learning_rate"])
        if "coarse_loss_weight" in values:
            changes["loss_weights"] = {
                "coarse": float(values["coarse_loss_weight"]),
                "segmentation": 1.0,
            }
        if "tuner/epochs" in hp.values:  # Hyperband's budget for this trial
            changes["epochs"] = int(hp.values["tuner/epochs"])
        return dataclasses.replace(self.base_config, **changes)

    def build(self, hp):
        return build_and_compile(self.train_config(hp))


# --------------------------------------------------------------------------- objective, oracle


def make_objective(name: str) -> keras_tuner.Objective:
    """The KerasTuner objective for ``name`` (a key of :data:`OBJECTIVES` or a metric name).

    The direction is always explicit (KerasTuner would guess it from the name).

    Example:
        >>> make_objective("outliers")
        Objective(name="val_outlier_rate", direction="min")
    """
    by_metric = {metric: direction for metric, direction in OBJECTIVES.values()}
    if name in OBJECTIVES:
        metric, direction = OBJECTIVES[name]
    elif name in by_metric:
        metric, direction = name, by_metric[name]
    else:
        raise ValueError(
            f"unknown objective {name!r}; choose from {', '.join(OBJECTIVES)} "
            f"(or a metric: {', '.join(by_metric)})"
        )
    return keras_tuner.Objective(metric, direction=direction)


def make_oracle(
    name: str,
    objective: keras_tuner.Objective,
    *,
    max_trials: int = 10,
    seed: int | None = 0,
    space: SearchSpace | None = None,
    max_epochs: int = 10,
    hyperband_factor: int = 3,
    hyperband_iterations: int = 1,
    max_retries_per_trial: int = 0,
    bayesian_initial_points: int | None = None,
) -> keras_tuner.Oracle:
    """A KerasTuner oracle: ``"random"``, ``"grid"``, ``"hyperband"`` or ``"bayesian"``.

    Args:
        name: one of :data:`ORACLES`.
        objective: from :func:`make_objective`.
        max_trials: trials of the search (the grid stops earlier when it is exhausted;
            Hyperband's number of trials follows from its epochs and factor).
        seed: seeds the oracle's choices (same seed, same trials).
        space: checked for the grid oracle, which needs a finite space.
        max_epochs: Hyperband's largest epoch budget (the study's epochs).
        hyperband_factor, hyperband_iterations: Hyperband's.
        max_retries_per_trial: reruns of a trial that raised before it is FAILED.
        bayesian_initial_points: random trials before the Gaussian process takes over
            (KerasTuner's default: 3 per hyper-parameter).

    Returns:
        The oracle.
    """
    if max_trials is not None and int(max_trials) < 1:
        raise ValueError(f"max_trials must be at least 1, got {max_trials!r}")
    common = dict(objective=objective, seed=seed, max_retries_per_trial=max_retries_per_trial)
    if name == "random":
        return keras_tuner.oracles.RandomSearchOracle(max_trials=max_trials, **common)
    if name == "grid":
        if space is not None and not space.is_finite():
            raise ValueError(
                "the grid oracle needs a finite space: give shift_step (e.g. 0.2) or "
                "shift_values, and do not tune the learning rate or loss weights"
            )
        # Not keras_tuner's GridSearchOracle: it loses grid points when a search is killed
        # and resumed (keras-team/keras-tuner#1055); see keras_runet.grid_oracle.
        from keras_runet.grid_oracle import ResumableGridSearchOracle

        return ResumableGridSearchOracle(max_trials=max_trials, **common)
    if name == "bayesian":
        return keras_tuner.oracles.BayesianOptimizationOracle(
            max_trials=max_trials, num_initial_points=bayesian_initial_points, **common
        )
    if name == "hyperband":
        if int(max_epochs) < 2:
            raise ValueError(f"hyperband needs max_epochs >= 2, got {max_epochs!r}")
        return keras_tuner.oracles.HyperbandOracle(
            max_epochs=int(max_epochs),
            factor=hyperband_factor,
            hyperband_iterations=hyperband_iterations,
            **common,
        )
    raise ValueError(f"unknown oracle {name!r}; choose from {', '.join(ORACLES)}")


# --------------------------------------------------------------------------- evaluation


def evaluate_model(
    model: keras.Model,
    examples,
    *,
    image_size=(256, 256),
    batch_size: int = 8,
    thresholds=None,
    workers: int = 0,
    output: str = "segmentation",
) -> dict[str, float]:
    """Outlier rates and native-grid Dice of ``model`` on a camus split.

    The predictions are brought back to each image's native grid (resize the
    probabilities, then argmax) and evaluated in mm by
    :func:`keras_runet.evaluation.evaluate_label_maps`.

    Args:
        model: a model with dict outputs (``segmentation``).
        examples: a TFDS camus split (``tf.data.Dataset`` of examples, unbatched).
        image_size: the model's input size.
        batch_size: images per forward pass.
        thresholds: :class:`~keras_runet.evaluation.OutlierThresholds` (default: Table I).
        workers: evaluation worker processes (0: in this process).
        output: the model output to evaluate.

    Returns:
        ``{"val_outlier_rate", "val_geometric_outlier_rate", "val_anatomical_outlier_rate",
        "val_native_dice", "val_images"}``; an outlier is either kind for
        ``val_outlier_rate``.
    """
    from keras_runet.cross_validation import predict_examples
    from keras_runet.evaluation import evaluate_label_maps

    items = predict_examples(
        model, examples, image_size=image_size, batch_size=batch_size, outputs=[output]
    )[output]
    if not items:
        raise ValueError("the validation split has no images to evaluate")
    rows = evaluate_label_maps(
        items, workers=workers, thresholds=thresholds, reference_shapes=False, volumes=False
    )
    return outlier_rates(rows)


def roi_fraction(model: keras.Model, examples, *, image_size=(256, 256), batch_size=8) -> float:
    """Mean fraction of the image that RU-Net's ROI mask keeps (1.0: the whole image).

    Near 1 the first U-Net predicts foreground everywhere (e.g. early in training: the
    Dice loss ignores the background class), the mask is all ones, and ``dil`` and
    ``shift`` change nothing.

    Args:
        model: a RU-Net (a ``roi_attention`` layer and a ``coarse`` output).
        examples: a TFDS camus split (unbatched).
        image_size: the model's input size.
        batch_size: images per forward pass.

    Returns:
        The mean of the mask over every pixel of every image.
    """
    from keras_runet.data import make_dataset
    from keras_runet.models import roi_mask_means

    model.get_layer("roi_attention")  # a clear error for a model without the attention
    batches = make_dataset(
        examples, ["coarse"], batch_size=batch_size, image_size=image_size, cache=False
    )
    means = []  # every image has the same size: the mean of the means is the pixel mean
    for images, _ in batches:
        coarse = model.predict_on_batch(images)["coarse"]
        means.extend(roi_mask_means(model, images, coarse))
    if not means:
        raise ValueError("the validation split has no images")
    return float(np.mean(means))


def outlier_rates(rows: Sequence[dict]) -> dict[str, float]:
    """Validation metrics of evaluation rows (:func:`~keras_runet.evaluation.evaluate_label_maps`).

    Args:
        rows: one row per image, with ``geometric_outlier``, ``anatomical_outlier`` and
            the ``LVendo_dice``, ``LVepi_dice``, ``LA_dice`` columns.

    Returns:
        ``val_outlier_rate`` (fraction of images that are either kind of outlier),
        ``val_geometric_outlier_rate``, ``val_anatomical_outlier_rate``,
        ``val_native_dice`` (mean over images of the mean of the three Dice, a structure
        missing from the prediction counting 0) and ``val_images``.

    Example:
        >>> outlier_rates([{"geometric_outlier": True, "anatomical_outlier": False,
        ...                 "LVendo_dice": 0.9, "LVepi_dice": 0.9, "LA_dice": 0.9}])["val_outlier_rate"]
        1.0
    """
    if not rows:
        raise ValueError("no evaluation rows: the validation split has no images")
    geo = np.array([bool(r["geometric_outlier"]) for r in rows])
    ana = np.array([bool(r["anatomical_outlier"]) for r in rows])
    dices = np.array(
        [[r[f"{s}_dice"] for s in ("LVendo", "LVepi", "LA")] for r in rows], dtype=float
    )
    per_image = np.nan_to_num(dices, nan=0.0).mean(axis=1)
    return {
        "val_outlier_rate": float(np.mean(geo | ana)),
        "val_geometric_outlier_rate": float(np.mean(geo)),
        "val_anatomical_outlier_rate": float(np.mean(ana)),
        "val_native_dice": float(per_image.mean()),
        "val_images": len(rows),
    }


# --------------------------------------------------------------------------- tuner


def _append_line(path: Path, record: dict) -> None:
    """Append one JSON line with a single ``write`` (atomic for short lines, O_APPEND)."""
    line = (json.dumps(record, sort_keys=True) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def read_executions(study_dir: str | os.PathLike) -> list[dict]:
    """The lines of ``executions.jsonl``: one per start of a trial (by any process)."""
    path = Path(study_dir) / "executions.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class RunetTuner(keras_tuner.Tuner):
    """A KerasTuner tuner whose trials train RU-Net and measure its validation outliers.

    Each trial trains with :func:`keras_runet.training.train` in ``trial_<id>/run`` (an
    interrupted trial is retried by the oracle when the study resumes, and the training
    continues at its last finished epoch), reloads the best epoch (by
    ``val_segmentation_dice``), evaluates it on the validation split on the native grid
    (:func:`evaluate_model`) and returns every metric of :data:`METRICS` to the oracle.
    Hyperband's follow-up trials continue the previous trial's training.

    Args:
        hypermodel: a :class:`RunetHyperModel`.
        oracle: from :func:`make_oracle`.
        study_dir: the study directory (KerasTuner's project is ``study_dir/keras_tuner``).
        thresholds: outlier thresholds (default: the paper's Table I).
        eval_workers: evaluation worker processes.
        fit_verbose: Keras verbosity while training (0: a log line per epoch).
        overwrite: start the study over (deletes the KerasTuner project).

    Call ``search(train_examples, val_examples)`` with TFDS camus splits.
    """

    def __init__(
        self,
        hypermodel: RunetHyperModel,
        oracle: keras_tuner.Oracle,
        study_dir: str | os.PathLike,
        *,
        thresholds=None,
        eval_workers: int = 0,
        fit_verbose: int | str = 0,
        overwrite: bool = False,
        **kwargs,
    ):
        self.study_dir = Path(study_dir)
        self.study_dir.mkdir(parents=True, exist_ok=True)
        self.thresholds = thresholds
        self.eval_workers = eval_workers
        self.fit_verbose = fit_verbose
        out = io.StringIO()
        # KerasTuner prints ("Reloading Tuner from ..."); a library logs instead.
        with contextlib.redirect_stdout(out):
            super().__init__(
                oracle=oracle,
                hypermodel=hypermodel,
                directory=str(self.study_dir),
                project_name=PROJECT_NAME,
                overwrite=overwrite,
                **kwargs,
            )
        for line in out.getvalue().splitlines():
            log.info("keras_tuner: %s", line)

    def _run_dir(self, trial_id) -> Path:
        return Path(self.get_trial_dir(trial_id)) / "run"

    def _continue_from(self, trial_id, run_dir: Path) -> None:
        """Hyperband: start this trial from the previous trial's last epoch."""
        previous = Path(self.get_trial_dir(trial_id)) / "run"
        if (run_dir / "state.json").exists():
            return  # this trial was interrupted: it resumes its own run
        needed = ("last.keras", "state.json")
        if not all((previous / n).exists() for n in needed):
            log.warning(
                "trial %s's run is not in %s: training from scratch instead of continuing",
                trial_id, previous,
            )  # fmt: skip
            return
        run_dir.mkdir(parents=True, exist_ok=True)
        for name in ("best.keras", "history.csv", "last.keras", "state.json"):
            if (previous / name).exists():
                shutil.copy2(previous / name, run_dir / name)

    def run_trial(self, trial, train_examples, val_examples, **kwargs):
        """Train, evaluate, and return the metrics of :data:`METRICS` to the oracle."""
        start = time.perf_counter()
        hp = trial.hyperparameters
        keras.backend.clear_session()
        config = self.hypermodel.train_config(hp)
        run_dir = self._run_dir(trial.trial_id)
        _append_line(
            self.study_dir / "executions.jsonl",
            {
                "trial_id": trial.trial_id,
                "tuner_id": self.tuner_id,
                "pid": os.getpid(),
                "time": time.time(),
                "values": {k: v for k, v in hp.values.items() if k in HP_NAMES},
            },
        )
        if "tuner/trial_id" in hp.values:
            self._continue_from(hp.values["tuner/trial_id"], run_dir)
        result = train(config, train_examples, val_examples, run_dir, verbose=self.fit_verbose)
        model = keras.saving.load_model(result.best_path)
        metrics = evaluate_model(
            model,
            val_examples,
            image_size=config.image_size,
            batch_size=config.batch_size,
            thresholds=self.thresholds,
            workers=self.eval_workers,
        )
        images = metrics.pop("val_images")
        metrics["val_segmentation_dice"] = float(result.best_score)
        metrics["val_roi_fraction"] = roi_fraction(
            model, val_examples, image_size=config.image_size, batch_size=config.batch_size
        )
        if metrics["val_roi_fraction"] > 0.99:
            log.warning(
                "trial %s: the ROI mask keeps %.1f%% of the image (the first U-Net predicts "
                "no background yet): dil and shift have no effect; train longer",
                trial.trial_id, 100 * metrics["val_roi_fraction"],
            )  # fmt: skip
        metrics["seconds"] = time.perf_counter() - start
        atomic_write_json(
            Path(self.get_trial_dir(trial.trial_id)) / "result.json",
            {
                "trial_id": trial.trial_id,
                "tuner_id": self.tuner_id,
                "hyperparameters": dict(hp.values),
                "metrics": metrics,
                "epochs_run": result.epochs_run,
                "val_images": images,
                "train_config": config.to_json(),
            },
        )
        log.info(
            "trial %s [%s]: dil=%d shift=%.3f%s -> val_segmentation_dice=%.4f "
            "val_outlier_rate=%.3f (geometric %.3f, anatomical %.3f) roi=%.2f in %.1f s",
            trial.trial_id,
            self.tuner_id,
            config.dil,
            config.shift,
            _extra_hps(hp.values),
            metrics["val_segmentation_dice"],
            metrics["val_outlier_rate"],
            metrics["val_geometric_outlier_rate"],
            metrics["val_anatomical_outlier_rate"],
            metrics["val_roi_fraction"],
            metrics["seconds"],
        )
        return metrics

    def load_model(self, trial):
        """The best epoch's model of a finished trial (``trial_<id>/run/best.keras``)."""
        return keras.saving.load_model(self._run_dir(trial.trial_id) / "best.keras")

    def save_model(self, trial_id, model, step=0):
        """Unused: :func:`keras_runet.training.train` saves every trial's models."""


def _extra_hps(values: dict) -> str:
    parts = []
    if "learning_rate" in values:
        parts.append(f" lr={values['learning_rate']:.2e}")
    if "coarse_loss_weight" in values:
        parts.append(f" coarse_w={values['coarse_loss_weight']:.2f}")
    if "tuner/epochs" in values:
        parts.append(f" epochs={values['tuner/epochs']}")
    return "".join(parts)


# --------------------------------------------------------------------------- study


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


def distributed_role() -> str:
    """``"single"``, ``"chief"`` or ``"worker"`` from the ``KERASTUNER_*`` variables.

    Raises:
        ValueError: ``KERASTUNER_ORACLE_IP`` without the port or the tuner id.
    """
    if "KERASTUNER_ORACLE_IP" not in os.environ:
        return "single"
    for var in ("KERASTUNER_ORACLE_PORT", "KERASTUNER_TUNER_ID"):
        if not os.environ.get(var):
            raise ValueError(f"KERASTUNER_ORACLE_IP is set but {var} is not: set both")
    return "chief" if "chief" in os.environ["KERASTUNER_TUNER_ID"] else "worker"


def _check_study(study_dir: Path, description: dict, overwrite: bool) -> None:
    path = study_dir / "study.json"
    if path.exists() and not overwrite:
        previous = json.loads(path.read_text())
        differs = sorted(
            k for k in set(previous) | set(description) if previous.get(k) != description.get(k)
        )
        if differs:
            detail = "; ".join(
                f"{k}: {previous.get(k)!r} then, {description.get(k)!r} now" for k in differs
            )
            raise ValueError(
                f"{study_dir} holds a study with another configuration ({detail}); use "
                "another study directory, or overwrite=True to start over"
            )
    atomic_write_json(path, description)


def run_search(
    study_dir: str | os.PathLike,
    train_examples=None,
    val_examples=None,
    *,
    base_config: TrainConfig | None = None,
    space: SearchSpace | None = None,
    oracle: str = "random",
    objective: str = "outliers",
    max_trials: int = 10,
    seed: int | None = None,
    thresholds=None,
    eval_workers: int = 0,
    fit_verbose: int | str = 0,
    overwrite: bool = False,
    figure: bool = True,
    data_description: str | None = None,
    hyperband_factor: int = 3,
) -> StudyResult:
    """Run (or resume) a search; write the results table, figure and best trial.

    Rerunning with the same ``study_dir`` resumes: finished trials are not run again, an
    interrupted trial is retried (its training continuing at its last finished epoch),
    and a larger ``max_trials`` extends the study. The study's other settings must match
    (``study.json``).

    In distributed mode (the ``KERASTUNER_*`` environment variables, see
    :func:`distributed_role`) the chief serves the oracle until every trial has ended and
    writes the table; workers run trials and return with ``rows`` empty. The chief needs
    no data (``train_examples`` and ``val_examples`` may be None).

    Args:
        study_dir: the study directory (see the module docstring).
        train_examples, val_examples: TFDS camus splits (e.g. from
            :func:`keras_runet.cross_validation.fold_split_strings`): train on the first,
            compute the objective on the second.
        base_config: what every trial starts from (epochs, width, image size, ...);
            ``model`` must be ``"runet"``. Its ``seed`` seeds every trial's training.
        space: the :class:`SearchSpace` (default: dil 3..40, shift 0.1..0.9).
        oracle: one of :data:`ORACLES`.
        objective: a key of :data:`OBJECTIVES` (``"dice"``, ``"outliers"``,
            ``"geometric"``, ``"anatomical"``).
        max_trials: trials of the search (all runs of the study together).
        seed: the oracle's seed (default: ``base_config.seed``).
        thresholds: outlier thresholds (default: Table I).
        eval_workers: evaluation worker processes per trial.
        fit_verbose: Keras verbosity while training.
        overwrite: delete the study's trials and start over.
        figure: draw ``objective.png``.
        data_description: recorded in ``study.json`` (e.g. the dataset and fold).
        hyperband_factor: Hyperband's reduction factor.

    Returns:
        A :class:`StudyResult`.

    Example:
        >>> splits = fold_split_strings(builder, 1)
        >>> result = run_search(
        ...     "studies/fold1", builder.as_dataset(split=splits["train"]),
        ...     builder.as_dataset(split=splits["validation"]),
        ...     base_config=TrainConfig(epochs=30), oracle="bayesian", max_trials=20)
        >>> result.best["dil"], result.best["shift"]
    """
    study_dir = Path(study_dir)
    base_config = base_config or TrainConfig()
    space = space or SearchSpace()
    role = distributed_role()
    seed = base_config.seed if seed is None else seed
    keras_objective = make_objective(objective)
    if role != "chief" and (train_examples is None or val_examples is None):
        raise ValueError("train_examples and val_examples are needed to run trials")
    description = {
        "oracle": oracle,
        "objective": keras_objective.name,
        "direction": keras_objective.direction,
        "seed": seed,
        "space": space.to_json(),
        "train": base_config.to_json(),
        "data": data_description,
    }
    if overwrite and role != "worker":
        # Also drop what lies beside KerasTuner's project (their trials are gone).
        for name in ("executions.jsonl", "results.csv", "objective.png", "best.json"):
            (study_dir / name).unlink(missing_ok=True)
    study_dir.mkdir(parents=True, exist_ok=True)
    _check_study(study_dir, description, overwrite)
    hypermodel = RunetHyperModel(space, base_config)
    keras_oracle = make_oracle(
        oracle,
        keras_objective,
        max_trials=max_trials,
        seed=seed,
        space=space,
        max_epochs=base_config.epochs,
        hyperband_factor=hyperband_factor,
    )
    tuner = RunetTuner(
        hypermodel,
        keras_oracle,
        study_dir,
        thresholds=thresholds,
        eval_workers=eval_workers,
        fit_verbose=fit_verbose,
        overwrite=overwrite and role != "worker",
    )
    before = sum(1 for e in read_executions(study_dir) if e.get("pid") == os.getpid())
    log.info(
        "study %s (%s): %s oracle, objective %s (%s), up to %s trials",
        study_dir, role, oracle, keras_objective.name, keras_objective.direction, max_trials,
    )  # fmt: skip
    tuner.search(train_examples, val_examples, verbose=0)
    trials_run = sum(1 for e in read_executions(study_dir) if e.get("pid") == os.getpid())
    trials_run -= before
    if role == "worker":
        return StudyResult(study_dir, role, [], None, {}, trials_run)
    result = write_study_results(study_dir, tuner.oracle, role=role, figure=figure, space=space)
    return dataclasses.replace(result, trials_run=trials_run)


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
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(fields)
            for row in rows:
                writer.writerow(["" if row.get(k) is None else row.get(k) for k in fields])
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
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
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp, dpi=fig.dpi)
    os.replace(tmp, path)
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
    atomic_write_json(
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


def load_study(study_dir: str | os.PathLike) -> keras_tuner.Oracle:
    """The oracle of a study on disk (its trials, statuses and metrics), without running.

    Example:
        >>> rows = trial_rows(load_study("studies/fold1"))
    """
    study_dir = Path(study_dir)
    path = study_dir / "study.json"
    if not path.exists():
        raise FileNotFoundError(f"{study_dir} holds no study (no study.json)")
    description = json.loads(path.read_text())
    space = SearchSpace(**_space_kwargs(description["space"]))
    oracle = make_oracle(
        description["oracle"],
        keras_tuner.Objective(description["objective"], direction=description["direction"]),
        max_trials=None if description["oracle"] == "hyperband" else 10**6,
        seed=description["seed"],
        space=space,
        max_epochs=max(2, int(description["train"]["epochs"])),
    )
    oracle._set_project_dir(str(study_dir), PROJECT_NAME)
    oracle.reload()
    return oracle


def _space_kwargs(d: dict) -> dict:
    known = {f.name for f in dataclasses.fields(SearchSpace)}
    return {k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items() if k in known}


def best_train_config(study_dir: str | os.PathLike, epochs: int | None = None) -> TrainConfig:
    """The :class:`TrainConfig` of the study's best trial (``epochs`` replaced if given)."""
    study_dir = Path(study_dir)
    best_path = study_dir / "best.json"
    best = json.loads(best_path.read_text())["best"] if best_path.exists() else None
    if not best:
        raise ValueError(f"{study_dir} has no completed trial yet: nothing to retrain")
    description = json.loads((study_dir / "study.json").read_text())
    config = TrainConfig.from_json(description["train"])
    changes = {"dil": int(best["dil"]), "shift": float(best["shift"])}
    if best.get("learning_rate") is not None:
        changes["learning_rate"] = float(best["learning_rate"])
    if best.get("coarse_loss_weight") is not None:
        changes["loss_weights"] = {
            "coarse": float(best["coarse_loss_weight"]),
            "segmentation": 1.0,
        }
    if epochs is not None:
        changes["epochs"] = int(epochs)
    return dataclasses.replace(config, **changes)


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
    tmp = study_dir / ".best.tmp.keras"
    shutil.copy2(result.best_path, tmp)
    os.replace(tmp, target)
    log.info(
        "retrained dil=%d shift=%.3f for %d epochs: val_segmentation_dice %.4f -> %s",
        config.dil, config.shift, result.epochs_run, result.best_score, target,
    )  # fmt: skip
    return target
