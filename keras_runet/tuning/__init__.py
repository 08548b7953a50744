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
  the native grid and evaluates them with :func:`keras_runet.evaluation.evaluate_label_maps`
  (:mod:`keras_runet.split_evaluation`: one forward pass, which also gives the ROI fraction).
  It reports to the oracle (see :data:`METRICS`):

  ``val_segmentation_dice`` (Keras metric, best epoch), ``val_outlier_rate`` (fraction of
  validation images that are a geometric or an anatomical outlier),
  ``val_geometric_outlier_rate``, ``val_anatomical_outlier_rate``, ``val_native_dice``
  (mean LVendo / LVepi / LA Dice on the native grid), ``val_roi_fraction`` (the fraction
  of the image RU-Net's ROI mask keeps: near 1, the first U-Net does not predict
  background yet and ``dil`` and ``shift`` have no effect) and ``seconds``.
- :func:`make_objective` (explicit directions: docs/design.md, known traps), :func:`make_oracle`
  (random, grid, hyperband, bayesian), :func:`run_search` (the whole study, resumable),
  :func:`trial_rows` / :func:`write_results_csv` / :func:`plot_objective` (the results
  table and figure), :func:`retrain_best`.
- :func:`load_tuner`: the :class:`RunetTuner` of a study on disk, for KerasTuner's own
  API without searching: ``load_tuner(study_dir).get_best_models(1)[0]``,
  ``get_best_hyperparameters``, ``results_summary()``.
- TensorBoard HParams (:mod:`~keras_runet.tuning.hparams`): ``tensorboard --logdir
  study_dir`` shows every trial's hyper-parameters and metrics in the HParams dashboard,
  as KerasTuner's tuners do.

Study directory::

    study_dir/
      study.json         the study's configuration (a rerun must match it)
      keras_tuner/       KerasTuner's project: oracle.json, tuner<id>.json,
                         trial_<id>/trial.json, trial_<id>/run/ (the training run, see
                         keras_runet.training), trial_<id>/result.json; TensorBoard
                         HParams event files: the experiment summary in keras_tuner/,
                         each trial's session in trial_<id>/
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

Modules: :mod:`~keras_runet.tuning.space` (the search space and the one mapping
hyper-parameters -> :class:`~keras_runet.training.TrainConfig`),
:mod:`~keras_runet.tuning.hypermodel`, :mod:`~keras_runet.tuning.oracles` (objectives,
oracles, the resumable grid oracle), :mod:`~keras_runet.tuning.tuner` (the trials and
their executions log), :mod:`~keras_runet.tuning.hparams` (their TensorBoard HParams data),
:mod:`~keras_runet.tuning.study` (a whole study, distributed or not, and reading one back)
and :mod:`~keras_runet.tuning.results` (the table, figure, best trial and its retraining).
Every public name is importable from ``keras_runet.tuning``.
"""

from __future__ import annotations

from keras_runet.config import TrainConfig
from keras_runet.split_evaluation import evaluate_model, outlier_rates, roi_fraction
from keras_runet.tuning.hparams import hparams_of, write_experiment, write_session
from keras_runet.tuning.hypermodel import RunetHyperModel
from keras_runet.tuning.oracles import (
    OBJECTIVES,
    ORACLES,
    ResumableGridSearchOracle,
    make_objective,
    make_oracle,
)
from keras_runet.tuning.results import (
    StudyResult,
    best_train_config,
    plot_objective,
    read_results_csv,
    retrain_best,
    trial_rows,
    write_results_csv,
    write_study_results,
)
from keras_runet.tuning.space import HP_NAMES, SearchSpace, train_config_for
from keras_runet.tuning.study import distributed_role, load_study, load_tuner, run_search
from keras_runet.tuning.tuner import (
    METRICS,
    PROJECT_NAME,
    RunetTuner,
    read_executions,
    sort_trials,
)

__all__ = [
    "HP_NAMES",
    "METRICS",
    "OBJECTIVES",
    "ORACLES",
    "PROJECT_NAME",
    "ResumableGridSearchOracle",
    "RunetHyperModel",
    "RunetTuner",
    "SearchSpace",
    "StudyResult",
    "TrainConfig",
    "best_train_config",
    "distributed_role",
    "evaluate_model",
    "hparams_of",
    "load_study",
    "load_tuner",
    "make_objective",
    "make_oracle",
    "outlier_rates",
    "plot_objective",
    "read_executions",
    "read_results_csv",
    "retrain_best",
    "roi_fraction",
    "run_search",
    "sort_trials",
    "train_config_for",
    "trial_rows",
    "write_experiment",
    "write_results_csv",
    "write_session",
    "write_study_results",
]
