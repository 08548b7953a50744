"""``runet predict MODEL INPUT... --out DIR``: segment new images, flag suspicious shapes.

INPUT: image files (``.png``, ``.mhd``, ``.nii``, ``.nii.gz``) or folders of them. Writes,
into ``--out``, each label map in its input's format and geometry (``<stem>.<ext>``),
``overlays/<stem>.overlay.png`` and ``predictions.csv`` (convexity, simplicity and a
``suspicious_shape`` flag per image: the RU-Net paper's anatomical criteria, which need no
ground truth). See :mod:`keras_runet.predict`.

``predictions.csv`` gets its row as each file is done; a rerun skips the files an earlier
run segmented (``--force``: all again). Exit code: 0 when every image was segmented, 1 when
some failed (their rows in the CSV say why), 2 on a usage error (no model, no images...).
"""

from __future__ import annotations

import argparse

from keras_runet.commands import _common
from keras_runet.commands._common import UsageError

NAME = "predict"
HELP = "segment new images (PNG, .mhd, .nii.gz, folders) and flag suspicious shapes"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the options of ``runet predict``."""
    parser.add_argument("model", metavar="MODEL", help="a .keras file or a .weights.h5 checkpoint")
    parser.add_argument("inputs", metavar="INPUT", nargs="+", help="image files or folders")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder")
    parser.add_argument(
        "--pattern", default="*", help="glob of file names inside folders (default: *)"
    )
    parser.add_argument("--recursive", action="store_true", help="also look in sub-folders")
    parser.add_argument(
        "--include-gt",
        action="store_true",
        help="also segment *_gt files found in folders (CAMUS annotations; skipped by default)",
    )
    parser.add_argument(
        "--png-spacing",
        type=float,
        nargs=2,
        metavar=("ROW_MM", "COL_MM"),
        help="pixel spacing of PNG inputs (they carry none; default: square pixels)",
    )
    parser.add_argument("--no-overlays", action="store_true", help="do not write PNG overlays")
    parser.add_argument(
        "--save-coarse",
        action="store_true",
        help="RU-Net: also write the first U-Net's label map (<stem>_coarse.<ext>)",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="segment every file again (a rerun skips the files an earlier run did)",
    )
    _common.add_architecture_arguments(parser)


def _print_progress(index: int, total: int, row: dict) -> None:
    if row.get("skipped"):
        state = "done earlier, skipped"
    elif row["status"] != "ok":
        state = "error"
    else:
        state = "suspicious shape" if row.get("suspicious_shape") else "ok"
    print(f"[{index}/{total}] {row['file']}: {state}", flush=True)


def run(args: argparse.Namespace) -> int:
    """Runs ``runet predict``."""
    from pathlib import Path

    from keras_runet.predict import find_images, predict_files

    try:
        files, skipped = find_images(
            args.inputs, args.pattern, recursive=args.recursive, include_gt=args.include_gt
        )
    except FileNotFoundError as err:
        raise UsageError(str(err)) from None
    if not files:
        raise UsageError(
            f"no images (.png, .mhd, .nii, .nii.gz) matching {args.pattern!r} in "
            f"{', '.join(args.inputs)}"
        )
    if args.png_spacing is not None and min(args.png_spacing) <= 0:
        raise UsageError(f"--png-spacing must be positive, got {args.png_spacing}")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {args.out!r} exists and is not a folder")
    model = _common.load_model_from_args(args)
    roots = [p for p in args.inputs if Path(p).is_dir()]
    rows = predict_files(
        model,
        files,
        out,
        roots=roots,
        png_spacing=args.png_spacing,
        overlays=not args.no_overlays,
        save_coarse=args.save_coarse,
        progress=_print_progress,
        force=args.force,
    )
    ok = [r for r in rows if r["status"] == "ok"]
    failed = [r for r in rows if r["status"] != "ok"]
    suspicious = [r for r in ok if r.get("suspicious_shape")]
    for r in failed:
        print(f"error: {r['error']}")
    for r in suspicious:
        print(f"suspicious shape: {r['file']} ({r['suspicious_reasons']})")
    note = f", {len(skipped)} other file(s) skipped" if skipped else ""
    print(
        f"{len(ok)} of {len(rows)} image(s) segmented, {len(suspicious)} with a suspicious "
        f"shape, {len(failed)} failed{note}; results in {out / 'predictions.csv'}"
    )
    return 1 if failed else 0
