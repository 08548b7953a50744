"""A study: run (or resume) a search, alone or distributed, and read one back from disk.

The study directory's layout is in the package docstring (:mod:`keras_runet.tuning`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from pathlib import Path

import keras_tuner

from keras_runet.config import TrainConfig
from keras_runet.tuning.hypermodel import RunetHyperModel
from keras_runet.tuning.oracles import make_objective, make_oracle
from keras_runet.tuning.results import StudyResult, write_study_results
from keras_runet.tuning.space import SearchSpace
from keras_runet.tuning.tuner import PROJECT_NAME, RunetTuner, read_executions, sort_trials
from tfds_camus.atomic import write_json

log = logging.getLogger(__name__)


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
    write_json(path, description)


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

    Example (a prepared camus ``builder``)::

        splits = fold_split_strings(builder, 1)
        result = run_search(
            "studies/fold1", builder.as_dataset(split=splits["train"]),
            builder.as_dataset(split=splits["validation"]),
            base_config=TrainConfig(epochs=30), oracle="bayesian", max_trials=20)
        result.best["dil"], result.best["shift"]
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


def _read_study(study_dir: Path) -> tuple[dict, SearchSpace]:
    path = study_dir / "study.json"
    if not path.exists():
        raise FileNotFoundError(f"{study_dir} holds no study (no study.json)")
    description = json.loads(path.read_text())
    return description, SearchSpace(**_space_kwargs(description["space"]))


def load_study(study_dir: str | os.PathLike) -> keras_tuner.Oracle:
    """The oracle of a study on disk (its trials, statuses and metrics), without running.

    Its trials are in trial-id order (:func:`~keras_runet.tuning.tuner.sort_trials`), so
    that KerasTuner's ranking breaks ties as ``results.csv`` does. A study whose search
    never started a trial has none.

    Raises:
        FileNotFoundError: ``study_dir`` holds no ``study.json`` (naming it).

    Example (a study on disk)::

        rows = trial_rows(load_study("studies/fold1"))
    """
    study_dir = Path(study_dir)
    description, space = _read_study(study_dir)
    oracle = make_oracle(
        description["oracle"],
        keras_tuner.Objective(description["objective"], direction=description["direction"]),
        max_trials=None if description["oracle"] == "hyperband" else 10**6,
        seed=description["seed"],
        space=space,
        max_epochs=max(2, int(description["train"]["epochs"])),
    )
    oracle._set_project_dir(str(study_dir), PROJECT_NAME)
    if (study_dir / PROJECT_NAME / "oracle.json").exists():  # written with the first trial
        oracle.reload()
        sort_trials(oracle)
    return oracle


def load_tuner(
    study_dir: str | os.PathLike, *, thresholds=None, eval_workers: int = 0
) -> RunetTuner:
    """The :class:`RunetTuner` of a study on disk, without searching: KerasTuner's API on it.

    Example (a finished study)::

        tuner = load_tuner("studies/fold1")
        tuner.results_summary()                  # KerasTuner's "Results summary"
        model = tuner.get_best_models(1)[0]      # trial_<best>/run/best.keras
        hp = tuner.get_best_hyperparameters(1)[0]

    For reading a study: its oracle has no trial limit (:func:`load_study`); continue a
    study with :func:`run_search`.

    Args:
        study_dir: a study directory (see the package docstring).
        thresholds, eval_workers: as for :func:`run_search`.

    Raises:
        FileNotFoundError: ``study_dir`` holds no study (naming it).
    """
    study_dir = Path(study_dir)
    description, space = _read_study(study_dir)
    hypermodel = RunetHyperModel(space, TrainConfig.from_json(description["train"]))
    return RunetTuner(
        hypermodel,
        load_study(study_dir),
        study_dir,
        thresholds=thresholds,
        eval_workers=eval_workers,
    )


def _space_kwargs(d: dict) -> dict:
    known = {f.name for f in dataclasses.fields(SearchSpace)}
    return {k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items() if k in known}
