"""The tuner: a trial trains RU-Net, evaluates it on the validation split, reports to the oracle.

Each start of a trial (by any process of a distributed study) is logged as one line of
``study_dir/executions.jsonl`` (:func:`read_executions`). Each trial also leaves its
TensorBoard HParams session (:mod:`keras_runet.tuning.hparams`).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import shutil
import time
from pathlib import Path

import keras
import keras_tuner
from keras_tuner.engine import trial as trial_module

from keras_runet.split_evaluation import evaluate_model
from keras_runet.training import train
from keras_runet.tuning.hparams import write_experiment, write_session
from keras_runet.tuning.hypermodel import RunetHyperModel
from keras_runet.tuning.space import HP_NAMES
from tfds_camus.atomic import write_json

log = logging.getLogger(__name__)

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
PROJECT_NAME = "keras_tuner"


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
    (:func:`keras_runet.split_evaluation.evaluate_model`, one forward pass that also gives
    the ROI fraction) and returns every metric of :data:`METRICS` to the oracle.
    Hyperband's follow-up trials continue the previous trial's training.

    As KerasTuner's own tuners: ``get_best_models(n)`` loads the best trials' models
    (``trial_<id>/run/best.keras``), ``get_best_hyperparameters(n)`` and
    ``results_summary()`` rank the completed trials by the objective (ties: the earliest
    trial, as ``results.csv``'s ``is_best``), and each trial writes its TensorBoard HParams
    session (``tensorboard --logdir study_dir``; :mod:`keras_runet.tuning.hparams`).
    :func:`keras_runet.tuning.load_tuner` gives the tuner of a study on disk.

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

    def _populate_initial_space(self):
        # KerasTuner builds the model to discover conditional hyper-parameters; the space
        # has none (SearchSpace.declare), so declaring it is enough: no RU-Net to build in
        # the chief or in load_tuner.
        hp = self.oracle.get_space()
        self.hypermodel.space.declare(hp)
        self.oracle.update_space(hp)

    def reload(self):
        super().reload()
        if not self._is_worker():
            sort_trials(self.oracle)

    def search(self, *fit_args, **fit_kwargs):
        """KerasTuner's search; the process holding the oracle first writes the HParams
        experiment summary (once per study)."""
        if not self._is_worker():
            write_experiment(
                self.project_dir, self.oracle.get_space(), METRICS, self.oracle.objective
            )
        return super().search(*fit_args, **fit_kwargs)

    def on_trial_end(self, trial):
        if trial.status in (trial_module.TrialStatus.FAILED, trial_module.TrialStatus.INVALID):
            # The dashboard shows it too; a retry that completes replaces this session.
            try:
                write_session(
                    self.get_trial_dir(trial.trial_id), trial.hyperparameters, trial.trial_id,
                    failed=True,
                )  # fmt: skip
            except Exception as err:  # the oracle must still hear that the trial ended
                log.warning("trial %s: no HParams session written (%s)", trial.trial_id, err)
        super().on_trial_end(trial)

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
        start, started = time.perf_counter(), time.time()
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
        roi = metrics.pop("val_roi_fraction")  # from the same forward pass
        metrics["val_segmentation_dice"] = float(result.best_score)
        metrics["val_roi_fraction"] = roi
        if metrics["val_roi_fraction"] > 0.99:
            log.warning(
                "trial %s: the ROI mask keeps %.1f%% of the image (the first U-Net predicts "
                "no background yet): dil and shift have no effect; train longer",
                trial.trial_id, 100 * metrics["val_roi_fraction"],
            )  # fmt: skip
        metrics["seconds"] = time.perf_counter() - start
        write_json(
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
        write_session(
            self.get_trial_dir(trial.trial_id), hp, trial.trial_id, metrics, start_time=started
        )
        log.info(
            "trial %s [%s]: %s -> val_segmentation_dice=%.4f "
            "val_outlier_rate=%.3f (geometric %.3f, anatomical %.3f) roi=%.2f in %.1f s",
            trial.trial_id,
            self.tuner_id,
            _hps_text(hp.values),
            metrics["val_segmentation_dice"],
            metrics["val_outlier_rate"],
            metrics["val_geometric_outlier_rate"],
            metrics["val_anatomical_outlier_rate"],
            metrics["val_roi_fraction"],
            metrics["seconds"],
        )
        return metrics

    def load_model(self, trial):
        """The best epoch's model of a finished trial (``trial_<id>/run/best.keras``).

        What ``get_best_models`` loads (KerasTuner's own ``load_model`` would look for
        its checkpoint, ``trial_<id>/checkpoint.weights.h5``, which these trials do not
        write: :func:`keras_runet.training.train` saves their models).

        Raises:
            FileNotFoundError: the trial has no model here (it did not complete, or it
                ran on another machine of a distributed study), naming the file.
        """
        path = self._run_dir(trial.trial_id) / "best.keras"
        if not path.exists():
            raise FileNotFoundError(
                f"trial {trial.trial_id} ({trial.status}) has no model on this machine: "
                f"{path} does not exist"
            )
        return keras.saving.load_model(path)

    def save_model(self, trial_id, model, step=0):
        """Unused: :func:`keras_runet.training.train` saves every trial's models."""


def sort_trials(oracle: keras_tuner.Oracle) -> None:
    """Order ``oracle.trials`` by trial id (KerasTuner reloads them in file-system order).

    KerasTuner's ranking (``get_best_trials``: ``get_best_models``, ``results_summary``)
    is a stable sort of that order: sorted, its ties go to the earliest trial, as
    :func:`~keras_runet.tuning.trial_rows`' ``is_best`` and ``best.json``.
    """
    oracle.trials = dict(sorted(oracle.trials.items()))


def _hps_text(values: dict) -> str:
    """A trial's hyper-parameters for its log line: every one of :data:`HP_NAMES` it has
    (the searched ones), then Hyperband's epoch budget.

    Example:
        >>> _hps_text({"dil": 11, "shift": 0.5, "roi_kernel": "disk", "tuner/epochs": 3})
        'dil=11 shift=0.500 roi_kernel=disk epochs=3'
    """
    formats = {"shift": "{:.3f}", "learning_rate": "{:.2e}", "coarse_loss_weight": "{:.2f}"}
    parts = [
        f"{name}={formats.get(name, '{}').format(values[name])}"
        for name in HP_NAMES
        if values.get(name) is not None
    ]
    if "tuner/epochs" in values:
        parts.append(f"epochs={values['tuner/epochs']}")
    return " ".join(parts)
