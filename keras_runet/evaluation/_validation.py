"""Argument checks shared by the evaluation modules (ValueError that names the value)."""

from __future__ import annotations

import math

import numpy as np

from tfds_camus.vocabulary import INSTANTS, LV_STRUCTURES, STRUCTURES
from tfds_camus.vocabulary import NUM_LABELS as NUM_CLASSES

# The labels, structures and instants come from tfds_camus.vocabulary (docs/metrics.md):
# STRUCTURES maps "LVendo", "LVepi", "LA" to their labels; the outlier criteria look at the
# two LV structures.
LVENDO, LVEPI = LV_STRUCTURES
(LA,) = (s for s in STRUCTURES if s not in LV_STRUCTURES)

__all__ = [
    "INSTANTS",
    "LA",
    "LVENDO",
    "LVEPI",
    "LV_STRUCTURES",
    "NUM_CLASSES",
    "STRUCTURES",
    "as_label_map",
    "as_mask",
    "as_mask_pair",
    "as_spacing",
    "bbox",
    "check_instant",
    "crop_padded",
]


def as_mask(mask, name: str = "mask") -> np.ndarray:
    """Return ``mask`` as a 2D boolean array.

    Args:
        mask: a 2D boolean array (0/1 integer arrays are accepted too).
        name: the argument's name, for the error message.

    Returns:
        The mask as ``bool``.

    Raises:
        ValueError: if the array is not 2D, or not boolean / 0-1 integer.
    """
    arr = np.asarray(mask)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2D mask, got shape {arr.shape}")
    if arr.dtype == np.bool_:
        return arr
    if np.issubdtype(arr.dtype, np.integer):
        if arr.size and (arr.min() < 0 or arr.max() > 1):
            raise ValueError(
                f"{name} must be a binary mask (bool or 0/1), got values in "
                f"[{arr.min()}, {arr.max()}]; select a structure first (e.g. label_map == 1)"
            )
        return arr.astype(bool)
    raise ValueError(f"{name} must be a boolean mask, got dtype {arr.dtype}")


def as_mask_pair(pred, ref) -> tuple[np.ndarray, np.ndarray]:
    """Check two masks (see :func:`as_mask`) and that their shapes agree."""
    p = as_mask(pred, "pred")
    g = as_mask(ref, "ref")
    if p.shape != g.shape:
        raise ValueError(f"pred and ref must have the same shape, got {p.shape} and {g.shape}")
    return p, g


def as_label_map(label_map, name: str = "label_map") -> np.ndarray:
    """Return a 2D integer label map with values in {0, 1, 2, 3}.

    Raises:
        ValueError: if it is not 2D, not integer, or holds other labels.
    """
    arr = np.asarray(label_map)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2D label map, got shape {arr.shape}")
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name} must be an integer label map (0..3), got dtype {arr.dtype}")
    if arr.size and (arr.min() < 0 or arr.max() >= NUM_CLASSES):
        raise ValueError(
            f"{name} must hold labels 0..{NUM_CLASSES - 1}, got values in "
            f"[{arr.min()}, {arr.max()}]"
        )
    return arr


def as_spacing(spacing, name: str = "spacing") -> tuple[float, float]:
    """Return ``(row_mm, col_mm)`` as two positive finite floats.

    Raises:
        ValueError: if it is not two positive finite numbers.
    """
    try:
        values = tuple(float(s) for s in spacing)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be (row_mm, col_mm), got {spacing!r}") from None
    if len(values) != 2 or not all(math.isfinite(v) and v > 0 for v in values):
        raise ValueError(
            f"{name} must be two positive finite numbers (row_mm, col_mm), got {spacing!r}"
        )
    return values


def check_instant(instant, name: str = "instant") -> str:
    """Return ``instant`` if it is "ED" or "ES", else raise ValueError."""
    if instant not in INSTANTS:
        raise ValueError(f"{name} must be one of {INSTANTS}, got {instant!r}")
    return instant


def bbox(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """(r0, r1, c0, c1) of the nonzero pixels (half-open), or None if there are none."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def crop_padded(arrays, box, pad: int = 1):
    """Crop each array to ``box`` and zero-pad it by ``pad`` pixels on every side.

    Zero padding reproduces what the full image would give: pixels outside the box are
    zero, and scipy's erosion treats the image border as zero (``border_value=0``).
    """
    r0, r1, c0, c1 = box
    return [np.pad(a[r0:r1, c0:c1], pad) for a in arrays]
