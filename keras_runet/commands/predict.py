"""``runet predict MODEL INPUT... --out DIR``: segment new images and sequences, flag
suspicious shapes.

INPUT: image or sequence files (``.png``, ``.mhd``, ``.nii``, ``.nii.gz``, ``.dcm``) or
folders of them. Writes, into ``--out``, each label map with its input's geometry
(``<stem>.<ext>``; NIfTI for DICOM; one 3-D label map per sequence),
``overlays/<stem>.overlay.png``, ``predictions.csv`` (convexity, simplicity and a
``suspicious_shape`` flag per image or frame: the RU-Net paper's anatomical criteria, which
need no ground truth), for sequences ``plots/<stem>.lv_area.png`` and, when both views of a
case are given, ``volumes.csv`` (EDV / ESV / EF); ``--save-probabilities``: the softmax
probabilities too. See :mod:`keras_runet.predict` and docs/predict.md.

``predictions.csv`` gets its rows as each file is done; a rerun skips the files an earlier
run segmented (``--force``: all again), flagging them under this run's ``--thresholds``.
Exit code: 0 when every file was segmented, 1 when some failed (their rows in the CSV say
why), 2 on a usage error (no model, no images, a bad thresholds file...).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from keras_runet.commands import _common
from keras_runet.commands._common import UsageError

NAME = "predict"
HELP = "segment new images and sequences (PNG, .mhd, .nii.gz, .dcm) and flag suspicious shapes"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the options of ``runet predict``."""
    parser.add_argument("model", metavar="MODEL", help="a .keras file or a .weights.h5 checkpoint")
    parser.add_argument(
        "inputs", metavar="INPUT", nargs="+", help="image or sequence files, or folders"
    )
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
        help="pixel spacing assumed for inputs that carry none: PNG, and DICOM without a "
        "pixel spacing SimpleITK reads (default: pixel units)",
    )
    _common.add_thresholds_argument(parser)
    parser.add_argument("--no-overlays", action="store_true", help="do not write PNG overlays")
    parser.add_argument(
        "--save-coarse",
        action="store_true",
        help="RU-Net: also write the first U-Net's label map (<stem>_coarse.<ext>)",
    )
    parser.add_argument(
        "--save-probabilities",
        action="store_true",
        help="also write the softmax probabilities on the native grid "
        "(<stem>.probabilities.npz for PNG, .nii.gz otherwise)",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="segment every file again (a rerun skips the files an earlier run did)",
    )
    _common.add_architecture_arguments(parser)


def _write_line(line: str) -> None:
    """A line on stdout that leaves the progress bar (stderr, on a terminal) intact."""
    try:
        from tqdm import tqdm
    except ImportError:
        print(line, flush=True)
    else:
        tqdm.write(line, file=sys.stdout)


def _print_file(index: int, total: int, rows: list[dict]) -> None:
    first = rows[0]
    frames = first.get("frames")
    what = f" ({frames} frames)" if frames else ""
    if first.get("skipped"):
        state = "done earlier, skipped"
    elif first["status"] != "ok":
        state = "error"
    else:
        n = sum(bool(r.get("suspicious_shape")) for r in rows)
        if not n:
            state = "ok"
        elif frames:
            state = f"suspicious shape in {n} frame(s)"
        else:
            state = "suspicious shape"
    _write_line(f"[{index}/{total}] {first['file']}{what}: {state}")


def _suspicious_line(file: str, rows: list[dict]) -> str:
    if rows[0].get("frames") is None:
        return f"suspicious shape: {file} ({rows[0]['suspicious_reasons']})"
    frames = ", ".join(str(r["frame"]) for r in rows)
    return f"suspicious shape: {file} frame(s) {frames}"


def _print_volumes(path: Path) -> None:
    import csv

    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            if row["error"] or not row["edv_ml"]:
                reason = row["error"] or "no LV cavity in a chosen frame"
                print(f"volumes {row['case']}: not measured ({reason})")
                continue
            print(
                f"volumes {row['case']}: EDV {float(row['edv_ml']):.1f} ml, ESV "
                f"{float(row['esv_ml']):.1f} ml, EF {float(row['ef_percent']):.1f} % (frames of "
                f"largest / smallest LV area: 2CH {row['ed_frame_2ch']} / {row['es_frame_2ch']}, "
                f"4CH {row['ed_frame_4ch']} / {row['es_frame_4ch']})"
            )


def run(args: argparse.Namespace) -> int:
    """Runs ``runet predict``."""
    from keras_runet.predict import FORMATS, find_images, predict_files

    try:
        files, skipped = find_images(
            args.inputs, args.pattern, recursive=args.recursive, include_gt=args.include_gt
        )
    except FileNotFoundError as err:
        raise UsageError(str(err)) from None
    if not files:
        raise UsageError(
            f"no images ({', '.join(FORMATS)}) matching {args.pattern!r} in "
            f"{', '.join(args.inputs)}"
        )
    if args.png_spacing is not None and min(args.png_spacing) <= 0:
        raise UsageError(f"--png-spacing must be positive, got {args.png_spacing}")
    _common.require_graph_backend("runet predict")
    thresholds = _common.thresholds_from_args(args)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {args.out!r} exists and is not a folder")
    _common.setup_logging()
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
        save_probabilities=args.save_probabilities,
        thresholds=thresholds,
        on_file=_print_file,
        force=args.force,
    )
    by_file: dict[str, list[dict]] = {}
    for r in rows:
        by_file.setdefault(r["file"], []).append(r)
    ok = [f for f, rs in by_file.items() if rs[0]["status"] == "ok"]
    failed = [rs[0] for rs in by_file.values() if rs[0]["status"] != "ok"]
    sequences = sum(1 for f in ok if by_file[f][0].get("frames") is not None)
    suspicious = {
        f: [r for r in by_file[f] if r.get("suspicious_shape")]
        for f in ok
        if any(r.get("suspicious_shape") for r in by_file[f])
    }
    for r in failed:
        print(f"error: {r['error']}")
    for f, rs in suspicious.items():
        print(_suspicious_line(f, rs))
    if (out / "volumes.csv").exists() and sequences:
        _print_volumes(out / "volumes.csv")
    note = f", {len(skipped)} other file(s) skipped" if skipped else ""
    seq_note = f" ({sequences} sequence(s))" if sequences else ""
    print(
        f"{len(ok)} of {len(by_file)} file(s) segmented{seq_note}, {len(suspicious)} with a "
        f"suspicious shape, {len(failed)} failed{note}; results in {out / 'predictions.csv'}"
    )
    return 1 if failed else 0
