"""Outlier criteria of the RU-Net paper (Table I), configurable.

- Geometric outlier: an image whose LVendo or LVepi MAD exceeds 3.5 mm (ED) / 4.0 mm (ES),
  or whose LVendo or LVepi HD exceeds 8.2 mm (ED) / 8.8 mm (ES).
- Anatomical outlier: an image whose LVendo or LVepi simplicity or convexity is below the
  lowest value seen on expert annotations. docs/metrics.md's reading of the (garbled) Table I:
  LVendo Sp 0.741, Cx 0.960; LVepi (LV + myocardium, filled) Sp 0.529, Cx 0.694.
- A structure missing from the prediction (NaN metric) makes the image an outlier of both
  kinds: the distance or shape cannot be measured because the segmentation failed.

The shape limits only mean something under the convention Sp and Cx were measured with
(:class:`~keras_runet.evaluation.shapes.ShapeConvention`: grid and hull). The thresholds carry
it (``convention``; default: the package's default convention, which the paper's Table I
values do not state): ``runet thresholds`` writes the convention it calibrated under, and a
JSON file without one reads as the default.

>>> t = OutlierThresholds.from_dict({"simplicity_lvendo": 0.7, "convention": "isotropic"})
>>> t.convention.convexity_grid, OutlierThresholds.from_dict(t.to_dict()) == t
('isotropic', True)
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

from keras_runet.evaluation._validation import LV_STRUCTURES, LVENDO, LVEPI, check_instant
from keras_runet.evaluation.shapes import DEFAULT_CONVENTION, ShapeConvention, shape_convention

__all__ = ["OutlierThresholds", "anatomical_outlier", "geometric_outlier"]


@dataclasses.dataclass(frozen=True)
class OutlierThresholds:
    """Thresholds of the outlier criteria (defaults: RU-Net paper, Table I).

    Attributes:
        mad_mm_ed: MAD limit (mm) at end-diastole.
        mad_mm_es: MAD limit (mm) at end-systole.
        hd_mm_ed: HD limit (mm) at end-diastole.
        hd_mm_es: HD limit (mm) at end-systole.
        simplicity_lvendo: lowest expert simplicity of the LV cavity.
        convexity_lvendo: lowest expert convexity of the LV cavity.
        simplicity_lvepi: lowest expert simplicity of the filled epicardium (LV + myo).
        convexity_lvepi: lowest expert convexity of the filled epicardium.
        structures: the structures the criteria look at.
        convention: how Sp and Cx are measured for the shape limits (a
            :class:`~keras_runet.evaluation.shapes.ShapeConvention`; a name of
            ``shapes.CONVENTIONS`` or a dict is converted).
    """

    mad_mm_ed: float = 3.5
    mad_mm_es: float = 4.0
    hd_mm_ed: float = 8.2
    hd_mm_es: float = 8.8
    simplicity_lvendo: float = 0.741
    convexity_lvendo: float = 0.960
    simplicity_lvepi: float = 0.529
    convexity_lvepi: float = 0.694
    structures: tuple[str, ...] = LV_STRUCTURES
    convention: ShapeConvention = DEFAULT_CONVENTION

    def __post_init__(self):
        try:
            conv = shape_convention(self.convention)
        except (TypeError, ValueError) as err:
            raise ValueError(f"OutlierThresholds.convention: {err}") from None
        object.__setattr__(self, "convention", conv)
        for f in dataclasses.fields(self):
            if f.name in ("structures", "convention"):
                continue
            value = getattr(self, f.name)
            if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise ValueError(f"OutlierThresholds.{f.name} must be a number >= 0, got {value!r}")
        unknown = set(self.structures) - set(LV_STRUCTURES)
        if unknown:
            raise ValueError(
                f"OutlierThresholds.structures may hold {LVENDO} and {LVEPI}, got {self.structures!r}"
            )

    def mad_limit(self, instant: str) -> float:
        """MAD limit (mm) for ``instant`` ("ED" or "ES")."""
        return self.mad_mm_ed if check_instant(instant) == "ED" else self.mad_mm_es

    def hd_limit(self, instant: str) -> float:
        """HD limit (mm) for ``instant`` ("ED" or "ES")."""
        return self.hd_mm_ed if check_instant(instant) == "ED" else self.hd_mm_es

    def shape_limits(self, structure: str) -> tuple[float, float]:
        """``(simplicity, convexity)`` lower limits for "LVendo" or "LVepi"."""
        if structure == LVENDO:
            return self.simplicity_lvendo, self.convexity_lvendo
        if structure == LVEPI:
            return self.simplicity_lvepi, self.convexity_lvepi
        raise ValueError(f"structure must be {LVENDO!r} or {LVEPI!r}, got {structure!r}")

    def to_dict(self) -> dict:
        """The thresholds as a JSON-ready dict."""
        d = dataclasses.asdict(self)
        d["structures"] = list(self.structures)
        d["convention"] = self.convention.to_dict()
        return d

    @classmethod
    def from_dict(cls, values: Mapping) -> OutlierThresholds:
        """Build from a dict (e.g. :meth:`to_dict`'s); unknown keys raise ValueError.

        ``convention`` may be a dict or a name; absent, the default convention.
        """
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - names
        if unknown:
            raise ValueError(f"unknown OutlierThresholds fields: {sorted(unknown)}")
        kwargs = dict(values)
        if "structures" in kwargs:
            kwargs["structures"] = tuple(kwargs["structures"])
        return cls(**kwargs)


def _is_bad(value: float, limit: float, above: bool) -> bool:
    if value is None or not math.isfinite(value):
        return True
    return value > limit if above else value < limit


def geometric_outlier(metrics: Mapping, instant: str, thresholds: OutlierThresholds | None = None):
    """Whether an image is a geometric outlier, and why.

    Args:
        metrics: a row with ``"{structure}_mad_mm"`` and ``"{structure}_hd_mm"`` keys.
        instant: "ED" or "ES".
        thresholds: :class:`OutlierThresholds` (default: Table I).

    Returns:
        ``(is_outlier, reasons)``, reasons a list like ``["LVendo_hd_mm"]``.
    """
    t = thresholds or OutlierThresholds()
    reasons = []
    for s in t.structures:
        if _is_bad(metrics[f"{s}_mad_mm"], t.mad_limit(instant), above=True):
            reasons.append(f"{s}_mad_mm")
        if _is_bad(metrics[f"{s}_hd_mm"], t.hd_limit(instant), above=True):
            reasons.append(f"{s}_hd_mm")
    return bool(reasons), reasons


def anatomical_outlier(
    metrics: Mapping, thresholds: OutlierThresholds | None = None, prefix: str = ""
):
    """Whether a segmentation is an anatomical outlier, and why.

    Args:
        metrics: a row with ``"{structure}_{prefix}simplicity"`` and
            ``"{structure}_{prefix}convexity"`` keys.
        thresholds: :class:`OutlierThresholds` (default: Table I).
        prefix: "" for the prediction's shape metrics, "ref_" for the reference's.

    Returns:
        ``(is_outlier, reasons)``, reasons a list like ``["LVepi_convexity"]``.
    """
    t = thresholds or OutlierThresholds()
    reasons = []
    for s in t.structures:
        sp_min, cx_min = t.shape_limits(s)
        if _is_bad(metrics[f"{s}_{prefix}simplicity"], sp_min, above=False):
            reasons.append(f"{s}_{prefix}simplicity")
        if _is_bad(metrics[f"{s}_{prefix}convexity"], cx_min, above=False):
            reasons.append(f"{s}_{prefix}convexity")
    return bool(reasons), reasons
