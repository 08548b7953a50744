"""Training one model on one split, resumable, with the paper's settings by default.

:func:`train` builds (or resumes) a model, fits it and leaves in its run directory:

```
run_dir/
  config.json           the TrainConfig of the run (keras_runet.config: declared there,
                        with its checks, :func:`~keras_runet.config.train_config`)
  last.keras            the full model after the last finished epoch (optimizer included),
  state.json            written atomically, with the epoch number: what a rerun resumes from
  best.keras            the best model by `val_segmentation_dice`, replaced atomically
  history.csv           one row per epoch (CSVLogger; on resume, rows of epochs that are
                        not in last.keras are dropped before it appends); plot_history
                        draws it
  tensorboard/          TensorBoard logs
  done.json             written when training ends (epochs run, best score): a rerun skips
```

Resume: running :func:`train` again with the same run directory after an interruption
(a killed process, an exception in a callback) reloads ``last.keras`` and continues at the
next epoch; the best-checkpoint threshold is restored from ``history.csv`` so that a worse
epoch after the restart cannot overwrite ``best.keras``.

A non-finite loss (a learning rate too high, bad data) stops the run at once with
:class:`NonFiniteLossError`: no ``done.json``, and ``last.keras`` / ``best.keras`` keep the
last finite epoch (nothing is saved from the epoch that diverged).

Distribution: ``distribute="mirrored"`` builds and trains under
``tf.distribute.MirroredStrategy`` (all local GPUs; without GPUs, the logical CPU
devices); ``"multiworker"`` under ``MultiWorkerMirroredStrategy``, configured by the
``TF_CONFIG`` environment variable as usual for tf.distribute. On the JAX backend,
``"mirrored"`` is ``keras.distribution.DataParallel`` over every local device (the global
batch must divide among them), and ``"multiworker"`` is refused (see :func:`get_strategy`).
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
from collections.abc import Mapping
from pathlib import Path

import keras

import keras_runet.models  # noqa: F401  (registers the custom objects: last.keras reloads)
from keras_runet.config import TrainConfig, train_config
from tfds_camus.atomic import atomic_path, write_json

__all__ = [
    "MONITOR",
    "BestCheckpoint",
    "EpochCheckpoint",
    "NonFiniteLossError",
    "ProgressLine",
    "StopOnNonFiniteLoss",
    "TrainConfig",
    "TrainResult",
    "atomic_save_model",
    "atomic_write_json",
    "build_and_compile",
    "check_jax_distribution",
    "get_strategy",
    "plot_history",
    "read_history",
    "train",
    "train_config",
    "truncate_history",
]

log = logging.getLogger(__name__)

MONITOR = "val_segmentation_dice"


def atomic_write_json(path: str | os.PathLike, data) -> None:
    """Write JSON atomically (:func:`tfds_camus.atomic.write_json`): readers never see half
    a file."""
    write_json(path, data)


def atomic_save_model(model: keras.Model, path: str | os.PathLike) -> None:
    """``model.save`` atomically (:func:`tfds_camus.atomic.atomic_path`)."""
    with atomic_path(path, suffix=".keras") as tmp:
        model.save(tmp)


class NonFiniteLossError(RuntimeError):
    """Training produced a NaN or infinite loss and was stopped."""


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Stops training at the first non-finite batch loss and remembers where.

    Unlike ``keras.callbacks.TerminateOnNaN``, it lets the checkpoints below know, so that
    nothing of the diverged epoch is saved.
    """

    def __init__(self):
        super().__init__()
        self.failed: tuple[int, int, float] | None = None  # (epoch, batch, loss)
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)) and self.failed is None:
            self.failed = (self._epoch, batch, float(loss))
            self.model.stop_training = True


class EpochCheckpoint(keras.callbacks.Callback):
    """Saves the full model (optimizer included) and the epoch number after every epoch.

    ``last.keras`` and then ``state.json`` are each replaced atomically; ``state.json`` is
    written last, so it never names an epoch whose model is not on disk. Nothing is saved
    for an epoch whose loss was not finite (``guard``).
    """

    def __init__(self, run_dir: str | os.PathLike, guard: StopOnNonFiniteLoss | None = None):
        super().__init__()
        self.run_dir = Path(run_dir)
        self.guard = guard

    def on_epoch_end(self, epoch, logs=None):
        if self.guard is not None and self.guard.failed is not None:
            return
        atomic_save_model(self.model, self.run_dir / "last.keras")
        atomic_write_json(self.run_dir / "state.json", {"epoch": epoch + 1})


class BestCheckpoint(keras.callbacks.Callback):
    """``best.keras``: the model of the best epoch by ``monitor`` (max), replaced atomically
    (``keras.callbacks.ModelCheckpoint`` writes in place: a kill can leave 0 bytes)."""

    def __init__(
        self,
        path: str | os.PathLike,
        monitor: str = MONITOR,
        best: float | None = None,
        guard: StopOnNonFiniteLoss | None = None,
    ):
        super().__init__()
        self.path, self.monitor, self.best, self.guard = Path(path), monitor, best, guard

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None or not math.isfinite(float(value)):
            return
        if self.guard is not None and self.guard.failed is not None:
            return
        if self.best is None or float(value) > self.best:
            self.best = float(value)
            atomic_save_model(self.model, self.path)


def truncate_history(path: str | os.PathLike, epochs: int) -> None:
    """Keeps only the rows of ``history.csv`` for epochs before ``epochs`` (atomically): a
    kill between the history row and the checkpoint must not leave an epoch twice."""
    path = Path(path)
    if not path.exists():
        return
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        return
    header, body = rows[0], rows[1:]
    try:
        col = header.index("epoch")
    except ValueError:
        return
    kept = [r for r in body if r and r[col].strip().isdigit() and int(r[col]) < epochs]
    if len(kept) == len(body):
        return
    text = io.StringIO(newline="")
    writer = csv.writer(text)
    writer.writerow(header)
    writer.writerows(kept)
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        f.write(text.getvalue())


class ProgressLine(keras.callbacks.Callback):
    """One log line per epoch (for runs without Keras's progress bar)."""

    def __init__(self, prefix: str, epochs: int):
        super().__init__()
        self.prefix, self.epochs = prefix, epochs

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        keys = ("loss", "val_loss", "segmentation_dice", MONITOR)
        text = " ".join(f"{k}={logs[k]:.4f}" for k in keys if k in logs)
        log.info("%s epoch %d/%d %s", self.prefix, epoch + 1, self.epochs, text)


def read_history(path: str | os.PathLike) -> list[dict]:
    """Rows of ``history.csv`` (floats), one per epoch, the last write of an epoch winning."""
    path = Path(path)
    if not path.exists():
        return []
    by_epoch: dict[int, dict] = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            try:
                epoch = int(row["epoch"])
            except (KeyError, ValueError):
                continue
            by_epoch[epoch] = {
                k: (float(v) if v not in ("", None) else math.nan) for k, v in row.items()
            }
    return [by_epoch[e] for e in sorted(by_epoch)]


def plot_history(histories: Mapping[str, str | os.PathLike], path: str | os.PathLike):
    """Training curves: loss and segmentation Dice per epoch, training (solid) and
    validation (dashed), of each run's ``history.csv``; written atomically to ``path``.

    Args:
        histories: ``{label: history.csv path}`` (e.g. one per model); missing or empty
            files are left out.
        path: the PNG to write.

    Returns:
        ``path``, or None when no history had a row (nothing is written).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 3.6))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2)
    drawn = False
    for label, history_path in histories.items():
        hist = read_history(history_path)
        if not hist:
            continue
        epochs = [int(h["epoch"]) + 1 for h in hist]
        for ax, key in zip(axes, ("loss", "segmentation_dice"), strict=True):
            ax.plot(epochs, [h.get(key, math.nan) for h in hist], label=f"{label} train")
            ax.plot(epochs, [h.get(f"val_{key}", math.nan) for h in hist], "--",
                    label=f"{label} val")  # fmt: skip
        drawn = True
    if not drawn:
        return None
    axes[0].set(xlabel="epoch", ylabel="loss (sum of outputs' Dice losses)", title="Loss")
    axes[1].set(xlabel="epoch", ylabel="Dice (LV, myocardium, LA)", title="Segmentation Dice")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110)
    return Path(path)


def get_strategy(distribute: str | None):
    """The distribution of a run, on Keras's backend: anything with a ``scope()``.

    TensorFlow: the ``tf.distribute`` strategy (None: the default strategy). JAX: a
    ``keras.distribution.DataParallel`` over every local device for ``"mirrored"`` (what
    MirroredStrategy is on TensorFlow: the batch split over the devices, the weights
    replicated), a do-nothing scope for None. ``"multiworker"`` is tf.distribute's
    (``TF_CONFIG``) and is refused on JAX with one line.
    """
    if keras.config.backend() == "jax":
        return _jax_distribution(distribute)
    import tensorflow as tf

    if distribute in (None, "", "none"):
        return tf.distribute.get_strategy()
    if distribute == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        if gpus:
            return tf.distribute.MirroredStrategy()
        # No GPU: mirror over the logical CPU devices (one per
        # tf.config.set_logical_device_configuration entry), e.g. to test on a laptop.
        cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices=cpus)
    if distribute == "multiworker":
        if "TF_CONFIG" not in os.environ:
            raise ValueError("distribute='multiworker' needs the TF_CONFIG environment variable")
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"unknown distribute option {distribute!r}: use mirrored or multiworker")


# Why multiworker is refused on JAX.
_JAX_MULTIWORKER = (
    "tf.distribute's MultiWorkerMirroredStrategy (TF_CONFIG) runs on the TensorFlow backend "
    "only: use KERAS_BACKEND=tensorflow, or 'mirrored' for the devices of this machine on JAX"
)


class _NoDistribution:
    """The JAX backend's default: one device, nothing to enter."""

    num_replicas_in_sync = 1

    def scope(self):
        return contextlib.nullcontext()


def check_jax_distribution(config: TrainConfig) -> None:
    """On JAX, a ValueError (one line) for a distribution that cannot run: multiworker, or a
    batch that does not divide among the devices."""
    if keras.config.backend() != "jax":
        return
    replicas = _jax_distribution(config.distribute).num_replicas_in_sync
    if config.batch_size % replicas:
        raise ValueError(
            f"batch_size {config.batch_size} does not divide among the {replicas} devices of "
            "distribute='mirrored' on JAX: use a multiple of that"
        )


def _jax_distribution(distribute: str | None):
    if distribute in (None, "", "none"):
        return _NoDistribution()
    if distribute == "mirrored":
        devices = keras.distribution.list_devices()
        distribution = keras.distribution.DataParallel(devices=devices)
        distribution.num_replicas_in_sync = len(devices)  # as tf.distribute strategies say
        return distribution
    if distribute == "multiworker":
        raise ValueError(f"distribute='multiworker': {_JAX_MULTIWORKER}")
    raise ValueError(f"unknown distribute option {distribute!r}: use mirrored or multiworker")


def build_and_compile(config: TrainConfig) -> keras.Model:
    """The model of a :class:`TrainConfig`, compiled with :func:`~keras_runet.models.compile_model`."""
    from keras_runet.models import build_model, compile_model

    model = build_model(config.model, **config.build_kwargs())
    return compile_model(
        model,
        learning_rate=config.learning_rate,
        loss_weights=config.loss_weights,
        include_background=config.include_background,
    )


@dataclasses.dataclass
class TrainResult:
    """What :func:`train` returns."""

    run_dir: Path
    best_path: Path
    epochs_run: int
    best_score: float
    resumed_from: int
    skipped: bool
    history: list[dict]


def train(
    config: TrainConfig,
    train_examples,
    val_examples,
    run_dir: str | os.PathLike,
    *,
    callbacks: list | None = None,
    verbose: int | str = "auto",
    num_train_examples: int | None = None,
    force: bool = False,
) -> TrainResult:
    """Train (or resume, or skip) one model; see the module docstring for the run directory.

    Args:
        config: the :class:`TrainConfig`.
        train_examples, val_examples: TFDS camus splits (``tf.data.Dataset`` of example
            dicts), e.g. ``builder.as_dataset(split=tfds_camus.fold_splits(k)["train"])``.
        run_dir: the run directory (created).
        callbacks: extra Keras callbacks.
        verbose: passed to ``fit`` (1: progress bar, 2: a line per epoch).
        num_train_examples: size of the training split (counted when None).
        force: retrain even if ``done.json`` says this run finished.

    Returns:
        A :class:`TrainResult`.
    """
    from keras_runet.data import Augmentation, dataset_size, make_dataset, steps_per_epoch

    check_jax_distribution(config)  # before any file is written
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    config_path = run_dir / "config.json"
    if config_path.exists() and not force:
        previous = TrainConfig.from_json(json.loads(config_path.read_text()))
        if previous != config:
            raise ValueError(
                f"{run_dir} holds a run with another configuration ({config_path}); "
                "use another run directory, or force=True to start over"
            )
    done_path = run_dir / "done.json"
    if done_path.exists() and not force:
        done = json.loads(done_path.read_text())
        log.info("%s: already trained (%d epochs), skipping", run_dir, done["epochs_run"])
        return TrainResult(
            run_dir, run_dir / "best.keras", done["epochs_run"], done["best_score"],
            done["epochs_run"], True, read_history(run_dir / "history.csv"),
        )  # fmt: skip
    if force:
        for name in ("done.json", "state.json", "last.keras", "history.csv", "best.keras"):
            (run_dir / name).unlink(missing_ok=True)
    atomic_write_json(run_dir / "config.json", config.to_json())
    keras.utils.set_random_seed(config.seed)

    strategy = get_strategy(config.distribute)
    state_path = run_dir / "state.json"
    initial_epoch = 0
    with strategy.scope():
        if state_path.exists() and (run_dir / "last.keras").exists():
            initial_epoch = int(json.loads(state_path.read_text())["epoch"])
            model = keras.saving.load_model(run_dir / "last.keras")
            log.info("%s: resuming after epoch %d", run_dir, initial_epoch)
        else:
            model = build_and_compile(config)
    if config.run_eagerly:
        model.run_eagerly = True

    n_train = num_train_examples or dataset_size(train_examples)
    steps = config.steps_per_epoch or steps_per_epoch(n_train, config.batch_size)
    outputs = list(model.output_names)
    common = dict(batch_size=config.batch_size, image_size=config.image_size)
    drop = config.distribute is not None
    train_ds = make_dataset(
        train_examples,
        outputs,
        training=True,
        augmentation=Augmentation() if config.augment else None,
        seed=config.seed,
        first_example=initial_epoch * steps * config.batch_size,
        drop_remainder=drop,
        **common,
    )
    val_ds = make_dataset(val_examples, outputs, training=False, **common)

    truncate_history(run_dir / "history.csv", initial_epoch)
    history_rows = read_history(run_dir / "history.csv")
    best_so_far = max(
        (
            r[MONITOR]
            for r in history_rows[:initial_epoch]
            if not math.isnan(r.get(MONITOR, math.nan))
        ),
        default=None,
    )
    guard = StopOnNonFiniteLoss()
    cbs = [
        guard,
        BestCheckpoint(run_dir / "best.keras", MONITOR, best_so_far, guard),
        keras.callbacks.CSVLogger(run_dir / "history.csv", append=initial_epoch > 0),
        keras.callbacks.TensorBoard(run_dir / "tensorboard", write_graph=False),
    ]
    if not verbose:
        cbs.append(ProgressLine(f"{run_dir.parent.name}/{run_dir.name}", config.epochs))
    if config.patience:
        cbs.append(
            keras.callbacks.EarlyStopping(
                monitor=MONITOR, mode="max", patience=config.patience, restore_best_weights=False
            )
        )
    # Last, so that a checkpoint exists only for an epoch whose other callbacks finished.
    cbs.append(EpochCheckpoint(run_dir, guard))
    cbs = (callbacks or []) + cbs

    # A JAX distribution must be active while fit runs too (it lays out every batch); a
    # tf.distribute strategy is remembered by the model it built.
    fit_scope = strategy.scope() if keras.config.backend() == "jax" else contextlib.nullcontext()
    if initial_epoch < config.epochs:
        with fit_scope:
            model.fit(
                train_ds,
                validation_data=val_ds,
                epochs=config.epochs,
                initial_epoch=initial_epoch,
                steps_per_epoch=steps,
                callbacks=cbs,
                verbose=verbose,
                shuffle=False,  # the dataset is shuffled, seeded, by make_dataset
            )
    if guard.failed is not None:
        epoch, batch, loss = guard.failed
        kept = json.loads(state_path.read_text())["epoch"] if state_path.exists() else 0
        raise NonFiniteLossError(
            f"{run_dir}: the training loss became {loss} at epoch {epoch + 1}, batch "
            f"{batch + 1}; training stopped. last.keras and best.keras keep epoch {kept} "
            f"(the last finite one{'' if kept else ': none'}). Lower the learning rate "
            f"(now {config.learning_rate:g}) or check the data, then rerun with --force."
        )
    history = read_history(run_dir / "history.csv")
    scores = [r.get(MONITOR, math.nan) for r in history]
    finite = [s for s in scores if not math.isnan(s)]
    best = max(finite) if finite else math.nan
    if not (run_dir / "best.keras").exists():
        # No finite validation score at all (e.g. no validation image): keep the last model.
        atomic_save_model(model, run_dir / "best.keras")
    atomic_write_json(
        done_path,
        {"epochs_run": len(history), "best_score": best, "monitor": MONITOR},
    )
    return TrainResult(
        run_dir, run_dir / "best.keras", len(history), best, initial_epoch, False, history
    )
