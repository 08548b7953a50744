"""How far RU-Net's region of interest reaches beyond the first segmentation, against ``dil``.

For each dilation kernel (``box`` of side ``dil``, ``disk`` of diameter ``dil``;
``TrainConfig.roi_kernel``) and each ``dil``, the margin: the largest distance from a pixel
the ROI mask keeps to the nearest pixel of the first segmentation (centre to centre), at
the edge of a large straight region along an axis and along a diagonal. Three numbers:

- ``analytic``: from the kernel alone: ``(dil - 1) // 2`` along an axis for both kernels
  (the 'same' convention's near side); along the diagonal ``sqrt(2) (dil - 1) // 2`` for
  the box (its corner), the largest diagonal projection of the disk's pixels for the disk;
- ``dilation``: the binary dilation of the region by the kernel (``scipy.ndimage``);
- ``layer``: what :class:`keras_runet.layers.RoiAttention` keeps (mask >= 0.5) with the
  paper's slope 100 and second shift 0.01: a pixel is kept when more than about 1 % of its
  window is region, so where the kernel's outermost pixels are fewer than 1 % of it (a
  large disk, the box's far corner) the layer reaches less far than the dilation.

Pixels are those of the 256 x 256 model grid; millimetres for a typical CAMUS image of
780 x 550 native pixels at 0.154 mm (rows, axial) x 0.308 mm (columns, lateral), resized to
256 x 256: 0.47 mm per model pixel along the rows, 0.66 mm along the columns.

    python benchmarks/roi_margin.py [--dils 3,5,7,11,15,21,30,41] [--markdown]

The table in docs/presets.md comes from ``--markdown``.
"""

from __future__ import annotations

import argparse
import math

import numpy as np
from scipy import ndimage

# A typical CAMUS image (docs/camus.md): native rows x cols and spacing (row_mm, col_mm).
NATIVE_SHAPE = (780, 550)
NATIVE_SPACING = (0.154, 0.308)
MODEL_SIZE = 256
MM_PER_MODEL_PIXEL = tuple(
    n * s / MODEL_SIZE for n, s in zip(NATIVE_SHAPE, NATIVE_SPACING, strict=True)
)


def footprint(kernel: str, dil: int) -> np.ndarray:
    from keras_runet.layers import disk_kernel

    return np.ones((dil, dil), bool) if kernel == "box" else disk_kernel(dil)


def analytic_margin(kernel: str, dil: int, diagonal: bool) -> float:
    k = (dil - 1) // 2
    if not diagonal:
        return float(k)
    if kernel == "box":
        return k * math.sqrt(2)
    # The disk's pixel offsets on the near side ('same': up to (dil - 1) // 2 before).
    offsets = np.arange(dil) - dil // 2
    rows, cols = np.meshgrid(offsets, offsets, indexing="ij")
    inside = footprint(kernel, dil)
    return float(((rows + cols)[inside]).max() / math.sqrt(2))


def _region(size: int, diagonal: bool) -> np.ndarray:
    rows, cols = np.mgrid[0:size, 0:size]
    return (rows + cols < size) if diagonal else (cols < size // 2)


def _margin(kept: np.ndarray, region: np.ndarray, border: int) -> float:
    inner = np.zeros_like(kept)
    inner[border:-border, border:-border] = True  # away from the image's edges
    distance = ndimage.distance_transform_edt(~region)
    return float(distance[kept & inner].max())


def measured_margins(kernel: str, dil: int, diagonal: bool, size: int = 192) -> tuple:
    """(binary dilation, the layer's mask >= 0.5) margins in model pixels."""
    import keras

    from keras_runet.layers import RoiAttention

    region = _region(size, diagonal)
    dilated = ndimage.binary_dilation(region, footprint(kernel, dil))
    probs = np.zeros((1, size, size, 4), "float32")
    probs[0, ..., 0] = ~region
    probs[0, ..., 1] = region
    layer = RoiAttention(dil=dil, shift=0.5, kernel=kernel)
    _, mask = layer([np.ones((1, size, size, 1), "float32"), probs], return_mask=True)
    kept = keras.ops.convert_to_numpy(mask)[0, ..., 0] >= 0.5
    border = dil + 2
    return _margin(dilated, region, border), _margin(kept, region, border)


def rows_for(dils) -> list[dict]:
    rows = []
    for dil in dils:
        for kernel in ("box", "disk"):
            row = {"dil": dil, "kernel": kernel}
            for direction, diagonal in (("axis", False), ("diagonal", True)):
                dilation, layer = measured_margins(kernel, dil, diagonal)
                row[direction] = {
                    "analytic": analytic_margin(kernel, dil, diagonal),
                    "dilation": dilation,
                    "layer": layer,
                }
            rows.append(row)
    return rows


def markdown(rows) -> str:
    row_mm, col_mm = MM_PER_MODEL_PIXEL
    lines = [
        "| dil | kernel | axis: analytic / dilation / layer (px) | diagonal: analytic / "
        "dilation / layer (px) | layer, axis: mm along rows / cols | layer, diagonal: mm |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        a, d = r["axis"], r["diagonal"]
        # A diagonal step of one model pixel covers row_mm and col_mm: its length in mm.
        diag_mm = d["layer"] / math.sqrt(2) * math.hypot(row_mm, col_mm)
        lines.append(
            f"| {r['dil']} | {r['kernel']} | {a['analytic']:.1f} / {a['dilation']:.1f} / "
            f"{a['layer']:.1f} | {d['analytic']:.1f} / {d['dilation']:.1f} / {d['layer']:.1f} | "
            f"{a['layer'] * row_mm:.1f} / {a['layer'] * col_mm:.1f} | {diag_mm:.1f} |"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dils", default="3,5,7,11,15,21,30,41")
    parser.add_argument("--markdown", action="store_true", help="print the docs table only")
    args = parser.parse_args(argv)
    dils = [int(d) for d in args.dils.split(",")]
    rows = rows_for(dils)
    if not args.markdown:
        print(
            f"model pixel = {MM_PER_MODEL_PIXEL[0]:.3f} mm (rows) x {MM_PER_MODEL_PIXEL[1]:.3f} mm "
            f"(cols), for a {NATIVE_SHAPE[0]} x {NATIVE_SHAPE[1]} image at "
            f"{NATIVE_SPACING[0]} x {NATIVE_SPACING[1]} mm resized to {MODEL_SIZE} x {MODEL_SIZE}"
        )
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
