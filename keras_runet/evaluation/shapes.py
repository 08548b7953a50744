"""Anatomical shape metrics of the RU-Net paper (eqs. 2-3): convexity and simplicity.

Pinned definitions (docs/metrics.md):

- Convexity ``Cx = Area(P) / Area(ConvexHull(P))`` in pixel counts: the number of pixels of
  P over the number of pixel centres inside (or on) the convex hull of P's pixel centres.
  That equals ``skimage.morphology.convex_hull_image(P, offset_coordinates=False).sum()``
  in the denominator, so a digitised convex polygon has ``Cx == 1`` exactly. (Convexity is
  a ratio of areas, which an anisotropic grid does not change, so it is measured on the
  grid as given.)
- Simplicity ``Sp = sqrt(4 pi Area(P)) / Perimeter(P)`` with the perimeter estimator of
  ``skimage.measure.perimeter(P, neighborhood=4)`` (the one behind ``regionprops``; its
  8-neighbourhood variant reads ~20 % longer on a disk). Simplicity is not invariant under
  an anisotropic grid (CAMUS pixels are ~0.15 x 0.3 mm: a round LV looks 2:1 in pixels),
  so with a ``spacing`` the mask is first resampled (nearest neighbour) to an isotropic
  grid at the coarser spacing (sampling the fine axis, which digitises the shape the way a
  coarser scanner would; repeating pixels along the coarse axis instead would make
  staircases that the estimator reads ~7 % too long). With this estimator a large digital
  disk reads Sp ~0.95 (the estimator overestimates a digital circle's perimeter by ~5 %), a
  10-pixel disk ~0.99.
- An empty mask gives NaN.

Measurement conventions (docs/thresholds.md). Neither paper names the grid or the hull, and
both move the numbers, so they are named options, gathered in a :class:`ShapeConvention`:

- ``grid`` (one for Sp, one for Cx), the grid the mask is measured on: ``"native"`` (the
  image's own pixels, as given), ``"model"`` (resized by nearest neighbour to the model's
  input size, 256 x 256 by default, the way the camus builder resizes masks) or
  ``"isotropic"`` (resampled to square pixels of the coarser spacing, above; the same as
  native when no spacing is given or the pixels are square).
- ``hull``: ``"pixel_centres"`` (the hull of the pixel centres, above) or ``"skimage"``
  (``skimage.morphology.convex_hull_image(P)`` with its default
  ``offset_coordinates=True``, the hull of the pixels' edge midpoints, as vitalab/vital
  uses it: a larger hull, so a lower Cx).

The default, :data:`DEFAULT_CONVENTION`, is what the package has always measured: Sp on the
isotropic grid, Cx on the native grid, pixel-centre hull. :data:`CONVENTIONS` names a few
complete choices.

>>> from skimage.draw import disk
>>> m = np.zeros((41, 41), bool); m[disk((20, 20), 15)] = True
>>> round(convexity(m), 3), round(convexity(m, hull="skimage"), 3)
(1.0, 0.978)
>>> shape_convention("native")
ShapeConvention(simplicity_grid='native', convexity_grid='native', hull='pixel_centres', model_size=(256, 256))
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

import numpy as np
from scipy.spatial import ConvexHull, QhullError

from keras_runet.evaluation._validation import as_mask, as_spacing, bbox, crop_padded
from keras_runet.evaluation.distances import _contour_padded

__all__ = [
    "CONVENTIONS",
    "DEFAULT_CONVENTION",
    "GRIDS",
    "HULLS",
    "ShapeConvention",
    "convexity",
    "hull_pixel_count",
    "perimeter4",
    "resample_isotropic",
    "resample_to_model_grid",
    "shape_convention",
    "shape_metrics",
    "simplicity",
]

# The grids Sp and Cx may be measured on, and the convex-hull conventions (module docstring).
NATIVE, MODEL, ISOTROPIC = GRIDS = ("native", "model", "isotropic")
PIXEL_CENTRES, SKIMAGE = HULLS = ("pixel_centres", "skimage")
MODEL_SIZE = (256, 256)


def _check_choice(value, choices, what: str) -> str:
    if value not in choices:
        raise ValueError(f"{what} must be one of {', '.join(choices)}; got {value!r}")
    return value


@dataclasses.dataclass(frozen=True)
class ShapeConvention:
    """How simplicity and convexity are measured (docs/thresholds.md).

    Attributes:
        simplicity_grid: grid of Sp: "native", "model" or "isotropic".
        convexity_grid: grid of Cx: "native", "model" or "isotropic".
        hull: convex hull of Cx: "pixel_centres" or "skimage".
        model_size: ``(rows, cols)`` of the "model" grid.

    Raises:
        ValueError: a name that is not one of the choices (the message lists them).
    """

    simplicity_grid: str = ISOTROPIC
    convexity_grid: str = NATIVE
    hull: str = PIXEL_CENTRES
    model_size: tuple[int, int] = MODEL_SIZE

    def __post_init__(self):
        _check_choice(self.simplicity_grid, GRIDS, "ShapeConvention.simplicity_grid")
        _check_choice(self.convexity_grid, GRIDS, "ShapeConvention.convexity_grid")
        _check_choice(self.hull, HULLS, "ShapeConvention.hull")
        try:
            size = tuple(int(n) for n in self.model_size)
        except (TypeError, ValueError):
            size = ()
        if len(size) != 2 or min(size) < 1 or size != tuple(self.model_size):
            raise ValueError(
                f"ShapeConvention.model_size must be two positive integers, got {self.model_size!r}"
            )
        object.__setattr__(self, "model_size", size)

    @property
    def name(self) -> str | None:
        """The name of this convention in :data:`CONVENTIONS`, None if it has none."""
        return next((k for k, v in CONVENTIONS.items() if v == self), None)

    def to_dict(self) -> dict:
        """JSON-ready dict (``model_size`` as a list)."""
        d = dataclasses.asdict(self)
        d["model_size"] = list(self.model_size)
        return d

    @classmethod
    def from_dict(cls, values: Mapping) -> ShapeConvention:
        """From :meth:`to_dict`'s dict; unknown keys raise ValueError."""
        if not isinstance(values, Mapping):
            raise ValueError(f"a shape convention must be a mapping, got {values!r}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - names
        if unknown:
            raise ValueError(
                f"unknown ShapeConvention fields {sorted(unknown)}; known: {sorted(names)}"
            )
        kwargs = dict(values)
        if "model_size" in kwargs:
            kwargs["model_size"] = tuple(kwargs["model_size"])
        return cls(**kwargs)


# Named conventions. "default" is what the package measures unless told otherwise.
CONVENTIONS: dict[str, ShapeConvention] = {
    "default": ShapeConvention(),
    NATIVE: ShapeConvention(NATIVE, NATIVE, PIXEL_CENTRES),
    MODEL: ShapeConvention(MODEL, MODEL, PIXEL_CENTRES),
    ISOTROPIC: ShapeConvention(ISOTROPIC, ISOTROPIC, PIXEL_CENTRES),
    "vital": ShapeConvention(MODEL, MODEL, SKIMAGE),
}
DEFAULT_CONVENTION = CONVENTIONS["default"]


def shape_convention(convention=None, *, grid: str | None = None, hull: str | None = None):
    """A :class:`ShapeConvention` from a name, a dict or a convention, with overrides.

    Args:
        convention: a name of :data:`CONVENTIONS`, a dict (:meth:`ShapeConvention.to_dict`),
            a :class:`ShapeConvention`, or None (:data:`DEFAULT_CONVENTION`).
        grid: if given, the grid of both Sp and Cx.
        hull: if given, the hull convention.

    Raises:
        ValueError: an unknown name (the message lists the choices).
    """
    if convention is None:
        conv = DEFAULT_CONVENTION
    elif isinstance(convention, ShapeConvention):
        conv = convention
    elif isinstance(convention, str):
        conv = CONVENTIONS.get(convention)
        if conv is None:
            raise ValueError(
                f"unknown shape convention {convention!r}; choose from {', '.join(CONVENTIONS)}"
            )
    else:
        conv = ShapeConvention.from_dict(convention)
    changes = {}
    if grid is not None:
        _check_choice(grid, GRIDS, "grid")
        changes.update(simplicity_grid=grid, convexity_grid=grid)
    if hull is not None:
        changes["hull"] = _check_choice(hull, HULLS, "hull")
    return dataclasses.replace(conv, **changes) if changes else conv


# skimage.measure.perimeter's weights for the codes of its 3x3 convolution (neighborhood=4).
_PERIMETER_WEIGHTS = np.zeros(50, dtype=np.float64)
_PERIMETER_WEIGHTS[[5, 7, 15, 17, 25, 27]] = 1.0
_PERIMETER_WEIGHTS[[21, 33]] = math.sqrt(2.0)
_PERIMETER_WEIGHTS[[13, 23]] = (1.0 + math.sqrt(2.0)) / 2.0


def hull_pixel_count(points: np.ndarray, assume_unique: bool = False) -> int:
    """Number of integer grid points inside or on the convex hull of ``points``.

    Args:
        points: (N, 2) integer (row, col) coordinates, e.g. the contour pixels of a mask.
        assume_unique: skip removing repeated points (they must then be unique).

    Returns:
        The count (0 for no points). Degenerate hulls (one point, collinear points) count
        the grid points on the segment between the extreme points.
    """
    pts = np.asarray(points, dtype=np.int64).reshape(-1, 2)
    if not assume_unique:
        pts = np.unique(pts, axis=0)
    if len(pts) == 0:
        return 0
    if len(pts) < 3:
        return _segment_count(pts)
    try:
        hull = ConvexHull(pts.astype(np.float64))
    except QhullError:  # all points on one line
        return _segment_count(pts)
    # Each facet: n_r * r + n_c * c + offset <= 0 inside (unit normals). Scan row by row:
    # on row r the hull is the interval of c allowed by every facet with n_c != 0.
    n_r, n_c, off = hull.equations.T
    rows = np.arange(pts[:, 0].min(), pts[:, 0].max() + 1, dtype=np.float64)
    rhs = -(off[None, :] + n_r[None, :] * rows[:, None])
    eps = 1e-9
    upper = np.full(rows.shape, np.inf)
    lower = np.full(rows.shape, -np.inf)
    pos = n_c > eps
    neg = n_c < -eps
    if pos.any():
        upper = np.min(rhs[:, pos] / n_c[pos], axis=1)
    if neg.any():
        lower = np.max(rhs[:, neg] / n_c[neg], axis=1)
    tol = 1e-7
    hi = np.floor(upper + tol)
    lo = np.ceil(lower - tol)
    return int(np.clip(hi - lo + 1, 0, None).sum())


def _segment_count(pts: np.ndarray) -> int:
    # Extreme points of collinear points: lexicographic min and max.
    order = np.lexsort((pts[:, 1], pts[:, 0]))
    d = np.abs(pts[order[-1]] - pts[order[0]])
    return int(math.gcd(int(d[0]), int(d[1])) + 1)


def row_extremes(pts) -> np.ndarray:
    """The first and last point of every row of row-major sorted points (``np.nonzero``).

    The convex hull of a mask is the hull of these points (at most two per row).

    Args:
        pts: ``(rows, cols)`` index arrays in row-major order, e.g. ``np.nonzero(contour)``.

    Returns:
        (N, 2) int array of (row, col).
    """
    r, c = pts
    if r.size == 0:
        return np.zeros((0, 2), dtype=np.intp)
    starts = np.flatnonzero(np.r_[True, r[1:] != r[:-1]])
    ends = np.r_[starts[1:] - 1, r.size - 1]
    two = ends != starts  # rows of one pixel give one point
    return np.concatenate(
        [np.stack([r[starts], c[starts]], 1), np.stack([r[ends[two]], c[ends[two]]], 1)]
    )


def _convexity_cropped(mask_box: np.ndarray, contour_box: np.ndarray, pts=None) -> float:
    area = np.count_nonzero(mask_box)
    if area == 0:
        return float("nan")
    if pts is None:
        pts = np.nonzero(contour_box)
    return area / hull_pixel_count(row_extremes(pts), assume_unique=True)


def resample_to_model_grid(mask, model_size=MODEL_SIZE) -> np.ndarray:
    """Nearest-neighbour resize of a whole mask to the model's grid, the way the camus
    builder resizes its masks (``skimage.transform.resize``, ``order=0``, ``mode="edge"``).

    Args:
        mask: 2D boolean mask (the whole image, not a crop: the grid depends on its shape).
        model_size: ``(rows, cols)`` of the model's input.

    Returns:
        The boolean mask of shape ``model_size``.
    """
    from skimage.transform import resize

    m = as_mask(mask)
    size = tuple(int(n) for n in model_size)
    if m.shape == size:
        return m
    out = resize(
        m.view(np.uint8), size, order=0, mode="edge", anti_aliasing=False, preserve_range=True
    )
    return out > 0.5


def _on_grid(m: np.ndarray, spacing, grid: str, model_size) -> np.ndarray | None:
    """The mask on ``grid``, cropped to its bounding box with a one-pixel background frame
    (None when empty)."""
    _check_choice(grid, GRIDS, "grid")
    if grid == MODEL:
        m = resample_to_model_grid(m, model_size)
    box = bbox(m)
    if box is None:
        return None
    (m_box,) = crop_padded((m,), box)
    if grid == ISOTROPIC and spacing is not None:
        m_box = np.pad(resample_isotropic(m_box[1:-1, 1:-1], spacing, (box[0], box[2])), 1)
    return m_box


def _convexity_box(m_box: np.ndarray | None, hull: str) -> float:
    if m_box is None or not m_box.any():
        return float("nan")
    if hull == PIXEL_CENTRES:
        return float(_convexity_cropped(m_box, _contour_padded(m_box)))
    from skimage.morphology import convex_hull_image

    return float(np.count_nonzero(m_box) / np.count_nonzero(convex_hull_image(m_box)))


def convexity(
    mask,
    spacing=None,
    *,
    grid: str = NATIVE,
    hull: str = PIXEL_CENTRES,
    model_size=MODEL_SIZE,
) -> float:
    """Convexity Cx = Area(P) / Area(ConvexHull(P)), in pixel counts (paper, eq. 2).

    Args:
        mask: 2D boolean mask (the whole image for ``grid="model"``).
        spacing: ``(row_mm, col_mm)``, used by ``grid="isotropic"`` only.
        grid: "native" (default: the grid as given), "model" (resized to ``model_size``)
            or "isotropic" (square pixels of the coarser spacing).
        hull: "pixel_centres" (default: the hull of the pixel centres) or "skimage"
            (``convex_hull_image``'s default, the hull of the pixels' edge midpoints).
        model_size: ``(rows, cols)`` of the "model" grid.

    Returns:
        Cx in (0, 1]; 1 for a digitised convex shape with the pixel-centre hull; NaN for
        an empty mask.

    Raises:
        ValueError: a bad mask or spacing, or a grid / hull that is not one of the choices.
    """
    m = as_mask(mask)
    _check_choice(hull, HULLS, "hull")
    if spacing is not None:
        spacing = as_spacing(spacing)
    return _convexity_box(_on_grid(m, spacing, grid, model_size), hull)


def perimeter4(mask) -> float:
    """Perimeter in pixels, ``skimage.measure.perimeter(mask, neighborhood=4)``'s estimator.

    Args:
        mask: 2D boolean mask.

    Returns:
        The perimeter in pixel units (0.0 for an empty mask).
    """
    m = as_mask(mask)
    box = bbox(m)
    if box is None:
        return 0.0
    (m_box,) = crop_padded((m,), box)
    return _perimeter_from_contour(_contour_padded(m_box))


def _perimeter_from_contour(contour_box: np.ndarray, pts=None) -> float:
    # skimage convolves the contour image with [[10, 2, 10], [2, 1, 2], [10, 2, 10]] and
    # weights the codes; only contour pixels get odd codes (the only ones with a weight),
    # so the codes are computed at the contour pixels alone. contour_box must have a
    # background frame of one pixel (crop_padded gives it).
    r, c = np.nonzero(contour_box) if pts is None else pts
    if r.size == 0:
        return 0.0
    cb = contour_box.view(np.uint8)
    four = cb[r - 1, c] + cb[r + 1, c] + cb[r, c - 1] + cb[r, c + 1]
    diag = cb[r - 1, c - 1] + cb[r - 1, c + 1] + cb[r + 1, c - 1] + cb[r + 1, c + 1]
    codes = 1 + 2 * four.astype(np.intp) + 10 * diag.astype(np.intp)
    return float(np.bincount(codes, minlength=50) @ _PERIMETER_WEIGHTS)


def resample_isotropic(mask: np.ndarray, spacing, origin=(0, 0)) -> np.ndarray:
    """Nearest-neighbour resampling of a mask to square pixels of the coarser spacing.

    New pixel ``j`` (counted from the image origin) takes the old pixel
    ``floor((j + 0.5) / factor)``; ``origin`` says where ``mask`` sits in the image, so a
    crop resamples exactly like the same pixels of the whole image.

    Args:
        mask: 2D boolean mask (or a crop of one).
        spacing: ``(row_mm, col_mm)``.
        origin: ``(row, col)`` of ``mask[0, 0]`` in the whole image.

    Returns:
        The resampled mask (the input itself when the pixels are already square).
    """
    m = as_mask(mask)
    sr, sc = as_spacing(spacing)
    if math.isclose(sr, sc, rel_tol=1e-6):
        return m
    target = max(sr, sc)
    out = m
    for axis, s in ((0, sr), (1, sc)):
        factor = s / target
        if math.isclose(factor, 1.0, rel_tol=1e-6):
            continue
        n, o = out.shape[axis], int(origin[axis])
        first = math.ceil(o * factor - 0.5)
        stop = math.ceil((o + n) * factor - 0.5)
        j = np.arange(first, max(stop, first + 1))
        src = np.floor((j + 0.5) / factor).astype(np.intp) - o
        out = np.take(out, np.clip(src, 0, n - 1), axis=axis)
    return out


def _simplicity_cropped(mask_box: np.ndarray, contour_box: np.ndarray, pts=None) -> float:
    area = np.count_nonzero(mask_box)
    if area == 0:
        return float("nan")
    perimeter = _perimeter_from_contour(contour_box, pts)
    if perimeter <= 0:  # e.g. a sliver that the isotropic resampling thinned away
        return float("nan")
    return math.sqrt(4.0 * math.pi * area) / perimeter


def simplicity(mask, spacing=None, *, grid: str = ISOTROPIC, model_size=MODEL_SIZE) -> float:
    """Simplicity Sp = sqrt(4 pi Area(P)) / Perimeter(P) (paper, eq. 3).

    Args:
        mask: 2D boolean mask (the whole image for ``grid="model"``).
        spacing: optional ``(row_mm, col_mm)``; with the default ``grid="isotropic"``,
            when the pixels are not square the mask is resampled to square pixels of the
            coarser spacing first (see the module docstring). None: the pixel grid as given.
        grid: "isotropic" (default), "native" (the grid as given, whatever the spacing)
            or "model" (resized to ``model_size`` by nearest neighbour).
        model_size: ``(rows, cols)`` of the "model" grid.

    Returns:
        Sp (1 for an ideal disk; ~0.95 for a large digital disk with this estimator);
        NaN for an empty mask.

    Raises:
        ValueError: a bad mask or spacing, or a grid that is not one of the choices.
    """
    m = as_mask(mask)
    if spacing is not None:
        spacing = as_spacing(spacing)
    m_box = _on_grid(m, spacing, grid, model_size)
    if m_box is None:
        return float("nan")
    return float(_simplicity_cropped(m_box, _contour_padded(m_box)))


def shape_metrics(mask, spacing=None, convention=None) -> tuple[float, float]:
    """``(convexity, simplicity)`` of one mask under a measurement convention.

    Args:
        mask: 2D boolean mask of the whole image.
        spacing: ``(row_mm, col_mm)`` (needed by the "isotropic" grid).
        convention: a :class:`ShapeConvention`, a name of :data:`CONVENTIONS` or a dict;
            None: :data:`DEFAULT_CONVENTION` (the numbers of :func:`convexity` and
            :func:`simplicity` with their defaults).

    Returns:
        ``(Cx, Sp)``, NaN for an empty mask.

    >>> m = np.zeros((40, 40), bool); m[5:35, 10:30] = True
    >>> [round(v, 3) for v in shape_metrics(m, (0.15, 0.3))]
    [1.0, 0.93]
    """
    c = shape_convention(convention)
    return (
        convexity(mask, spacing, grid=c.convexity_grid, hull=c.hull, model_size=c.model_size),
        simplicity(mask, spacing, grid=c.simplicity_grid, model_size=c.model_size),
    )
