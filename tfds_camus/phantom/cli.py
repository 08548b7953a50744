"""The flags of a synthetic CAMUS, declared once: ``camus-synth`` and ``runet synth`` use them.

:func:`add_synth_arguments` declares them on a parser, :func:`synth_from_args` turns the
parsed arguments into one :func:`~tfds_camus.phantom.write_synthetic_camus` call, and
:func:`main` is the ``camus-synth`` console script.

>>> import argparse
>>> parser = argparse.ArgumentParser()
>>> add_synth_arguments(parser)
>>> args = parser.parse_args(["out", "-n", "30", "--layout", "original", "--per-group"])
>>> args.patients, args.release, args.per_group
(30, 'original', True)
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from tfds_camus.vocabulary import NIFTI, QUALITIES, RELEASES

DEFAULT_PATIENTS = 20


def add_synth_arguments(parser: argparse.ArgumentParser) -> None:
    """Declares the synthetic CAMUS's flags on ``parser`` (``OUT`` and the options)."""
    parser.add_argument("out_dir", metavar="OUT", help="folder to write (created)")
    parser.add_argument(
        "-n",
        "--patients",
        type=int,
        default=DEFAULT_PATIENTS,
        metavar="N",
        help=f"number of patients, numbered from --first-patient ({DEFAULT_PATIENTS})",
    )
    parser.add_argument(
        "--release",
        "--layout",
        dest="release",
        choices=RELEASES,
        default=NIFTI,
        help="the layout of the 2023 NIfTI release (default) or of the original MetaImage "
        "release, as `runet prepare --release` names them",
    )
    parser.add_argument(
        "--per-group",
        action="store_true",
        help="spread the patients over the paper's 10 fold groups (for `runet cv`)",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (0)")
    parser.add_argument(
        "--scale", type=float, default=1.0, help="image size factor (1: CAMUS size ~780x550)"
    )
    parser.add_argument("--workers", type=int, default=1, help="processes to use (1)")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="keep OUT if it holds a tree written with the same arguments",
    )
    advanced = parser.add_argument_group("advanced")
    advanced.add_argument(
        "--first-patient", type=int, default=1, help="number of the first patient (1)"
    )
    advanced.add_argument(
        "--patient-ids",
        metavar="IDS",
        help="comma-separated patient numbers or ids (instead of -n and --first-patient)",
    )
    advanced.add_argument(
        "--frames",
        type=int,
        nargs=2,
        default=(15, 25),
        metavar=("MIN", "MAX"),
        help="frames from ED to ES (default 15 25)",
    )
    advanced.add_argument("--quality", choices=QUALITIES, help="force the image quality")
    advanced.add_argument(
        "--es-to-ed",
        type=float,
        default=0.0,
        help="fraction of 4CH views stored ES -> ED, as ~4 %% of the real ones are (default 0)",
    )
    advanced.add_argument(
        "--testing-gt",
        action="store_true",
        help="original release: give the testing/ patients masks too",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="a log line per patient")


def synth_from_args(args: argparse.Namespace) -> Path:
    """Writes the synthetic CAMUS that :func:`add_synth_arguments`' flags describe.

    Returns:
        The folder to use as the builder's ``manual_dir``.

    Raises:
        ValueError: an argument is out of range (the message names it).
    """
    from tfds_camus.phantom.writer import write_synthetic_camus

    if args.patients < 1:
        raise ValueError(f"--patients must be at least 1, got {args.patients}")
    if args.workers < 1:
        raise ValueError(f"--workers must be at least 1, got {args.workers}")
    ids = args.patient_ids.split(",") if args.patient_ids else None
    return write_synthetic_camus(
        args.out_dir,
        num_patients=args.patients,
        layout=args.release,
        seed=args.seed,
        scale=args.scale,
        first_patient=args.first_patient,
        patient_ids=ids,
        per_group=args.per_group,
        reuse=args.reuse,
        half_sequence_frames=tuple(args.frames),
        quality=args.quality,
        es_to_ed=args.es_to_ed,
        testing_gt=args.testing_gt,
        workers=args.workers,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``camus-synth``: writes a synthetic CAMUS and prints the folder to use as manual_dir."""
    parser = argparse.ArgumentParser(
        prog="camus-synth",
        description="Write a synthetic CAMUS (apical 2CH/4CH echo-like images with their "
        "masks and Info_*.cfg) in the layout of either CAMUS release.",
    )
    add_synth_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s")
    try:
        root = synth_from_args(args)
    except (ValueError, OSError) as e:
        print(f"camus-synth: error: {e}", file=sys.stderr)
        return 2
    print(root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
