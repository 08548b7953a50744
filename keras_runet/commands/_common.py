"""The errors, options and checks shared by the subcommands.

Kept light: nothing here imports TensorFlow, Keras or ``tfds_camus`` at module level
(``runet --help`` builds every parser); the heavy imports are inside the functions that
need them.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path


def model_choices() -> tuple[str, ...]:
    """The model names of the command line: ``tfds_camus.vocabulary.MODELS`` (imported when
    a command's parser is built, not for ``runet --help``)."""
    from tfds_camus.vocabulary import MODELS

    return tuple(MODELS)


class UsageError(Exception):
    """A mistake of the user's (bad path, unknown name, ...): one line, exit code 2."""


class RunFailed(Exception):
    """The work itself failed (e.g. the training diverged): one line, exit code 1."""


def keras_verbosity(bar: bool = True) -> int:
    """Keras ``verbose`` for ``fit``: 1 (the progress bar) when ``bar`` and stdout is a
    terminal; 2 (one line per epoch) when stdout is a file or a pipe, so that log files get no
    ANSI bars; 0 without ``bar`` (the library's own line per epoch)."""
    if not bar:
        return 0
    return 1 if sys.stdout.isatty() else 2


def setup_logging(verbose: bool = False) -> None:
    """Library log lines (one per fold / epoch / trial) on stderr, TF's chatter off."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(message)s",
        datefmt="%H:%M:%S",
    )
    for noisy in ("absl", "tensorflow", "h5py", "matplotlib", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:  # absl logs through its own handler once TF is imported
        from absl import logging as absl_logging

        absl_logging.set_verbosity(absl_logging.WARNING)
    except ImportError:
        pass


def existing_dir(value: str, what: str) -> Path:
    path = Path(value).expanduser()
    if not path.is_dir():
        raise UsageError(f"{what} {value!r} does not exist or is not a folder")
    return path


def output_dir(value: str, what: str = "--out") -> Path:
    """The output folder of a command, created, and checked writable up front (a long run
    must not fail at its end because of it)."""
    import tempfile

    path = Path(value).expanduser()
    if path.exists() and not path.is_dir():
        raise UsageError(f"{what} {value!r} exists and is not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as err:
        raise UsageError(f"{what} {value!r} cannot be written to ({err.strerror or err})") from None
    return path


def parse_models(value: str) -> list[str]:
    names = [m.strip().lower() for m in value.split(",") if m.strip()]
    bad = [m for m in names if m not in model_choices()]
    if bad or not names:
        raise UsageError(
            f"unknown model {', '.join(bad) or repr(value)}; choose from {', '.join(model_choices())}"
        )
    return names


def parse_folds(value: str) -> list[int]:
    """'1', '1,3', '1-10' or 'all' -> fold numbers within 1..10."""
    folds: list[int] = []
    text = value.strip().lower()
    if text == "all":
        return list(range(1, 11))
    try:
        for part in text.split(","):
            if "-" in part:
                a, b = part.split("-", 1)
                folds.extend(range(int(a), int(b) + 1))
            elif part.strip():
                folds.append(int(part))
    except ValueError:
        raise UsageError(f"bad fold {value!r}: use e.g. 1, 1,3 or 1-10") from None
    bad = [k for k in folds if not 1 <= k <= 10]
    if bad or not folds:
        raise UsageError(f"bad fold {value!r}: folds are numbered 1 to 10")
    return sorted(set(folds))


def image_size(value: str) -> tuple[int, int]:
    """argparse type of ``--image-size``: ``256x256`` (or ``256``) -> ``(256, 256)``."""
    from keras_runet.config import parse_image_size

    try:
        return parse_image_size(value)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def add_data_arguments(p: argparse.ArgumentParser, *, required: bool = True) -> None:
    """``--data-dir`` (required unless ``required=False``: the command checks it), ``--manual-dir``
    and ``--config``."""
    g = p.add_argument_group("data")
    g.add_argument(
        "--data-dir",
        required=required,
        help="TFDS data dir holding the prepared camus dataset (see `runet prepare`)",
    )
    g.add_argument(
        "--manual-dir",
        help="CAMUS folder (either release, or a synthetic one): prepare the dataset "
        "first if it is not in --data-dir yet",
    )
    g.add_argument("--config", default="256", help="camus builder config (default: 256)")


# The one default of --workers: evaluation is a small part of a run, and two processes
# keep its memory low next to a training process (more: give --workers).
DEFAULT_WORKERS = 2


def add_workers_argument(p) -> None:
    """``--workers N``: the evaluation's worker processes, the same in every command."""
    p.add_argument(
        "--workers",
        type=int,
        default=DEFAULT_WORKERS,
        help=f"evaluation worker processes (default: {DEFAULT_WORKERS}; 0 or 1: in this process)",
    )


def add_postprocess_argument(p) -> None:
    """``--postprocess [{raw,post,both}]``, the same in ``runet cv`` and ``runet evaluate``:
    absent "raw", bare "post" (the switch of earlier versions). The modes are
    :data:`keras_runet.evaluation.postprocess.POSTPROCESS_MODES` (imported when the
    command's parser is built, not for ``runet --help``)."""
    from keras_runet.evaluation.postprocess import POSTPROCESS_MODES

    p.add_argument(
        "--postprocess",
        nargs="?",
        const="post",
        default="raw",
        choices=POSTPROCESS_MODES,
        help="evaluate the predictions raw (the default; the RU-Net paper's outliers), post "
        "(the CAMUS post-processing: largest component of each structure, holes filled; "
        "what a bare --postprocess means) or both (the same predictions evaluated twice: "
        "the tables of the raw ones, plus per_image_postprocessed.csv and a "
        "'Post-processed predictions' section with the effect of the post-processing)",
    )


def add_thresholds_argument(p) -> None:
    """``--thresholds JSON``, the same in ``runet cv``, ``runet evaluate`` and ``runet predict``
    (read by :func:`thresholds_from_args`)."""
    p.add_argument(
        "--thresholds",
        metavar="JSON",
        help="JSON file overriding outlier thresholds (fields of OutlierThresholds, e.g. "
        "from `runet thresholds`); default: the paper's Table I",
    )


def thresholds_from_args(args):
    """The :class:`~keras_runet.evaluation.OutlierThresholds` of ``--thresholds``
    (:func:`keras_runet.prediction_files.read_thresholds`; Table I without the flag); a bad
    file is a UsageError naming it."""
    from keras_runet.prediction_files import PredictionFileError, read_thresholds

    try:
        return read_thresholds(args.thresholds)
    except PredictionFileError as err:
        raise UsageError(f"--thresholds {err}") from None


def workers_from_args(args) -> int:
    if args.workers < 0:
        raise UsageError(f"--workers must be 0 or more, got {args.workers}")
    return args.workers


# The namespace attributes where add_training_arguments leaves what train_config_from_args
# needs besides the flags' values: the flags given on the command line, the command's own
# defaults (tune: the epochs of a trial).
_GIVEN = "_training_flags_given"
_COMMAND_DEFAULTS = "_training_command_defaults"


class _TrainingFlag(argparse.Action):
    """Stores a training flag's value and notes that it was given (it overrides the preset)."""

    def __init__(self, option_strings, dest, nargs=None, const=None, **kwargs):
        super().__init__(option_strings, dest, nargs=nargs, const=const, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, self.const if self.nargs == 0 else values)
        setattr(namespace, _GIVEN, {*getattr(namespace, _GIVEN, ()), self.dest})


def add_training_arguments(
    p,
    *,
    title: str = "training",
    defaults: Mapping | None = None,
    exclude: Iterable[str] = (),
    only: Iterable[str] | None = None,
    default_note: str | None = None,
):
    """The training flags, one per :class:`~keras_runet.config.TrainConfig` field (its
    metadata: flag, help, choices), with the dataclass's defaults; returns the group.

    Unless ``only`` or ``default_note`` is given, the group also has ``--preset``
    (:mod:`keras_runet.presets`): :func:`train_config_from_args` starts from the preset's
    values, then the command's ``defaults``, then the flags given on the command line.

    Args:
        title: the argument group's title.
        defaults: defaults of this command that differ from the dataclass's (tune: the
            epochs of one trial), by field name.
        exclude: fields that are not flags of this command (tune: dil and shift, tuned).
        only: declare these fields only (the architecture options of export and predict).
        default_note: the flags get no default (absent from ``args`` unless given) and
            their help shows this instead (demo: the default depends on ``--quick``).
    """
    from keras_runet.config import TrainConfig, cli_fields, flag_of
    from keras_runet.presets import DEFAULT_PRESET, PRESET_DESCRIPTIONS, PRESETS

    group = p.add_argument_group(title)
    defaults = dict(defaults or {})
    unknown = set(defaults) - {f.name for f in dataclasses.fields(TrainConfig)}
    if unknown:
        raise ValueError(f"no TrainConfig field {', '.join(sorted(unknown))}")
    exclude = set(exclude)
    with_preset = only is None and default_note is None
    if with_preset:
        described = "; ".join(f"{k}: {v}" for k, v in PRESET_DESCRIPTIONS.items())
        group.add_argument(
            "--preset",
            choices=tuple(PRESETS),
            default=DEFAULT_PRESET,
            help=f"the values the other training flags start from ({described}); a flag "
            f"given explicitly overrides its preset value (default: {DEFAULT_PRESET}; "
            "docs/presets.md)",
        )
        p.set_defaults(**{_COMMAND_DEFAULTS: defaults})
    paper = PRESETS["paper"]
    for field in cli_fields():
        if field.name in exclude or (only is not None and field.name not in only):
            continue
        meta = field.metadata
        default = defaults.get(field.name, field.default)
        kwargs: dict = {"dest": field.name}
        if with_preset:
            kwargs["action"] = _TrainingFlag
        if isinstance(field.default, bool):
            if with_preset:
                kwargs.update(nargs=0, const=not meta.get("negate"))
            else:
                kwargs["action"] = "store_false" if meta.get("negate") else "store_true"
            shown = None  # a switch: its help says what it does
        else:
            if field.name == "image_size":
                kwargs["type"] = image_size
                shown = "x".join(map(str, default))
            elif meta.get("choices"):
                kwargs.update(type=str, choices=meta["choices"])
                shown = default  # None: the help says what the default is
            else:
                kwargs["type"] = float if isinstance(field.default, float) else int
                shown = default
            if "metavar" in meta:
                kwargs["metavar"] = meta["metavar"]
        help_text = meta["help"]
        if default_note is not None:
            kwargs["default"] = argparse.SUPPRESS
            help_text += f" (default: {default_note})"
        else:
            kwargs["default"] = default
            notes = [] if shown is None else [f"default: {shown}"]
            if with_preset and field.name not in defaults and field.name in paper:
                value = paper[field.name].value
                if value != field.default:
                    if isinstance(value, bool):
                        value = "on" if value == (not meta.get("negate")) else "off"
                    elif field.name == "image_size":
                        value = "x".join(map(str, value))
                    notes.append(f"--preset paper: {value}")
            if notes:
                help_text += f" ({'; '.join(notes)})"
        group.add_argument(flag_of(field.name), help=help_text, **kwargs)
    return group


def train_config_from_args(args, model: str | None = None, **base):
    """The :class:`~keras_runet.config.TrainConfig` of the training flags in ``args``
    (:func:`add_training_arguments`), checked by :func:`keras_runet.config.train_config`.

    With a ``--preset`` (train, cv, tune): the preset's values, then ``base``, then the
    command's own defaults, then the flags given on the command line, each overriding
    the one before; without (demo, the architecture options): ``base``, then the flags.

    Args:
        args: the parsed arguments.
        model: the model's name (each command has its own ``--model`` / ``--models``).
        **base: values of fields that are not in ``args`` (flags the command does not
            declare, or that were not given under ``default_note``).

    Raises:
        UsageError: a bad value, naming its flag.
    """
    from keras_runet.config import ConfigError, cli_fields, train_config

    preset = getattr(args, "preset", None)
    if preset is not None:
        from keras_runet.presets import preset_values

        try:
            values = {**preset_values(preset), **base, "preset": preset}
        except ValueError as err:
            raise UsageError(f"--preset: {err}") from None
        values.update(getattr(args, _COMMAND_DEFAULTS, {}))
        given = getattr(args, _GIVEN, set())
        for field in cli_fields():
            if field.name in given:
                values[field.name] = getattr(args, field.name)
    else:
        values = dict(base)
        for field in cli_fields():
            if hasattr(args, field.name):
                values[field.name] = getattr(args, field.name)
    if model is not None:
        values["model"] = model
    try:
        config = train_config(**values)
    except ConfigError as err:
        if err.field == "model":
            raise UsageError(str(err)) from None
        raise UsageError(err.for_flag()) from None
    if config.distribute is not None:  # before any data or run folder is touched
        from keras_runet.training import check_jax_distribution

        try:
            check_jax_distribution(config)
        except ValueError as err:
            raise UsageError(str(err)) from None
    return config


def add_architecture_arguments(parser: argparse.ArgumentParser) -> None:
    """Options that rebuild the architecture of a weights-only checkpoint (``runet export``
    and ``runet predict``): the TrainConfig fields of the architecture, and --model-kind."""
    group = add_training_arguments(
        parser,
        title="architecture (only for a .weights.h5 checkpoint)",
        only=("dil", "shift", "roi_classes", "roi_slope", "roi_kernel", "width", "image_size"),
    )
    group.add_argument("--model-kind", choices=model_choices(), help="the checkpoint's model")
    # The spelling of versions <= 0.1 (two numbers), kept working, not listed.
    group.add_argument(
        "--input-size", type=int, nargs=2, metavar=("H", "W"), help=argparse.SUPPRESS
    )


def require_graph_backend(what: str) -> None:
    """A UsageError (one line) when Keras runs on a backend whose models cannot enter a
    TensorFlow graph: ``what`` (the SavedModel export, ``runet predict``) runs the model
    between TensorFlow resizes (:func:`keras_runet.export.make_serving_functions`), which
    works on TensorFlow and, through ``jax2tf``, on JAX, but not on PyTorch or NumPy.
    Read from the environment / Keras config before a model is loaded."""
    import keras

    from keras_runet.config import GRAPH_BACKENDS, graph_backend_error

    backend = keras.config.backend()
    if backend not in GRAPH_BACKENDS:
        raise UsageError(graph_backend_error(what, backend))


def load_model_from_args(args):
    """Load ``args.model`` in safe mode (a UsageError on a bad file); the architecture
    options are used for a weights-only checkpoint."""
    import keras_runet.models  # noqa: F401  (registers the custom objects before the load)
    from keras_runet.config import ROI_CLASSES
    from keras_runet.export import ExportError, load_model

    size = tuple(args.input_size) if args.input_size else tuple(args.image_size)
    try:
        return load_model(
            args.model,
            model_kind=args.model_kind,
            dil=args.dil,
            shift=args.shift,
            foreground_classes=ROI_CLASSES[args.roi_classes],
            slope=args.roi_slope,
            kernel=args.roi_kernel,
            input_shape=(*size, 1),
            width=args.width,
        )
    except ExportError as err:
        raise UsageError(str(err)) from None


def get_builder(args):
    """The prepared camus builder, preparing it from --manual-dir when needed (and checking,
    when --manual-dir is given, that the prepared dataset was built from its files)."""
    from keras_runet.data import DatasetSourceError, check_source, load_builder

    data_dir = Path(args.data_dir).expanduser()
    try:
        builder = load_builder(data_dir, args.config)
    except FileNotFoundError as err:
        if not args.manual_dir:
            raise UsageError(str(err)) from None
    else:
        if args.manual_dir:
            try:
                check_source(builder, existing_dir(args.manual_dir, "--manual-dir"))
            except DatasetSourceError as err:
                raise UsageError(str(err)) from None
        return builder
    manual = existing_dir(args.manual_dir, "--manual-dir")
    return prepare_dataset(manual, data_dir, args.config)


def prepare_dataset(manual_dir: Path, data_dir: Path, config: str, **kwargs):
    """The camus builder prepared from ``manual_dir`` (see keras_runet.data.prepare_camus);
    a bad download is a UsageError that lists every problem (file, what is wrong)."""
    from keras_runet.data import DatasetSourceError, prepare_camus
    from tfds_camus.errors import CamusFormatError, InvalidPatientsError

    if not any(Path(manual_dir).iterdir()):
        raise UsageError(
            f"--manual-dir {manual_dir} is empty: put the CAMUS zip file(s) in it as "
            "downloaded (e.g. CAMUS_public.zip), or the extracted folders"
        )
    try:
        return prepare_camus(manual_dir, data_dir, config, **kwargs)
    except DatasetSourceError as err:
        raise UsageError(str(err)) from None
    except InvalidPatientsError as err:
        raise UsageError(f"{manual_dir}: {err}") from None
    except CamusFormatError as err:
        first = str(err).strip().splitlines()[0]
        raise UsageError(f"{manual_dir}: {first}") from None


def check_split(builder, split: str) -> str:
    """``split`` (a TFDS split string, e.g. ``group1+group2[:50%]``) if every split it names
    is prepared in ``builder``; else a UsageError listing the prepared ones."""
    unknown = [p for p in split.split("[")[0].split("+") if p not in builder.info.splits]
    if unknown:
        raise UsageError(
            f"unknown split {', '.join(unknown)}; prepared: {', '.join(sorted(builder.info.splits))}"
        )
    return split


def fold_split(builder, fold: int, part: str) -> str:
    """The TFDS split string of ``part`` ("train", "validation" or "test") of the paper's
    fold ``fold`` in ``builder``; a fold the dataset cannot form is a UsageError."""
    from keras_runet.cross_validation import fold_split_strings

    try:
        return fold_split_strings(builder, fold)[part]
    except ValueError as err:
        raise UsageError(str(err)) from None
