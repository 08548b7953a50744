"""`runet synth`: write a synthetic CAMUS (either release layout)."""

from __future__ import annotations

from keras_runet.cli import UsageError

NAME = "synth"
HELP = "write a synthetic CAMUS in the layout of either public release"


def add_arguments(p):
    p.add_argument("out", help="folder to write (created)")
    p.add_argument("--patients", type=int, default=20, help="number of patients (20)")
    p.add_argument(
        "--layout",
        choices=("nifti", "original"),
        default="nifti",
        help="2023 NIfTI release (default) or the original MetaImage release",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (0)")
    p.add_argument(
        "--scale", type=float, default=1.0, help="image size factor (1: CAMUS size ~780x550)"
    )
    p.add_argument(
        "--per-group",
        action="store_true",
        help="spread the patients over the paper's 10 fold groups (for `runet cv`)",
    )


def patients_per_group(n: int) -> list[str]:
    """``n`` patient ids spread round-robin over the 10 fold groups."""
    from tfds_camus import folds

    groups = [folds.group_patients(k) for k in range(1, 11)]
    return [groups[i % 10][i // 10] for i in range(n)]


def run(args) -> int:
    from keras_runet.commands._common import setup_logging

    setup_logging()
    if args.patients < 1 or args.patients > 500:
        raise UsageError(f"--patients must be within 1..500, got {args.patients}")
    if not 0.05 <= args.scale <= 2:
        raise UsageError(f"--scale must be within 0.05..2, got {args.scale}")
    from tfds_camus import phantom

    ids = patients_per_group(args.patients) if args.per_group else None
    root = phantom.write_synthetic_camus(
        args.out,
        num_patients=args.patients,
        layout=args.layout,
        seed=args.seed,
        scale=args.scale,
        patient_ids=ids,
    )
    print(root)
    return 0
