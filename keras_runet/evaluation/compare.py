"""Paired comparisons of two models on the same images (which neither paper reports).

Two models evaluated on the same images are compared image by image, not through their means:

- :func:`pair_rows` pairs the per-image rows of two models for one output (e.g.
  "segmentation"), by image: ``(patient_id, view, instant)``.
- :func:`mcnemar_test`: for a yes / no outcome per image (an outlier flag), the exact McNemar
  test: among the discordant images (an outlier for only one of the two models), the count
  of "only A" is Binomial(n_discordant, 1/2) if the models are equally often outliers;
  ``scipy.stats.binomtest``, two-sided.
- :func:`paired_difference`: for a per-image number (HD, MAD), the mean of the differences
  A - B, the paired Wilcoxon signed-rank test (``scipy.stats.wilcoxon``; zero differences
  dropped, scipy's default) and a bootstrap 95 % confidence interval of the mean difference
  (``scipy.stats.bootstrap``, BCa; resampling images, so each image keeps its pair; a fixed
  seed, so a report is the same each time it is written). Pairs where either value is NaN
  (an empty structure) are dropped and counted.
- :func:`compare_models` does it for every pair of models in a set of rows: the report's
  "Paired comparisons" section.

Example (0 images where only A is an outlier, 6 where only B is: ``p = 2 * 0.5 ** 6``):

    >>> from keras_runet.evaluation.compare import mcnemar_test
    >>> r = mcnemar_test([False] * 6 + [True] * 4, [True] * 10)
    >>> r["only_a"], r["only_b"], r["both"], r["p"] == 2 * 0.5**6
    (0, 6, 4, True)
"""

from __future__ import annotations

import inspect
import itertools
from collections.abc import Mapping, Sequence

import numpy as np

from keras_runet.evaluation._validation import STRUCTURES
from keras_runet.evaluation.outliers import (
    OutlierThresholds,
    anatomical_outlier,
    geometric_outlier,
)

__all__ = [
    "FLAGS",
    "IMAGE_KEY",
    "PAIRED_METRICS",
    "compare_models",
    "mcnemar_test",
    "outlier_flags",
    "pair_rows",
    "paired_difference",
]

IMAGE_KEY = ("patient_id", "view", "instant")
FLAGS = ("geometric", "anatomical", "either")
PAIRED_METRICS = ("hd_mm", "mad_mm")
DEFAULT_SEED = 0
N_RESAMPLES = 9999


def _image_key(row: Mapping) -> tuple | None:
    key = tuple(row.get(k) for k in IMAGE_KEY)
    return None if any(v is None or v == "" for v in key) else key


def pair_rows(
    rows: Sequence[Mapping], model_a: str, model_b: str, output: str = "segmentation"
) -> dict:
    """Pair the rows of two models (one output) that are about the same image.

    Args:
        rows: per-image rows (:func:`keras_runet.evaluation.evaluate_label_maps`).
        model_a, model_b: the two model names (the ``model`` column).
        output: the output compared (the ``output`` column).

    Returns:
        ``{"pairs": [(row_a, row_b), ...], "only_a": int, "only_b": int}``: the pairs in
        the order of model A's rows, and the images of one model that the other lacks (or
        rows without a full image key, which cannot be paired).

    Raises:
        ValueError: the two models are the same, or a model has two rows for one image.
    """
    if model_a == model_b:
        raise ValueError(f"compare two different models, got {model_a!r} twice")
    by_model: dict[str, dict] = {model_a: {}, model_b: {}}
    unkeyed = {model_a: 0, model_b: 0}
    for r in rows:
        model = str(r.get("model") or "")
        if model not in by_model or str(r.get("output") or "") != output:
            continue
        key = _image_key(r)
        if key is None:
            unkeyed[model] += 1
            continue
        if key in by_model[model]:
            raise ValueError(
                f"model {model!r}, output {output!r} has two rows for the image "
                f"{dict(zip(IMAGE_KEY, key, strict=True))}: cannot pair them"
            )
        by_model[model][key] = r
    a, b = by_model[model_a], by_model[model_b]
    pairs = [(a[k], b[k]) for k in a if k in b]
    return {
        "pairs": pairs,
        "only_a": len(a) - len(pairs) + unkeyed[model_a],
        "only_b": len(b) - len(pairs) + unkeyed[model_b],
    }


def outlier_flags(row: Mapping, thresholds: OutlierThresholds | None = None) -> dict[str, bool]:
    """``{"geometric", "anatomical", "either"}`` of one row, recomputed from its metrics with
    ``thresholds`` (as :func:`~keras_runet.evaluation.tables.summarize` counts them)."""
    t = thresholds or OutlierThresholds()
    geo = geometric_outlier(row, row["instant"], t)[0]
    ana = anatomical_outlier(row, t)[0]
    return {"geometric": geo, "anatomical": ana, "either": geo or ana}


def mcnemar_test(flags_a: Sequence[bool], flags_b: Sequence[bool]) -> dict:
    """The exact McNemar test of two paired yes / no outcomes.

    Args:
        flags_a, flags_b: one boolean per image (same order), e.g. "is an outlier".

    Returns:
        ``{"n", "both", "only_a", "only_b", "neither", "p"}``: ``p`` is the two-sided
        ``scipy.stats.binomtest(only_a, only_a + only_b, 0.5)`` p-value, 1.0 without
        discordant images.
    """
    from scipy.stats import binomtest

    a = np.asarray(flags_a, dtype=bool)
    b = np.asarray(flags_b, dtype=bool)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"flags_a and flags_b must be 1-D of one length, got {a.shape}, {b.shape}")
    only_a, only_b = int(np.sum(a & ~b)), int(np.sum(~a & b))
    discordant = only_a + only_b
    p = float(binomtest(only_a, discordant, 0.5).pvalue) if discordant else 1.0
    return {
        "n": int(a.size),
        "both": int(np.sum(a & b)),
        "only_a": only_a,
        "only_b": only_b,
        "neither": int(np.sum(~a & ~b)),
        "p": p,
    }


def _seeded(fn, seed: int) -> dict:
    # SciPy >= 1.15 names the generator ``rng``; 1.13 / 1.14 ``random_state`` (same draws).
    name = "rng" if "rng" in inspect.signature(fn).parameters else "random_state"
    return {name: np.random.default_rng(seed)}


def paired_difference(
    values_a: Sequence[float],
    values_b: Sequence[float],
    *,
    seed: int = DEFAULT_SEED,
    n_resamples: int = N_RESAMPLES,
    confidence_level: float = 0.95,
) -> dict:
    """Mean paired difference A - B, its bootstrap CI and the Wilcoxon signed-rank test.

    Args:
        values_a, values_b: one number per image (same order); NaN / None where the
            metric could not be measured (those pairs are dropped).
        seed: the bootstrap's random seed (fixed: the same numbers every time).
        n_resamples: bootstrap resamples.
        confidence_level: of the interval.

    Returns:
        ``{"n", "n_dropped", "mean_a", "mean_b", "mean_diff", "ci_low", "ci_high",
        "wilcoxon_p"}``. ``wilcoxon_p`` is ``scipy.stats.wilcoxon(a, b).pvalue`` (1.0 if
        every difference is 0; NaN without pairs); the interval is NaN with fewer than 2
        pairs and a single point when every difference is the same.
    """
    from scipy.stats import bootstrap, wilcoxon

    a = np.asarray([np.nan if v is None else float(v) for v in values_a], dtype=np.float64)
    b = np.asarray([np.nan if v is None else float(v) for v in values_b], dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"values_a and values_b must have one length, got {a.size}, {b.size}")
    ok = np.isfinite(a) & np.isfinite(b)
    a, b = a[ok], b[ok]
    d = a - b
    n = int(d.size)
    nan = float("nan")
    out = {
        "n": n,
        "n_dropped": int(ok.size - n),
        "mean_a": float(a.mean()) if n else nan,
        "mean_b": float(b.mean()) if n else nan,
        "mean_diff": float(d.mean()) if n else nan,
        "ci_low": nan,
        "ci_high": nan,
        "wilcoxon_p": nan,
    }
    if not n:
        return out
    out["wilcoxon_p"] = float(wilcoxon(a, b).pvalue) if np.any(d != 0) else 1.0
    if n >= 2 and np.all(d == d[0]):
        out["ci_low"] = out["ci_high"] = float(d[0])  # no spread: BCa is undefined
    elif n >= 2:
        res = bootstrap(
            (d,),
            np.mean,
            n_resamples=n_resamples,
            confidence_level=confidence_level,
            method="BCa",
            vectorized=True,
            batch=max(1, min(n_resamples, 2_000_000 // n)),
            **_seeded(bootstrap, seed),
        )
        out["ci_low"] = float(res.confidence_interval.low)
        out["ci_high"] = float(res.confidence_interval.high)
    return out


def _models(rows: Sequence[Mapping], output: str) -> list[str]:
    models: list[str] = []
    for r in rows:
        m = str(r.get("model") or "")
        if str(r.get("output") or "") == output and m not in models:
            models.append(m)
    return models


def compare_models(
    rows: Sequence[Mapping],
    thresholds: OutlierThresholds | None = None,
    *,
    output: str = "segmentation",
    seed: int = DEFAULT_SEED,
    n_resamples: int = N_RESAMPLES,
) -> list[dict]:
    """Every pair of models (in the order they first appear), compared on their common images.

    Args:
        rows: per-image rows of several models.
        thresholds: :class:`OutlierThresholds` of the outlier flags (default: Table I).
        output: the output compared ("segmentation", the final one).
        seed, n_resamples: of the bootstrap (see :func:`paired_difference`).

    Returns:
        One dict per pair: ``{"model_a", "model_b", "output", "n_images", "only_a_images",
        "only_b_images", "outliers": {"geometric" | "anatomical" | "either":``
        :func:`mcnemar_test` ``}, "distances": {structure: {"hd_mm" | "mad_mm":``
        :func:`paired_difference` ``}}}``; differences are A - B (negative: A is better).
        Empty with fewer than two models.
    """
    t = thresholds or OutlierThresholds()
    rows = list(rows)
    out = []
    for model_a, model_b in itertools.combinations(_models(rows, output), 2):
        paired = pair_rows(rows, model_a, model_b, output)
        pairs = paired["pairs"]
        flags = [(outlier_flags(ra, t), outlier_flags(rb, t)) for ra, rb in pairs]
        outliers = {
            kind: mcnemar_test([fa[kind] for fa, _ in flags], [fb[kind] for _, fb in flags])
            for kind in FLAGS
        }
        distances = {
            s: {
                m: paired_difference(
                    [ra.get(f"{s}_{m}") for ra, _ in pairs],
                    [rb.get(f"{s}_{m}") for _, rb in pairs],
                    seed=seed,
                    n_resamples=n_resamples,
                )
                for m in PAIRED_METRICS
            }
            for s in STRUCTURES
        }
        out.append(
            {
                "model_a": model_a,
                "model_b": model_b,
                "output": output,
                "n_images": len(pairs),
                "only_a_images": paired["only_a"],
                "only_b_images": paired["only_b"],
                "outliers": outliers,
                "distances": distances,
            }
        )
    return out
