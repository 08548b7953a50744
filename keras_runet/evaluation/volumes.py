"""LV volumes by Simpson's biplane method of disks, and the ejection fraction.

For each view (2CH, 4CH) the LV cavity mask gives a long axis and 20 disk diameters:

1. The contour pixels of the mask (mask minus its erosion by the 4-cross) are taken in mm.
2. The mitral plane is the flat base of the mask: the longest edge of the contour's convex
   hull (joined with its neighbours within 10 degrees of its direction, as an oblique
   digitised line gives several) whose midpoint lies on the base side of the centroid
   (CAMUS images have the apex at the top, so the base side is towards larger rows;
   ``apex_at_top=False`` considers every hull edge).
3. The apex is the contour pixel farthest from the middle of the mitral plane; the long
   axis runs from that middle to the apex, of length L.
4. The axis is cut into ``n_disks`` (20) slabs of equal height; each disk's diameter is the
   width of the mask along the line perpendicular to the axis through the slab's middle,
   measured with sub-pixel precision (bilinear interpolation of the mask, level 0.5: the
   boundary lies half-way between an inside and an outside pixel centre).

Biplane volume: ``V = pi / 4 * sum(a_i * b_i) * h`` with ``a_i``, ``b_i`` the 2CH and 4CH
diameters and ``h = max(L_2CH, L_4CH) / n_disks`` (the longer axis, as the ASE recommends);
mm^3 / 1000 = ml. EF = 100 * (EDV - ESV) / EDV, in percent.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage as ndi
from scipy.spatial import ConvexHull, QhullError

from keras_runet.evaluation._validation import as_mask, as_spacing, bbox, crop_padded
from keras_runet.evaluation.distances import _contour_padded
from keras_runet.evaluation.shapes import row_extremes

__all__ = [
    "N_DISKS",
    "biplane_volume_from_disks",
    "ejection_fraction",
    "lv_disks",
    "simpson_biplane_volume",
]

N_DISKS = 20


def lv_disks(lv_mask, spacing, n_disks: int = N_DISKS, apex_at_top: bool = True):
    """Long-axis length and disk diameters of one apical view of the LV.

    Args:
        lv_mask: 2D boolean mask of the LV cavity with a flat base (the mitral plane).
        spacing: ``(row_mm, col_mm)``.
        n_disks: number of disks (20 in the method of disks).
        apex_at_top: look for the mitral plane below the centroid (CAMUS orientation).

    Returns:
        ``(length_mm, diameters_mm)``: a float and a float array of shape ``(n_disks,)``;
        ``(nan, array of nan)`` for an empty or degenerate mask.
    """
    m = as_mask(lv_mask, "lv_mask")
    spacing = as_spacing(spacing)
    if isinstance(n_disks, bool) or not isinstance(n_disks, int | np.integer) or n_disks < 1:
        raise ValueError(f"n_disks must be an integer >= 1, got {n_disks!r}")
    box = bbox(m)
    if box is None:
        return float("nan"), np.full(int(n_disks), np.nan)
    (m_box,) = crop_padded((m,), box)
    return _lv_disks_box(m_box, _contour_padded(m_box), spacing, int(n_disks), apex_at_top)


def _lv_disks_box(m_box, contour_box, spacing, n_disks, apex_at_top=True, pts=None):
    """:func:`lv_disks` on a cropped, zero-framed mask and its contour (``pts``: its nonzero)."""
    empty = (float("nan"), np.full(n_disks, np.nan))
    scale = np.asarray(spacing, dtype=np.float64)
    if pts is None:
        pts = np.nonzero(contour_box)
    extremes = row_extremes(pts) * scale  # enough for the hull
    pts = np.stack(pts, axis=1) * scale  # contour pixel centres, mm
    if len(pts) < 3:
        return empty
    try:
        hull = ConvexHull(extremes)
    except QhullError:  # a line: no area
        return empty
    verts = extremes[hull.vertices]  # counter-clockwise
    ends = np.roll(verts, -1, axis=0)
    lengths = np.linalg.norm(ends - verts, axis=1)
    mids = 0.5 * (verts + ends)
    candidates = np.ones(len(verts), dtype=bool)
    if apex_at_top:
        row_counts = np.count_nonzero(m_box, axis=1)
        centroid_row = (np.arange(len(row_counts)) @ row_counts) / row_counts.sum() * scale[0]
        below = mids[:, 0] > centroid_row
        if below.any():
            candidates = below
    best = int(np.flatnonzero(candidates)[np.argmax(lengths[candidates])])
    # A digitised oblique base gives several nearly collinear hull edges: extend the
    # longest one over its neighbours within 10 degrees of its direction.
    nv = len(verts)
    direction = (ends - verts) / np.maximum(lengths, 1e-12)[:, None]
    cos_limit = math.cos(math.radians(10.0))
    first, last = best, best
    while (last + 1) % nv != first and direction[(last + 1) % nv] @ direction[best] > cos_limit:
        last = (last + 1) % nv
    while (first - 1) % nv != last and direction[(first - 1) % nv] @ direction[best] > cos_limit:
        first = (first - 1) % nv
    base_mid = 0.5 * (verts[first] + ends[last])
    rel = pts - base_mid
    apex = pts[np.argmax(np.einsum("ij,ij->i", rel, rel))]
    axis = apex - base_mid
    length = float(np.linalg.norm(axis))
    if length == 0.0:
        return empty
    u = axis / length
    n = np.array([-u[1], u[0]])
    # Sample the mask (bilinear, level 0.5 = the boundary half-way between pixel centres)
    # along the line through the middle of each slab, perpendicular to the axis.
    half_width = np.abs(rel @ n).max() + 2.0 * scale.max()
    step = scale.min() / 2.0
    t = np.arange(-half_width, half_width + step, step)
    levels = (np.arange(n_disks) + 0.5) * (length / n_disks)
    centres = base_mid + levels[:, None] * u
    coords = (centres[:, None, :] + t[None, :, None] * n) / scale  # (n_disks, K, 2) pixels
    values = ndi.map_coordinates(
        m_box.astype(np.float32),
        coords.reshape(-1, 2).T,
        order=1,
        mode="constant",
        cval=0.0,
    ).reshape(n_disks, len(t))
    diameters = np.zeros(n_disks)
    for i, v in enumerate(values):
        inside = np.flatnonzero(v >= 0.5)
        if inside.size == 0:
            continue
        k0, k1 = inside[0], inside[-1]
        left = t[k0]
        if k0 > 0:
            left -= step * (v[k0] - 0.5) / (v[k0] - v[k0 - 1])
        right = t[k1]
        if k1 + 1 < len(t):
            right += step * (v[k1] - 0.5) / (v[k1] - v[k1 + 1])
        diameters[i] = right - left
    return length, diameters


def biplane_volume_from_disks(length_a, diameters_a, length_b, diameters_b) -> float:
    """Biplane volume (ml) from the long axes and disk diameters of two orthogonal views.

    Args:
        length_a: long-axis length of the first view (mm).
        diameters_a: its disk diameters (mm), shape (n,).
        length_b: long-axis length of the second view (mm).
        diameters_b: its disk diameters (mm), shape (n,).

    Returns:
        pi / 4 * sum(a_i b_i) * max(L_a, L_b) / n / 1000, in ml; NaN if any input is NaN.
    """
    da = np.asarray(diameters_a, dtype=np.float64).ravel()
    db = np.asarray(diameters_b, dtype=np.float64).ravel()
    if da.shape != db.shape or da.size == 0:
        raise ValueError(
            f"diameters_a and diameters_b must have the same nonzero length, got "
            f"{da.shape} and {db.shape}"
        )
    la, lb = float(length_a), float(length_b)
    if not (math.isfinite(la) and math.isfinite(lb)) or not (
        np.isfinite(da).all() and np.isfinite(db).all()
    ):
        return float("nan")
    h = max(la, lb) / da.size
    return float(math.pi / 4.0 * np.sum(da * db) * h / 1000.0)


def simpson_biplane_volume(lv_2ch, lv_4ch, spacing_2ch, spacing_4ch, n_disks: int = N_DISKS):
    """LV volume in ml by Simpson's biplane method of disks.

    Args:
        lv_2ch: 2D boolean LV cavity mask of the apical 2-chamber view (flat base).
        lv_4ch: 2D boolean LV cavity mask of the apical 4-chamber view.
        spacing_2ch: ``(row_mm, col_mm)`` of the 2CH image.
        spacing_4ch: ``(row_mm, col_mm)`` of the 4CH image.
        n_disks: number of disks (20).

    Returns:
        The volume in ml; NaN if either mask is empty.
    """
    la, da = lv_disks(lv_2ch, spacing_2ch, n_disks)
    lb, db = lv_disks(lv_4ch, spacing_4ch, n_disks)
    return biplane_volume_from_disks(la, da, lb, db)


def ejection_fraction(edv, esv) -> float:
    """EF = 100 * (EDV - ESV) / EDV in percent; NaN if EDV is not positive or NaN."""
    edv, esv = float(edv), float(esv)
    if not (math.isfinite(edv) and math.isfinite(esv)) or edv <= 0:
        return float("nan")
    return 100.0 * (edv - esv) / edv
