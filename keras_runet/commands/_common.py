"""Options and checks shared by the subcommands (kept light: no TensorFlow import here)."""

from __future__ import annotations

import argparse
import logging
import math
import os
from pathlib import Path

from keras_runet.cli import UsageError

MODEL_CHOICES = ("unet1", "shg", "runet")


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
    bad = [m for m in names if m not in MODEL_CHOICES]
    if bad or not names:
        raise UsageError(
            f"unknown model {', '.join(bad) or repr(value)}; choose from {', '.join(MODEL_CHOICES)}"
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
    try:
        parts = [int(p) for p in value.lower().replace("x", ",").split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad image size {value!r}: use e.g. 256x256") from None
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2 or any(p <= 0 or p % 32 for p in parts):
        raise argparse.ArgumentTypeError(
            f"bad image size {value!r}: two positive multiples of 32, e.g. 256x256"
        )
    return parts[0], parts[1]


def add_data_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("data")
    g.add_argument(
        "--data-dir",
        required=True,
        help="TFDS data dir holding the prepared camus dataset (see `runet prepare`)",
    )
    g.add_argument(
        "--manual-dir",
        help="CAMUS folder (either release, or a synthetic one): prepare the dataset "
        "first if it is not in --data-dir yet",
    )
    g.add_argument("--config", default="256", help="camus builder config (default: 256)")


def add_training_arguments(p: argparse.ArgumentParser, *, epochs: int = 100) -> None:
    g = p.add_argument_group("training")
    g.add_argument("--epochs", type=int, default=epochs, help=f"maximum epochs ({epochs})")
    g.add_argument("--batch-size", type=int, default=8, help="images per step (8)")
    g.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (1e-3)")
    g.add_argument("--patience", type=int, default=20, help="early stopping (20; 0: off)")
    g.add_argument("--dil", type=int, default=11, help="RU-Net dilation box size (11)")
    g.add_argument("--shift", type=float, default=0.5, help="RU-Net first binarisation (0.5)")
    g.add_argument("--width", type=float, default=1.0, help="filter multiplier (1.0)")
    g.add_argument(
        "--image-size", type=image_size, default=(256, 256), help="model input (256x256)"
    )
    g.add_argument("--no-augment", action="store_true", help="no data augmentation")
    g.add_argument("--seed", type=int, default=0, help="random seed (0)")
    g.add_argument(
        "--mixed-precision",
        choices=("mixed_bfloat16", "mixed_float16"),
        help="mixed precision policy (bfloat16 on CPUs with AMX and recent GPUs)",
    )
    g.add_argument(
        "--distribute",
        choices=("mirrored", "multiworker"),
        help="tf.distribute strategy (multiworker reads TF_CONFIG)",
    )


def train_config_from_args(args, model: str):
    from keras_runet.training import TrainConfig

    if args.epochs < 1 or args.batch_size < 1:
        raise UsageError("--epochs and --batch-size must be at least 1")
    if args.dil < 1:
        raise UsageError(f"--dil must be at least 1, got {args.dil}")
    if not args.lr > 0 or not math.isfinite(args.lr):
        raise UsageError(f"--lr must be a positive number, got {args.lr}")
    if not args.width > 0 or not math.isfinite(args.width):
        raise UsageError(f"--width must be a positive number, got {args.width}")
    if not 0 < args.shift < 1:
        raise UsageError(
            f"--shift must be within (0, 1) (it thresholds a probability), got {args.shift}"
        )
    if args.patience < 0:
        raise UsageError(f"--patience must be 0 (off) or more, got {args.patience}")
    return TrainConfig(
        model=model,
        dil=args.dil,
        shift=args.shift,
        width=args.width,
        image_size=tuple(args.image_size),
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        patience=args.patience,
        augment=not args.no_augment,
        seed=args.seed,
        dtype=args.mixed_precision,
        distribute=args.distribute,
    )


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
