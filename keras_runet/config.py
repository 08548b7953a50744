"""What defines a training run, declared once: :class:`TrainConfig` and :func:`train_config`.

Each field carries, in its ``metadata``, the help text of the command line and the flag that
sets it (``learning_rate`` is ``--lr``, ``dtype`` ``--mixed-precision``, ``augment``
``--no-augment``); ``keras_runet.commands._common.add_training_arguments`` generates the
training flags of ``runet train``, ``cv``, ``tune`` and ``demo`` from them, so a field added
here is a flag of every command, with the same name and default.

:func:`train_config` is the one way to build a checked configuration (the commands, the
notebooks and the tuner's base configuration go through it): every value is validated and a
bad one is a :class:`ConfigError` (a ``ValueError``) naming the field and the value.

This module imports neither TensorFlow nor Keras (``runet --help`` reads it).

>>> config = train_config(model="unet1", epochs=2, image_size=(64, 64), width=0.25)
>>> config.epochs, config.image_size, config.patience
(2, (64, 64), 20)
>>> train_config(shift=1.5)
Traceback (most recent call last):
    ...
keras_runet.config.ConfigError: shift must be within (0, 1) (it thresholds a probability), got 1.5
>>> parse_image_size("128x100")
Traceback (most recent call last):
    ...
ValueError: bad image size '128x100': two positive multiples of 32, e.g. 256x256
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

from tfds_camus.vocabulary import NUM_LABELS, STRUCTURES

__all__ = [
    "DISTRIBUTE_CHOICES",
    "DTYPE_CHOICES",
    "GRAPH_BACKENDS",
    "cpu_has_fast_bfloat16",
    "ROI_CLASSES",
    "ROI_KERNELS",
    "ConfigError",
    "TrainConfig",
    "cli_fields",
    "flag_of",
    "graph_backend_error",
    "parse_image_size",
    "train_config",
]

# The Keras backends whose models run inside the TensorFlow serving graph (export, predict):
# TensorFlow's own, and JAX's through jax2tf (keras_runet.export._forward_pass).
GRAPH_BACKENDS = ("tensorflow", "jax")


def graph_backend_error(what: str, backend: str) -> str:
    """The one-line refusal of ``what`` (the export, ``runet predict``) on ``backend``."""
    return (
        f"{what} needs the TensorFlow or JAX backend (its graph resizes, predicts and takes "
        f"the argmax in TensorFlow), and Keras runs on {backend!r} here: run it with "
        "KERAS_BACKEND=tensorflow or jax (a .keras file trained on any backend loads there)"
    )


# The mixed precision policies and distributions a run can ask for (None: off).
DTYPE_CHOICES = ("mixed_bfloat16", "mixed_float16")
# CPU flags (Linux /proc/cpuinfo) of hardware bfloat16 matmuls; without them TensorFlow
# emulates bfloat16 and a mixed_bfloat16 training step is several times SLOWER than float32
# (measured: 6-7x for U-Net 1 at 128 x 128 on an AVX2-only AMD EPYC; benchmarks/RESULTS.md).
_BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_has_fast_bfloat16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    r"""Whether this CPU multiplies bfloat16 in hardware (AVX512_BF16 or AMX-BF16).

    Only then is ``mixed_bfloat16`` faster than float32 on the CPU (~1.8x with AVX512_BF16);
    elsewhere it is emulated and slower. False when ``cpuinfo`` cannot be read (not Linux).

    >>> import tempfile, pathlib
    >>> info = pathlib.Path(tempfile.mkdtemp()) / "cpuinfo"
    >>> _ = info.write_text("flags\t\t: fpu avx2 avx512f avx512_bf16\n")
    >>> cpu_has_fast_bfloat16(str(info)), cpu_has_fast_bfloat16("/no/such/file")
    (True, False)
    """
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith("flags"):
                    flags = set(line.partition(":")[2].split())
                    return any(f in flags for f in _BF16_CPU_FLAGS)
    except OSError:
        return False
    return False


DISTRIBUTE_CHOICES = ("mirrored", "multiworker")

# Which classes of the first U-Net form RU-Net's region of interest (the paper says "the
# segmentation of the first network", not which labels): every structure (LV cavity,
# myocardium, left atrium: what this package always did), or the LV epicardium only (cavity
# and myocardium, the structures the paper evaluates; tfds_camus.vocabulary.STRUCTURES).
ROI_CLASSES: dict[str, tuple[int, ...]] = {
    "all": tuple(range(1, NUM_LABELS)),
    "lvepi": STRUCTURES["LVepi"],
}
# The shape of the fixed kernel that dilates the ROI (keras_runet.layers.DILATION_LAYERS):
# a box of side dil (this package's reading of "convolution-based dilation"), or a disk of
# diameter dil (the same reach along the axes, no longer reach along the diagonals).
ROI_KERNELS = ("box", "disk")


def _field(default, help: str, *, flag: str | None = None, cli: bool = True, **extra):
    """A dataclass field with its command-line declaration in ``metadata``.

    ``flag``: the option (default ``--`` + the name with dashes); ``cli=False``: not a
    training flag (the model is chosen by each command's own ``--model`` / ``--models``).
    ``extra``: ``choices``, ``metavar``, ``negate`` (a ``store_false`` flag for a bool).
    """
    metadata = {"help": help, "cli": cli, **extra}
    if flag is not None:
        metadata["flag"] = flag
    return dataclasses.field(default=default, metadata=metadata)


@dataclasses.dataclass
class TrainConfig:
    """Everything that defines a training run (saved as ``config.json``).

    Build one through :func:`train_config` (validated); the field list and each field's
    meaning are in the ``help`` of its metadata (``runet train --help`` prints them).
    """

    model: str = _field("runet", "unet1, shg or runet", cli=False)
    dil: int = _field(11, "RU-Net dilation kernel size, pixels (its attention's dil)")
    shift: float = _field(0.5, "RU-Net first binarisation threshold, within (0, 1)")
    roi_classes: str = _field(
        "all",
        "classes of the first segmentation that form RU-Net's region of interest: all "
        "(LV cavity + myocardium + left atrium) or lvepi (LV cavity + myocardium)",
        choices=tuple(ROI_CLASSES),
    )
    roi_slope: float = _field(100.0, "slope of RU-Net's two parametric sigmoids (paper: 100)")
    roi_kernel: str = _field(
        "box",
        "shape of RU-Net's dilation kernel: box (side dil) or disk (diameter dil)",
        choices=ROI_KERNELS,
    )
    width: float = _field(1.0, "filter multiplier (1.0: the paper's models)")
    image_size: tuple[int, int] = _field(
        (256, 256), "model input HxW, multiples of 32", metavar="HxW"
    )
    epochs: int = _field(100, "maximum number of epochs")
    batch_size: int = _field(8, "images per step (the global batch under a strategy)")
    learning_rate: float = _field(1e-3, "Adam learning rate (paper: 1e-3)", flag="--lr")
    loss_weights: dict[str, float] | None = _field(None, "weight per output", cli=False)
    patience: int = _field(20, "early stopping on val_segmentation_dice, in epochs (0: off)")
    augment: bool = _field(
        True, "no data augmentation (random rotation, zoom, shift, gamma, contrast)",
        flag="--no-augment", negate=True,
    )  # fmt: skip
    seed: int = _field(0, "seeds the weights, shuffling and augmentation")
    dtype: str | None = _field(
        None,
        "mixed precision policy (bfloat16: CPUs with AVX512_BF16 or AMX, recent GPUs; "
        "default: off)",
        flag="--mixed-precision", choices=DTYPE_CHOICES,
    )  # fmt: skip
    distribute: str | None = _field(
        None, "mirrored: every local device (tf.distribute's MirroredStrategy; on JAX "
        "keras.distribution.DataParallel); multiworker: TF_CONFIG, TensorFlow only "
        "(default: none)",
        choices=DISTRIBUTE_CHOICES,
    )  # fmt: skip
    steps_per_epoch: int | None = _field(
        None, "batches per epoch (default: one pass over the training split)"
    )
    run_eagerly: bool = _field(
        False, "no graph tracing (faster only for tiny models on CPU, e.g. smoke tests)"
    )
    include_background: bool = _field(
        False,
        "count the background in the Dice loss (else the first U-Net may never predict "
        "background, and the ROI mask keeps the whole image: see val_roi_fraction)",
    )
    preset: str = _field(
        "default",
        "the preset the other values started from (keras_runet.presets; the flag --preset)",
        cli=False,
    )

    def build_kwargs(self) -> dict:
        """The keyword arguments of :func:`keras_runet.models.build_model` for this run
        (the attention's options are ignored by the models without one).

        >>> TrainConfig(roi_classes="lvepi").build_kwargs()["foreground_classes"]
        (1, 2)
        """
        return {
            "input_shape": (*self.image_size, 1),
            "dil": self.dil,
            "shift": self.shift,
            "foreground_classes": ROI_CLASSES[self.roi_classes],
            "slope": self.roi_slope,
            "kernel": self.roi_kernel,
            "width": self.width,
            "dtype": self.dtype,
        }

    def to_json(self) -> dict:
        d = dataclasses.asdict(self)
        d["image_size"] = list(self.image_size)
        return d

    @classmethod
    def from_json(cls, d: dict) -> TrainConfig:
        d = dict(d)
        d["image_size"] = tuple(d.get("image_size", (256, 256)))
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


class ConfigError(ValueError):
    """A bad value of a :class:`TrainConfig` field; ``field`` names it, ``value`` is it.

    ``str(err)`` reads ``"<field> <requirement>, got <value>"``; :meth:`for_flag` says the
    same with the command-line flag instead of the field name.
    """

    def __init__(self, field: str, value: Any, requirement: str):
        self.field, self.value, self.requirement = field, value, requirement
        super().__init__(f"{field} {requirement}, got {value!r}")

    def for_flag(self) -> str:
        return f"{flag_of(self.field)} {self.requirement}, got {self.value!r}"


def flag_of(name: str) -> str:
    """The command-line flag of field ``name`` (``learning_rate`` -> ``--lr``)."""
    field = _FIELDS[name]
    return field.metadata.get("flag", "--" + name.replace("_", "-"))


def cli_fields() -> list[dataclasses.Field]:
    """The fields of :class:`TrainConfig` that are command-line flags, in declaration order."""
    return [f for f in dataclasses.fields(TrainConfig) if f.metadata.get("cli", True)]


def parse_image_size(value) -> tuple[int, int]:
    """``"256x256"``, ``"256"`` (square), ``"256,192"`` or a pair -> ``(H, W)``; each a
    positive multiple of 32 (the networks halve the size five times)."""
    if isinstance(value, str):
        try:
            parts = [int(p) for p in value.lower().replace("x", ",").split(",")]
        except ValueError:
            raise ValueError(f"bad image size {value!r}: use e.g. 256x256") from None
        if len(parts) == 1:
            parts = parts * 2
    else:
        try:
            parts = [int(p) for p in value]
        except (TypeError, ValueError):
            raise ValueError(f"bad image size {value!r}: use e.g. (256, 256)") from None
        if any(int(p) != p for p in value):
            parts = []
    if len(parts) != 2 or any(p <= 0 or p % 32 for p in parts):
        raise ValueError(f"bad image size {value!r}: two positive multiples of 32, e.g. 256x256")
    return parts[0], parts[1]


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _positive_finite(value) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    )


def _model_names() -> tuple[str, ...]:
    from tfds_camus.vocabulary import MODELS

    return tuple(MODELS)


def train_config(**values) -> TrainConfig:
    """A :class:`TrainConfig` of ``values`` (the other fields at their defaults), checked.

    Raises:
        ConfigError: (a ``ValueError``) an unknown field, or a value out of its range,
            naming the field and the value.
    """
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(values) - fields)
    if unknown:
        raise ConfigError(unknown[0], values[unknown[0]], "is not a TrainConfig field")
    v = {**dataclasses.asdict(TrainConfig()), **values}

    def check(name: str, ok: bool, requirement: str) -> None:
        if not ok:
            raise ConfigError(name, v[name], requirement)

    models = _model_names()
    check("model", v["model"] in models, f"must be one of {', '.join(models)}")
    for name in ("epochs", "batch_size", "dil"):
        check(name, _is_int(v[name]) and v[name] >= 1, "must be at least 1")
    check("learning_rate", _positive_finite(v["learning_rate"]), "must be a positive number")
    check("width", _positive_finite(v["width"]), "must be a positive number")
    check("roi_slope", _positive_finite(v["roi_slope"]), "must be a positive number")
    check("roi_classes", v["roi_classes"] in ROI_CLASSES, f"must be {' or '.join(ROI_CLASSES)}")
    check("roi_kernel", v["roi_kernel"] in ROI_KERNELS, f"must be {' or '.join(ROI_KERNELS)}")
    from keras_runet.presets import PRESETS

    check("preset", v["preset"] in PRESETS, f"must be one of {', '.join(PRESETS)}")
    check(
        "shift",
        isinstance(v["shift"], (int, float))
        and not isinstance(v["shift"], bool)
        and 0 < v["shift"] < 1,
        "must be within (0, 1) (it thresholds a probability)",
    )
    check("patience", _is_int(v["patience"]) and v["patience"] >= 0, "must be 0 (off) or more")
    check("seed", _is_int(v["seed"]) and 0 <= v["seed"] < 2**32, "must be within 0..2**32-1")
    try:
        v["image_size"] = parse_image_size(v["image_size"])
    except ValueError:
        check("image_size", False, "must be two positive multiples of 32, e.g. (256, 256)")
    spe = v["steps_per_epoch"]
    check("steps_per_epoch", spe is None or (_is_int(spe) and spe >= 1), "must be at least 1")
    check(
        "dtype",
        v["dtype"] in (None, "float32", *DTYPE_CHOICES),
        f"must be None, float32, {' or '.join(DTYPE_CHOICES)}",
    )
    check(
        "distribute",
        v["distribute"] in (None, *DISTRIBUTE_CHOICES),
        f"must be None, {' or '.join(DISTRIBUTE_CHOICES)}",
    )
    for name in ("augment", "run_eagerly", "include_background"):
        check(name, isinstance(v[name], bool), "must be True or False")
    weights = v["loss_weights"]
    check(
        "loss_weights",
        weights is None
        or (
            isinstance(weights, Mapping)
            and all(
                isinstance(k, str) and isinstance(w, (int, float)) and math.isfinite(w) and w >= 0
                for k, w in weights.items()
            )
        ),
        "must be None or {output name: a number >= 0}",
    )
    if weights is not None:
        v["loss_weights"] = {k: float(w) for k, w in weights.items()}
    for name in ("learning_rate", "width", "shift", "roi_slope"):
        v[name] = float(v[name])
    return TrainConfig(**v)


_FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}
