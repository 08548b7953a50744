"""TensorBoard HParams data of a study, as KerasTuner's own tuners write it.

``tensorboard --logdir STUDY_DIR`` then shows the HParams dashboard: one row per trial with
its hyper-parameters and its final metrics (:data:`~keras_runet.tuning.METRICS`).

- The **experiment summary** (``hparams_config``: the search space's hyper-parameters with
  their domains, and the metrics) is one event file in KerasTuner's project folder,
  ``STUDY_DIR/keras_tuner/``, written once by the process that holds the oracle (the chief
  of a distributed study, or the single process) when the search starts
  (:func:`write_experiment`; a resumed study keeps the one on file).
- Each trial's **session** (its hyper-parameters, its metrics as scalars at step 0, then
  the session's end with its status) is one event file in its trial folder,
  ``STUDY_DIR/keras_tuner/trial_<id>/``, written by the process that ran the trial when it
  ends (:func:`write_session`). A trial run again (an interrupted one, retried on resume)
  replaces its earlier session, so that a trial is one run of the dashboard.

The hyper-parameters' domains are KerasTuner's own conversion (the one its tuners use when
a ``TensorBoard`` callback is passed to ``search``). Event files are written in a temporary
folder, then copied in place atomically (:func:`tfds_camus.atomic.write_bytes`): TensorBoard
never reads half a session.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import keras_tuner

from tfds_camus.atomic import write_bytes

#: What an event file's name contains (what TensorBoard looks for).
_EVENTS = "tfevents"


def hparams_of(hyperparameters: keras_tuner.HyperParameters) -> dict:
    """``{tensorboard HParam: value}`` for the hyper-parameters of ``hyperparameters.space``.

    KerasTuner's own conversion (``convert_hyperparams_to_hparams``): a ``Choice`` or a
    stepped ``Int`` / ``Float`` becomes a ``Discrete`` domain, a continuous one an
    interval. KerasTuner's bookkeeping values (Hyperband's ``tuner/epochs``, ...) are not
    in the space and are left out, as KerasTuner does.
    """
    from keras_tuner.src.engine import tuner_utils
    from tensorboard.plugins.hparams import api as hparams_api

    return tuner_utils.convert_hyperparams_to_hparams(hyperparameters, hparams_api)


def _write_events(folder: Path, write) -> Path:
    """Run ``write()`` under a summary writer of a temporary folder; copy its event file
    into ``folder`` atomically; return the copy."""
    import tensorflow as tf

    with tempfile.TemporaryDirectory() as tmp:
        writer = tf.summary.create_file_writer(tmp)
        with writer.as_default():
            write()
        writer.close()
        (event_file,) = Path(tmp).iterdir()
        return write_bytes(folder / event_file.name, event_file.read_bytes())


def _has_events(folder: str | os.PathLike) -> bool:
    """Whether ``folder`` itself (not its subfolders) holds an event file."""
    return any(Path(folder).glob(f"events.out.{_EVENTS}.*"))


def write_experiment(
    project_dir: str | os.PathLike,
    hyperparameters: keras_tuner.HyperParameters,
    metrics: Sequence[str],
    objective: keras_tuner.Objective | None = None,
) -> Path | None:
    """Write the experiment summary in ``project_dir``, unless one is there already.

    Args:
        project_dir: KerasTuner's project folder (``STUDY_DIR/keras_tuner``).
        hyperparameters: the search space (``oracle.get_space()``).
        metrics: the metrics' names (the scalar tags of every session).
        objective: described as the objective in the dashboard.

    Returns:
        The event file written, or None when the folder held one (a resumed study).
    """
    from tensorboard.plugins.hparams import api as hparams_api

    project_dir = Path(project_dir)
    if _has_events(project_dir):
        return None
    described = {}
    if objective is not None:
        described[objective.name] = f"the study's objective ({objective.direction}imised)"
    infos = [hparams_api.Metric(name, description=described.get(name)) for name in metrics]
    hparams = list(hparams_of(hyperparameters))
    return _write_events(project_dir, lambda: hparams_api.hparams_config(hparams, infos))


def write_session(
    run_dir: str | os.PathLike,
    hyperparameters: keras_tuner.HyperParameters,
    trial_id: str,
    metrics: Mapping[str, float] | None = None,
    *,
    failed: bool = False,
    start_time: float | None = None,
    end_time: float | None = None,
) -> Path:
    """Write one trial's session in ``run_dir``, replacing any earlier one there.

    Args:
        run_dir: the trial's folder (``STUDY_DIR/keras_tuner/trial_<id>``).
        hyperparameters: the trial's (``trial.hyperparameters``).
        trial_id: the session group's name (KerasTuner passes the trial id too).
        metrics: name -> final value, written as scalars at step 0 (None: none).
        failed: the session's status is FAILURE (else SUCCESS).
        start_time, end_time: seconds since the epoch (default: now).

    Returns:
        The event file.
    """
    import tensorflow as tf
    from tensorboard.plugins.hparams import api as hparams_api
    from tensorboard.plugins.hparams import api_pb2, summary

    run_dir = Path(run_dir)
    status = api_pb2.STATUS_FAILURE if failed else api_pb2.STATUS_SUCCESS
    end_time = time.time() if end_time is None else end_time

    def write():
        hparams_api.hparams(
            hparams_of(hyperparameters), trial_id=str(trial_id), start_time_secs=start_time
        )
        for name, value in (metrics or {}).items():
            tf.summary.scalar(name, float(value), step=0)
        end = summary.session_end_pb(status, end_time_secs=end_time)
        tf.summary.experimental.write_raw_pb(end.SerializeToString(), step=0)

    path = _write_events(run_dir, write)
    for earlier in run_dir.glob(f"*{_EVENTS}*"):  # a retried trial's earlier session
        if earlier.is_file() and earlier != path:
            earlier.unlink(missing_ok=True)
    return path
