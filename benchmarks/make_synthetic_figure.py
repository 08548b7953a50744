"""Draws a few synthetic CAMUS images with their masks: docs/figures/synthetic_camus.png.

Writes a handful of synthetic patients (2023 layout, native size), reads them back through
``tfds_camus.reader`` (so the figure shows what the builder reads), and plots, for each
patient, the 2CH and 4CH views at ED and ES with the mask contours on top, the image quality
and the spacing in the titles. Images are shown in mm (aspect from the spacing).

    python benchmarks/make_synthetic_figure.py [--out docs/figures/synthetic_camus.png]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from tfds_camus import phantom, reader  # noqa: E402

COLOURS = {1: "tab:red", 2: "tab:green", 3: "tab:blue"}
NAMES = {1: "LV cavity", 2: "myocardium", 3: "left atrium"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs/figures/synthetic_camus.png")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--patients", default="1,2,3", help="patient numbers (one per quality)")
    args = parser.parse_args()
    ids = [int(p) for p in args.patients.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        root = phantom.write_synthetic_camus(
            tmp, patient_ids=ids, seed=args.seed, half_sequence_frames=(4, 6)
        )
        fig, axes = plt.subplots(len(ids), 4, figsize=(16, 4.2 * len(ids)))
        axes = np.atleast_2d(axes)
        for row, number in enumerate(ids):
            pid = f"patient{number:04d}"
            for col, (view, instant) in enumerate(
                [("2CH", "ED"), ("2CH", "ES"), ("4CH", "ED"), ("4CH", "ES")]
            ):
                d = reader.load_instant(root, pid, view, instant)
                rows, cols = d["image"].shape
                row_mm, col_mm = d["spacing"]
                extent = (0, cols * col_mm, rows * row_mm, 0)
                ax = axes[row, col]
                ax.imshow(d["image"], cmap="gray", vmin=0, vmax=255, extent=extent)
                for label, colour in COLOURS.items():
                    if (d["gt"] == label).any():
                        ax.contour(
                            (np.arange(cols) + 0.5) * col_mm,
                            (np.arange(rows) + 0.5) * row_mm,
                            (d["gt"] == label).astype(float),
                            levels=[0.5],
                            colors=colour,
                            linewidths=1.0,
                        )
                info = d["info"]
                ax.set_title(
                    f"{pid} {view} {instant} ({info['ImageQuality']}, EF {info['EF']:.0f} %)\n"
                    f"{rows}x{cols} px, {row_mm:.3f} x {col_mm:.3f} mm",
                    fontsize=9,
                )
                ax.set_xlabel("mm")
                if col == 0:
                    ax.set_ylabel("depth (mm)")
        handles = [plt.Line2D([], [], color=c, label=NAMES[k]) for k, c in COLOURS.items()]
        fig.legend(handles=handles, loc="lower center", ncol=3)
        fig.suptitle("Synthetic CAMUS (tfds_camus.phantom), masks as contours", fontsize=12)
        fig.tight_layout(rect=(0, 0.03, 1, 0.98))
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, dpi=80)
        print(out)


if __name__ == "__main__":
    main()
