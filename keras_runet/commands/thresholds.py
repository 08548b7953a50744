"""``runet thresholds``: recompute the RU-Net paper's Table I shape limits from reference masks.

Reads the reference masks of a prepared camus split (``--data-dir`` with ``--split S`` or
``--fold K``, whose ``--fold-part`` is ``train`` by default: limits are set on data the
fold is not tested on) or of a CAMUS folder (``--camus DIR``), measures the simplicity and
convexity of LVendo and LVepi under a measurement convention (``--convention``, with
``--grid`` / ``--hull`` overrides) and writes into ``--out``:

- ``thresholds.json``: the outlier thresholds with the shape limits set to the minimum over
  the references (the paper's rule) or to ``--quantile`` percent, the convention recorded;
  ``runet evaluate --thresholds`` reads it (and the library's ``OutlierThresholds.from_dict``);
- ``thresholds_table.md``: per structure and instant the minimum, the 0.5 / 1 / 5 %
  quantiles and the mean of Sp and Cx (also printed);
- ``reference_shapes.csv``: the values per image.

The work is :mod:`keras_runet.evaluation.calibration`'s; docs/thresholds.md explains it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from keras_runet.commands import _common
from keras_runet.commands._common import UsageError

NAME = "thresholds"
HELP = "Recompute the anatomical outlier limits (Table I) from reference masks."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the options of ``runet thresholds``."""
    from keras_runet.evaluation.shapes import CONVENTIONS, GRIDS, HULLS

    src = parser.add_argument_group("reference masks (a CAMUS folder, or a prepared split)")
    src.add_argument("--camus", metavar="DIR", help="CAMUS folder (either release)")
    src.add_argument("--data-dir", help="TFDS data dir holding the prepared camus dataset")
    src.add_argument("--manual-dir", help="CAMUS folder to prepare --data-dir from if needed")
    src.add_argument("--config", default="256", help="camus builder config (default: 256)")
    src.add_argument("--split", help="TFDS split string, e.g. group1+group2")
    src.add_argument("--fold", type=int, help="the paper's fold K (1..10), see --fold-part")
    src.add_argument(
        "--fold-part",
        choices=("train", "validation", "test"),
        default="train",
        help="which part of --fold (default: train)",
    )
    g = parser.add_argument_group("measurement")
    g.add_argument(
        "--convention",
        choices=tuple(CONVENTIONS),
        default="default",
        help="how Sp and Cx are measured (docs/thresholds.md; default: default)",
    )
    g.add_argument("--grid", choices=GRIDS, help="grid of both Sp and Cx (overrides --convention)")
    g.add_argument("--hull", choices=HULLS, help="convex hull of Cx (overrides --convention)")
    g.add_argument(
        "--quantile",
        type=float,
        default=0.0,
        metavar="PERCENT",
        help="set each limit to this percentile of the references (default 0: the minimum, "
        "the paper's rule)",
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder")


def _items(args):
    from keras_runet.evaluation import calibration

    if args.camus:
        if args.data_dir or args.split or args.fold is not None:
            raise UsageError("give --camus DIR, or --data-dir with --split / --fold, not both")
        camus = _common.existing_dir(args.camus, "--camus")
        try:
            from tfds_camus import reader

            layout = reader.detect_layout(camus)
        except (OSError, ValueError) as err:
            raise UsageError(f"--camus {camus}: {err}") from None
        return calibration.camus_reference_items(layout), f"{camus}"
    if not args.data_dir:
        raise UsageError("give --camus DIR, or --data-dir DIR with --split S or --fold K")
    if (args.fold is None) == (args.split is None):
        raise UsageError("give one of --fold K or --split SPLIT with --data-dir")
    builder = _common.get_builder(args)
    if args.fold is not None:
        split = _common.fold_split(builder, args.fold, args.fold_part)
    else:
        split = _common.check_split(builder, args.split)
    from keras_runet.split_evaluation import reference_items

    return reference_items(builder, split), f"split {split}"


def _csv(rows) -> str:
    import csv
    import io

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def run(args: argparse.Namespace) -> int:
    """Runs ``runet thresholds``; returns the exit code."""
    from keras_runet.evaluation import calibration
    from keras_runet.evaluation.shapes import shape_convention
    from tfds_camus.atomic import write_json, write_text

    if not 0 <= args.quantile < 100:
        raise UsageError(f"--quantile must be a percentage in [0, 100), got {args.quantile}")
    convention = shape_convention(args.convention, grid=args.grid, hull=args.hull)
    out = _common.output_dir(args.out)
    items, source = _items(args)
    try:
        rows = calibration.reference_shape_rows(items, convention)
    except (OSError, ValueError) as err:
        raise UsageError(f"{source}: {err}") from None
    if not rows:
        raise UsageError(f"{source}: no reference masks found")
    try:
        thresholds = calibration.calibrated_thresholds(rows, args.quantile / 100, convention)
    except ValueError as err:
        raise UsageError(f"{source}: {err}") from None
    table = calibration.threshold_table(rows)
    rule = "minimum" if args.quantile == 0 else f"{args.quantile:g} % quantile"
    name = convention.name or "custom"
    text = (
        f"# Anatomical limits from {len(rows)} reference masks ({source})\n\n"
        f"Convention: {name} ({convention.to_dict()}); limits: the {rule} over ED and ES.\n\n"
        + calibration.format_threshold_table(table, thresholds)
        + "\n"
    )
    paths = {
        "thresholds": write_json(out / "thresholds.json", thresholds),
        "table": write_text(out / "thresholds_table.md", text),
        "per_image": write_text(out / "reference_shapes.csv", _csv(rows)),
    }
    print(text)
    for kind, path in paths.items():
        print(f"{kind}: {Path(path)}")
    return 0
