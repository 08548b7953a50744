"""Overlap and contour distances between two binary masks, in millimetres.

The definitions are those of CAMUS work (docs/metrics.md), checked against medpy:

- The contour of a mask is the mask minus its erosion by the 4-connected cross
  (``scipy.ndimage.binary_erosion``, image border counted as background). This is medpy's
  ``result ^ binary_erosion(result, generate_binary_structure(2, 1))`` exactly.
- ``d(P -> G)``: for every contour pixel of P, the Euclidean distance (mm, with
  ``sampling=spacing``) to the nearest contour pixel of G.
- HD = max(max d(P -> G), max d(G -> P)) (``medpy.metric.binary.hd``).
- MAD = (mean d(P -> G) + mean d(G -> P)) / 2 (medpy <= 0.4 ``assd``, used in 2019);
  ``pooled=True`` gives the newer definition: the mean over both contour sets together.
- An empty prediction or reference gives NaN, never an exception or inf.

Speed: the distance transforms run on the bounding box of both masks padded by one
pixel (a contour's bounding box is its mask's), not on the whole image; the result is the
same because every contour pixel lies inside that box. They are still most of the time of a
full per-image evaluation; ``method="kdtree"`` finds the same nearest contour pixels with a
k-d tree over the contour pixels (in mm) and computes the distances with the same
floating-point operations: the same numbers, faster (``benchmarks/bench_evaluation.py
--distance-method``; measured times in benchmarks/RESULTS.md).

Spacing is ``(row_mm, col_mm)`` everywhere.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from keras_runet.evaluation._validation import as_mask_pair, as_spacing, bbox, crop_padded

__all__ = [
    "DISTANCE_METHODS",
    "contour",
    "contour_distances",
    "dice",
    "distance_metrics",
    "hausdorff_distance",
    "mean_absolute_distance",
]

CROSS = ndi.generate_binary_structure(2, 1)


def contour(mask: np.ndarray) -> np.ndarray:
    """The inner contour of a boolean mask: the mask minus its erosion by the 4-cross.

    Args:
        mask: 2D boolean array.

    Returns:
        Boolean array of the same shape, True on the contour pixels (8-connected line).
    """
    mask = np.asarray(mask, dtype=bool)
    return mask & ~ndi.binary_erosion(mask, structure=CROSS, border_value=0)


def dice(pred, ref) -> float:
    """Dice overlap 2 |P & G| / (|P| + |G|).

    Args:
        pred: 2D boolean mask (the prediction).
        ref: 2D boolean mask (the reference), same shape.

    Returns:
        The Dice in [0, 1]; 0.0 when exactly one mask is empty, NaN when both are.
    """
    p, g = as_mask_pair(pred, ref)
    total = np.count_nonzero(p) + np.count_nonzero(g)
    if total == 0:
        return float("nan")
    return 2.0 * np.count_nonzero(p & g) / total


def _contour_padded(mask_box: np.ndarray) -> np.ndarray:
    """:func:`contour` of a mask whose outer one-pixel frame is background (fast path).

    With that zero frame, eroding by the cross is five shifted ANDs, the same as
    ``binary_erosion(..., border_value=0)`` on the full image.
    """
    inner = mask_box[1:-1, 1:-1]
    eroded = (
        inner & mask_box[:-2, 1:-1] & mask_box[2:, 1:-1] & mask_box[1:-1, :-2] & mask_box[1:-1, 2:]
    )
    out = np.zeros_like(mask_box)
    out[1:-1, 1:-1] = inner & ~eroded
    return out


def _distances_to(target_contour: np.ndarray, points: tuple[np.ndarray, np.ndarray], spacing):
    """Distance (mm) from each of ``points`` (row, col indices) to the nearest target pixel.

    The nearest pixels come from scipy's Euclidean feature transform with
    ``sampling=spacing``; the distances are then computed only at ``points``, with the same
    floating-point operations as ``distance_transform_edt`` (so the values are identical).
    """
    ft = ndi.distance_transform_edt(
        ~target_contour, sampling=spacing, return_distances=False, return_indices=True
    )
    rows, cols = points
    dr = (ft[0][rows, cols] - rows).astype(np.float64) * spacing[0]
    dc = (ft[1][rows, cols] - cols).astype(np.float64) * spacing[1]
    return np.sqrt(dr * dr + dc * dc)


def _distances_kdtree(target_pts, query_pts, spacing):
    """Like :func:`_distances_to`, with the nearest target pixel from a k-d tree (in mm).

    The nearest pixel is exact (no approximation), and the distance is then computed with
    the same floating-point operations as the EDT's, so the values agree with it.
    """
    from scipy.spatial import cKDTree

    scale = np.asarray(spacing, dtype=np.float64)
    target = np.stack(target_pts, axis=1)
    query = np.stack(query_pts, axis=1)
    _, nearest = cKDTree(target * scale).query(query * scale)
    dr = (target[nearest, 0] - query[:, 0]).astype(np.float64) * spacing[0]
    dc = (target[nearest, 1] - query[:, 1]).astype(np.float64) * spacing[1]
    return np.sqrt(dr * dr + dc * dc)


DISTANCE_METHODS = ("edt", "kdtree")


def _check_method(method: str) -> str:
    if method not in DISTANCE_METHODS:
        raise ValueError(f"method must be one of {DISTANCE_METHODS}, got {method!r}")
    return method


def _directed(
    p_box: np.ndarray,
    g_box: np.ndarray,
    spacing,
    cp=None,
    cg=None,
    p_pts=None,
    g_pts=None,
    method: str = "edt",
):
    """Directed contour distances on cropped, zero-framed masks; None if one is empty.

    ``cp``/``cg`` (contours) and ``p_pts``/``g_pts`` (their ``np.nonzero``) may be passed
    when the caller has them already.
    """
    if cp is None:
        cp = _contour_padded(p_box)
    if cg is None:
        cg = _contour_padded(g_box)
    if p_pts is None:
        p_pts = np.nonzero(cp)
    if g_pts is None:
        g_pts = np.nonzero(cg)
    if p_pts[0].size == 0 or g_pts[0].size == 0:
        return None
    if method == "kdtree":
        return _distances_kdtree(g_pts, p_pts, spacing), _distances_kdtree(p_pts, g_pts, spacing)
    return _distances_to(cg, p_pts, spacing), _distances_to(cp, g_pts, spacing)


def contour_distances(
    pred, ref, spacing, method: str = "edt"
) -> tuple[np.ndarray, np.ndarray] | None:
    """Distances from each contour pixel of one mask to the other mask's contour.

    Args:
        pred: 2D boolean mask.
        ref: 2D boolean mask, same shape.
        spacing: ``(row_mm, col_mm)``.
        method: "edt" (the definition: scipy's Euclidean distance transform with
            ``sampling=spacing`` on the box around both contours) or "kdtree" (the same
            nearest contour pixels found with a k-d tree: the same numbers, faster).

    Returns:
        ``(d_pred_to_ref, d_ref_to_pred)``, 1D float arrays in mm (ordered like
        ``np.nonzero`` of the contours), or None if either mask is empty.
    """
    p, g = as_mask_pair(pred, ref)
    spacing = as_spacing(spacing)
    _check_method(method)
    if not p.any() or not g.any():
        return None
    box = bbox(p | g)
    p_box, g_box = crop_padded((p, g), box)
    return _directed(p_box, g_box, spacing, method=method)


def _summarise(dists, pooled: bool = False) -> dict[str, float]:
    if dists is None:
        nan = float("nan")
        return {"hd_mm": nan, "mad_mm": nan, "mad_pooled_mm": nan}
    d_pg, d_gp = dists
    return {
        "hd_mm": float(max(d_pg.max(), d_gp.max())),
        "mad_mm": float(0.5 * (d_pg.mean() + d_gp.mean())),
        "mad_pooled_mm": float((d_pg.sum() + d_gp.sum()) / (d_pg.size + d_gp.size)),
    }


def distance_metrics(pred, ref, spacing, method: str = "edt") -> dict[str, float]:
    """HD, MAD and pooled MAD in one pass (two distance transforms).

    Args:
        pred: 2D boolean mask.
        ref: 2D boolean mask, same shape.
        spacing: ``(row_mm, col_mm)``.
        method: "edt" (default) or "kdtree", see :func:`contour_distances`.

    Returns:
        ``{"hd_mm", "mad_mm", "mad_pooled_mm"}``; all NaN if either mask is empty.
    """
    return _summarise(contour_distances(pred, ref, spacing, method))


def hausdorff_distance(pred, ref, spacing) -> float:
    """Symmetric Hausdorff distance between the contours, in mm.

    Equals ``medpy.metric.binary.hd(pred, ref, voxelspacing=spacing)``.

    Args:
        pred: 2D boolean mask.
        ref: 2D boolean mask, same shape.
        spacing: ``(row_mm, col_mm)``.

    Returns:
        max(max d(P -> G), max d(G -> P)) in mm; NaN if either mask is empty.
    """
    return distance_metrics(pred, ref, spacing)["hd_mm"]


def mean_absolute_distance(pred, ref, spacing, pooled: bool = False) -> float:
    """Mean absolute distance between the contours, in mm.

    Args:
        pred: 2D boolean mask.
        ref: 2D boolean mask, same shape.
        spacing: ``(row_mm, col_mm)``.
        pooled: False (default): (mean d(P -> G) + mean d(G -> P)) / 2, which equals
            ``0.5 * (medpy asd(P, G) + asd(G, P))``; True: the mean over both contour
            sets together (the newer "ASSD" of some libraries).

    Returns:
        The MAD in mm; NaN if either mask is empty.
    """
    metrics = distance_metrics(pred, ref, spacing)
    return metrics["mad_pooled_mm" if pooled else "mad_mm"]
