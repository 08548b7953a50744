"""The anatomical criteria as a failure detector, measured against the geometric outliers.

The RU-Net paper notes that its anatomical criteria (simplicity and convexity of LVendo and
LVepi above the lowest values of expert tracings, Table I) need no ground truth, so they can
flag likely failures on new images: ``runet predict``'s "suspicious shape". This module says
how good that detector is, on data where the ground truth is known: a *failure* is a
geometric outlier (which needs the reference), the detector is the anatomical flag.

- :func:`quality_score`: a continuous, ground-truth-free score per image: the smallest
  normalised margin of the prediction's simplicity and convexity to their limits,
  ``(value - limit) / (1 - limit)`` (0 at the limit, 1 for a perfectly simple / convex
  shape; the scale is 1 for a limit of 1 or more), over the structures the criteria look
  at; ``-inf`` for a structure that is missing (NaN metric). By construction the score is
  negative exactly when :func:`~keras_runet.evaluation.anatomical_outlier` flags the image.
- :func:`detection_counts`: precision, recall and F1 of a flag for the failures (NaN where
  undefined: no flagged image for the precision, no failure for the recall).
- :func:`auroc`: the area under the ROC curve of the score (a low score predicts a
  failure), from the Mann-Whitney U statistic: the probability that a failure scores lower
  than a success, ties counting one half. :func:`roc_curve` gives the curve.
- :func:`failure_detector`: all of it per (model, output), the report's "Failure detector"
  section.

Example (two images flagged, one of them a failure; the score ranks the failure lowest):

    >>> from keras_runet.evaluation.detector import auroc, detection_counts
    >>> c = detection_counts([True, True, False, False], [True, False, False, False])
    >>> c["precision"], c["recall"], c["f1"]
    (0.5, 1.0, 0.6666666666666666)
    >>> auroc([-0.3, -0.1, 0.2, 0.4], [True, False, False, False])
    1.0
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from keras_runet.evaluation.outliers import (
    OutlierThresholds,
    anatomical_outlier,
    geometric_outlier,
)

__all__ = [
    "SCORE_COLUMN",
    "auroc",
    "detection_counts",
    "detector_table",
    "failure_detector",
    "quality_score",
    "roc_curve",
]

SCORE_COLUMN = "quality_score"
_SHAPE_METRICS = ("simplicity", "convexity")


def _margin(value, limit: float) -> float:
    if value is None or not math.isfinite(value):
        return -math.inf
    scale = 1.0 - limit if limit < 1.0 else 1.0
    return (float(value) - limit) / scale


def quality_score(
    metrics: Mapping, thresholds: OutlierThresholds | None = None, prefix: str = ""
) -> float:
    """The smallest normalised margin of simplicity and convexity to their limits.

    Args:
        metrics: a row with ``"{structure}_{prefix}simplicity"`` and
            ``"{structure}_{prefix}convexity"`` for the structures of ``thresholds``.
        thresholds: :class:`OutlierThresholds` (default: Table I).
        prefix: "" for the prediction, "ref_" for the reference.

    Returns:
        The score: ``< 0`` if and only if the image is an anatomical outlier under
        ``thresholds``; ``-inf`` for a missing structure; ``inf`` if the thresholds look at
        no structure.
    """
    t = thresholds or OutlierThresholds()
    margins = []
    for s in t.structures:
        limits = dict(zip(_SHAPE_METRICS, t.shape_limits(s), strict=True))
        for m in _SHAPE_METRICS:
            margins.append(_margin(metrics[f"{s}_{prefix}{m}"], limits[m]))
    return min(margins, default=math.inf)


def _as_arrays(scores, failures) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray([np.nan if v is None else float(v) for v in scores], dtype=np.float64)
    f = np.asarray(failures, dtype=bool)
    if s.shape != f.shape or s.ndim != 1:
        raise ValueError(f"scores and failures must be 1-D of one length, got {s.shape}, {f.shape}")
    if np.isnan(s).any():
        raise ValueError(f"scores hold {int(np.isnan(s).sum())} NaN value(s); expected numbers")
    return s, f


def detection_counts(flags: Sequence[bool], failures: Sequence[bool]) -> dict:
    """How well ``flags`` find ``failures``: the confusion counts, precision, recall, F1.

    Returns:
        ``{"n", "n_failures", "n_flagged", "tp", "fp", "fn", "tn", "precision", "recall",
        "f1"}``; a ratio whose denominator is 0 is NaN (F1 too, then).
    """
    p = np.asarray(flags, dtype=bool)
    y = np.asarray(failures, dtype=bool)
    if p.shape != y.shape or p.ndim != 1:
        raise ValueError(f"flags and failures must be 1-D of one length, got {p.shape}, {y.shape}")
    tp, fp = int(np.sum(p & y)), int(np.sum(p & ~y))
    fn, tn = int(np.sum(~p & y)), int(np.sum(~p & ~y))
    nan = float("nan")
    precision = tp / (tp + fp) if tp + fp else nan
    recall = tp / (tp + fn) if tp + fn else nan
    if math.isnan(precision) or math.isnan(recall):
        f1 = nan
    else:
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "n": int(p.size),
        "n_failures": tp + fn,
        "n_flagged": tp + fp,
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
        "precision": precision,
        "recall": recall,
        "f1": f1,
    }


def auroc(scores: Sequence[float], failures: Sequence[bool]) -> float:
    """Area under the ROC curve of ``scores`` for ``failures``, a *low* score predicting one.

    ``U / (n_failures * n_successes)``, U the Mann-Whitney statistic of the successes'
    scores against the failures' (``scipy.stats.mannwhitneyu``): the probability that a
    failure scores below a success, ties counting 1/2. NaN without both kinds of image.
    """
    from scipy.stats import mannwhitneyu

    s, f = _as_arrays(scores, failures)
    n_pos, n_neg = int(f.sum()), int((~f).sum())
    if not n_pos or not n_neg:
        return float("nan")
    u = mannwhitneyu(s[~f], s[f], alternative="two-sided").statistic
    return float(u) / (n_pos * n_neg)


def roc_curve(scores: Sequence[float], failures: Sequence[bool]) -> dict:
    """The ROC curve of ``scores`` (an image is called a failure when its score is <= a
    threshold), one point per distinct score, from ``(0, 0)`` to ``(1, 1)``.

    Returns:
        ``{"fpr": array, "tpr": array, "thresholds": array}``; the first point, ``(0, 0)``,
        calls nothing a failure (its threshold is written -inf).
    """
    s, f = _as_arrays(scores, failures)
    n_pos, n_neg = max(int(f.sum()), 1), max(int((~f).sum()), 1)
    order = np.argsort(s, kind="stable")
    s, f = s[order], f[order]
    # The last index of each run of equal scores (no np.diff: -inf - -inf is NaN).
    last = np.r_[np.nonzero(s[1:] != s[:-1])[0], s.size - 1] if s.size else np.array([], int)
    tp = np.cumsum(f)[last] if s.size else np.array([])
    fp = np.cumsum(~f)[last] if s.size else np.array([])
    return {
        "fpr": np.r_[0.0, fp / n_neg],
        "tpr": np.r_[0.0, tp / n_pos],
        "thresholds": np.r_[-np.inf, s[last]] if s.size else np.array([-np.inf]),
    }


def _group_key(row: Mapping) -> tuple[str, str]:
    return str(row.get("model") or ""), str(row.get("output") or "")


def detector_table(rows: Sequence[Mapping], thresholds: OutlierThresholds | None = None) -> dict:
    """Per (model, output): each image's score, anatomical flag and geometric outlier flag
    (recomputed from the metrics with ``thresholds``).

    Returns:
        ``{(model, output): {"scores": [...], "flags": [...], "failures": [...],
        "hd_mm": [...]}}``, ``hd_mm`` the larger HD of the structures (NaN if missing).
    """
    t = thresholds or OutlierThresholds()
    groups: dict[tuple[str, str], dict] = {}
    for r in rows:
        g = groups.setdefault(
            _group_key(r), {"scores": [], "flags": [], "failures": [], "hd_mm": []}
        )
        g["scores"].append(quality_score(r, t))
        g["flags"].append(anatomical_outlier(r, t)[0])
        g["failures"].append(geometric_outlier(r, r["instant"], t)[0])
        hds = [r.get(f"{s}_hd_mm") for s in t.structures]
        finite = [float(h) for h in hds if h is not None and math.isfinite(h)]
        g["hd_mm"].append(max(finite) if len(finite) == len(hds) and finite else math.nan)
    return groups


def failure_detector(rows: Sequence[Mapping], thresholds: OutlierThresholds | None = None) -> list:
    """The anatomical flag and the quality score as detectors of geometric outliers.

    Args:
        rows: per-image rows (with references: the geometric flag needs them).
        thresholds: :class:`OutlierThresholds` (default: Table I).

    Returns:
        One dict per (model, output), in the order they first appear:
        :func:`detection_counts`' keys plus ``"model"``, ``"output"``, ``"auroc"`` (of
        :func:`quality_score`) and ``"n_missing"`` (images with a missing structure,
        score -inf).
    """
    out = []
    for (model, output), g in detector_table(rows, thresholds).items():
        entry = {"model": model, "output": output}
        entry.update(detection_counts(g["flags"], g["failures"]))
        entry["auroc"] = auroc(g["scores"], g["failures"])
        entry["n_missing"] = int(sum(s == -math.inf for s in g["scores"]))
        out.append(entry)
    return out
