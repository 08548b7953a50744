"""Reference-mask simplicity and convexity under each measurement convention, on the
synthetic CAMUS, and how many reference masks the paper's Table I limits call outliers.

The paper's anatomical limits were set as the minimum over expert tracings, so under the
convention they were measured with, reference masks pass them (outlier rate ~0). This script
writes a synthetic CAMUS (``tfds_camus.phantom``, reduced size), reads its reference masks
(``tfds_camus.reader.load_instant``) and, for every named convention of
``keras_runet.evaluation.shapes.CONVENTIONS`` (plus the default with scikit-image's hull),
prints a Markdown table: per structure the minimum, 1 % quantile and mean of Sp and Cx, the
structure's share of masks below its Table I limit, and the share of images that are
anatomical outliers under Table I. docs/thresholds.md quotes its output.

    python benchmarks/thresholds_study.py [--patients 20] [--scale 0.5] [--seed 0] [--out FILE]

CPU only, about 20 s at the defaults.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import numpy as np

from keras_runet.evaluation import OutlierThresholds
from keras_runet.evaluation.calibration import (
    camus_reference_items,
    reference_outlier_rate,
    reference_shape_rows,
)
from keras_runet.evaluation.shapes import CONVENTIONS, SKIMAGE
from tfds_camus.atomic import write_text
from tfds_camus.phantom import write_synthetic_camus
from tfds_camus.vocabulary import LV_STRUCTURES


def conventions() -> dict:
    out = dict(CONVENTIONS)
    out["default, skimage hull"] = dataclasses.replace(CONVENTIONS["default"], hull=SKIMAGE)
    return out


def study(items, table_i: OutlierThresholds) -> str:
    head = (
        "| convention | Sp grid | Cx grid | hull | structure | Sp min | Sp 1 % | Sp mean "
        "| Cx min | Cx 1 % | Cx mean | below Table I (Sp / Cx) | reference outliers |"
    )
    lines = [head, "|" + "---|" * head.count(" | ") + "---|"]
    for name, conv in conventions().items():
        rows = reference_shape_rows(items, conv)
        ref_rows = [
            {
                "patient_id": r["patient_id"],
                "view": r["view"],
                "instant": r["instant"],
                **{f"{s}_ref_{m}": r[f"{s}_{m}"] for s in LV_STRUCTURES for m in ("simplicity",
                                                                                  "convexity")},
            }
            for r in rows
        ]  # fmt: skip
        n_out, n = reference_outlier_rate(ref_rows, table_i)
        for s in LV_STRUCTURES:
            sp = np.array([r[f"{s}_simplicity"] for r in rows])
            cx = np.array([r[f"{s}_convexity"] for r in rows])
            sp_min, cx_min = table_i.shape_limits(s)
            cells = [name, conv.simplicity_grid, conv.convexity_grid, conv.hull, s]
            for v in (sp, cx):
                v = v[np.isfinite(v)]
                cells += [f"{v.min():.3f}", f"{np.quantile(v, 0.01):.3f}", f"{v.mean():.3f}"]
            cells.append(
                f"{100 * np.mean(~(sp >= sp_min)):.1f} % / {100 * np.mean(~(cx >= cx_min)):.1f} %"
            )
            cells.append(
                f"{n_out} / {n} ({100 * n_out / n:.1f} %)" if s == LV_STRUCTURES[0] else ""
            )
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--patients", type=int, default=20)
    p.add_argument("--scale", type=float, default=0.5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="also write the table (Markdown) to this file")
    args = p.parse_args(argv)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        camus = write_synthetic_camus(
            Path(tmp) / "camus", num_patients=args.patients, scale=args.scale, seed=args.seed
        )
        items = list(camus_reference_items(camus))
    table = study(items, OutlierThresholds())
    text = (
        f"Synthetic CAMUS: {args.patients} patients, scale {args.scale}, seed {args.seed}: "
        f"{len(items)} reference masks; Table I limits LVendo Sp 0.741 / Cx 0.960, "
        f"LVepi Sp 0.529 / Cx 0.694.\n\n{table}\n"
    )
    print(text)
    print(f"({time.perf_counter() - start:.0f} s)")
    if args.out:
        write_text(args.out, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
