"""The paper's tables from per-image rows: the summary (Tables II / III) and the EF table (IV).

- :func:`summarize` groups rows by ``(model, output)`` (one line per model, and per output
  of RU-Net like the paper's Table III o1 / o2) and computes, for the subsets ``all``,
  ``ED``, ``ES``, ``Good+Medium`` and ``Poor``: mean and sd of Dice, MAD and HD (and the
  pooled MAD, convexity, simplicity) per structure, and the number and percentage of
  geometric and anatomical outliers (recomputed from the metrics with the thresholds
  given, so a CSV can be re-read with other thresholds). Means and sds skip NaN (an empty
  structure), whose count is reported as ``n_nan``; sd is the population sd (ddof=0).
- :func:`patient_volumes` pairs the 2CH and 4CH rows of each patient into Simpson's
  biplane EDV, ESV and EF; :func:`ejection_fraction_table` compares them with references
  (the ``Info_*.cfg`` values, or, without references, the volumes of the reference masks):
  Pearson correlation, bias +- sd of (prediction - reference), mean absolute error (CAMUS
  paper, Table IV).
- :func:`postprocessing_effect` compares the rows of the same predictions evaluated raw and
  post-processed (``postprocess="both"``), image by image: mean LVendo / LVepi Dice, MAD and
  HD of each, and the change of the outlier flags with McNemar's exact test
  (:func:`keras_runet.evaluation.compare.mcnemar_test`).

Summary format (JSON-ready; NaN becomes null in the file)::

    {"n_images": int, "thresholds": {...}, "postprocessed": bool, "ef_reference": str,
     "groups": [{"model": str, "output": str, "n_images": int,
                 "subsets": {"all" | "ED" | "ES" | "Good+Medium" | "Poor": {
                     "n": int,
                     "structures": {"LVendo" | "LVepi" | "LA": {
                         "dice" | "mad_mm" | "hd_mm" | "mad_pooled_mm" | "convexity"
                         | "simplicity": {"mean", "sd", "n", "n_nan"}}},
                     "geometric_outliers" | "anatomical_outliers" | "both_outliers"
                     | "reference_anatomical_outliers": {"count", "percent"}}},
                 "ejection_fraction": {...} or None}]}

:func:`keras_runet.evaluation.reports.write_report` adds ``"postprocess"`` (the mode: "raw",
"post" or "both"), the paired comparisons, the failure detector and, for "both",
``"postprocessed_predictions"`` (this format, of the post-processed rows) and
``"postprocessing_effect"`` (:func:`postprocessing_effect`).

Markdown: :mod:`keras_runet.evaluation.markdown`; files: :mod:`keras_runet.evaluation.reports`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from keras_runet.evaluation._validation import LV_STRUCTURES, LVENDO, STRUCTURES
from keras_runet.evaluation.outliers import (
    OutlierThresholds,
    anatomical_outlier,
    geometric_outlier,
)
from keras_runet.evaluation.volumes import biplane_volume_from_disks, ejection_fraction

__all__ = [
    "EFFECT_METRICS",
    "METRICS",
    "SUBSETS",
    "ejection_fraction_table",
    "patient_volumes",
    "postprocessing_effect",
    "summarize",
]

SUBSETS = ("all", "ED", "ES", "Good+Medium", "Poor")
METRICS = ("dice", "mad_mm", "hd_mm", "mad_pooled_mm", "convexity", "simplicity")


def _finite_stats(values) -> dict:
    arr = np.asarray([np.nan if v is None else float(v) for v in values], dtype=np.float64)
    ok = np.isfinite(arr)
    n = int(ok.sum())
    return {
        "mean": float(arr[ok].mean()) if n else float("nan"),
        "sd": float(arr[ok].std()) if n else float("nan"),
        "n": n,
        "n_nan": int(arr.size - n),
    }


def _count(flags: Sequence[bool], n: int) -> dict:
    count = int(sum(bool(f) for f in flags))
    return {"count": count, "percent": 100.0 * count / n if n else float("nan")}


def _in_subset(row: Mapping, subset: str) -> bool:
    if subset == "all":
        return True
    if subset in ("ED", "ES"):
        return row.get("instant") == subset
    quality = row.get("image_quality")
    if subset == "Good+Medium":
        return quality in ("Good", "Medium")
    return quality == subset


def _subset_block(rows: list[Mapping], thresholds: OutlierThresholds) -> dict:
    n = len(rows)
    structures = {
        s: {m: _finite_stats(r.get(f"{s}_{m}") for r in rows) for m in METRICS} for s in STRUCTURES
    }
    geo = [geometric_outlier(r, r["instant"], thresholds)[0] for r in rows]
    ana = [anatomical_outlier(r, thresholds)[0] for r in rows]
    ref_ana = [anatomical_outlier(r, thresholds, prefix="ref_")[0] for r in rows]
    return {
        "n": n,
        "structures": structures,
        "geometric_outliers": _count(geo, n),
        "anatomical_outliers": _count(ana, n),
        "both_outliers": _count([g and a for g, a in zip(geo, ana, strict=True)], n),
        "reference_anatomical_outliers": _count(ref_ana, n),
    }


def _groups(rows: Iterable[Mapping]) -> dict[tuple[str, str], list[Mapping]]:
    groups: dict[tuple[str, str], list[Mapping]] = {}
    for r in rows:
        groups.setdefault((str(r.get("model") or ""), str(r.get("output") or "")), []).append(r)
    return groups


def summarize(
    rows: Sequence[Mapping],
    thresholds: OutlierThresholds | None = None,
    references: Mapping | None = None,
) -> dict:
    """Aggregate per-image rows into the summary (see the module docstring).

    Args:
        rows: rows of :func:`keras_runet.evaluation.evaluate_label_maps` (or read back with
            :func:`read_per_image_csv`).
        thresholds: :class:`OutlierThresholds` for the outlier counts (default: Table I).
        references: per-patient reference volumes for the EF table (see
            :func:`ejection_fraction_table`); None compares with the reference masks.

    Returns:
        The summary dict.
    """
    thresholds = thresholds or OutlierThresholds()
    rows = list(rows)
    missing = [k for k in ("instant", f"{LVENDO}_hd_mm") if rows and k not in rows[0]]
    if missing:
        raise ValueError(f"rows lack the columns {missing}; pass rows from evaluate_label_maps")
    ef = {}
    if rows and "lv_diameters_mm" in rows[0]:
        ef = {
            (g["model"], g["output"]): g
            for g in ejection_fraction_table(rows, references)["groups"]
        }
    groups = []
    for (model, output), grows in _groups(rows).items():
        subsets = {}
        for subset in SUBSETS:
            sub = [r for r in grows if _in_subset(r, subset)]
            if sub or subset == "all":
                subsets[subset] = _subset_block(sub, thresholds)
        groups.append(
            {
                "model": model,
                "output": output,
                "n_images": len(grows),
                "subsets": subsets,
                "ejection_fraction": ef.get((model, output)),
            }
        )
    return {
        "n_images": len(rows),
        "thresholds": thresholds.to_dict(),
        "postprocessed": bool(rows) and all(bool(r.get("postprocessed")) for r in rows),
        "ef_reference": "given (Info_*.cfg)" if references is not None else "reference masks",
        "groups": groups,
    }


# ------------------------------------------------------------- raw vs post-processed

EFFECT_METRICS = ("dice", "mad_mm", "hd_mm")
# What identifies a row's image (and its model, output and fold): a raw row and its
# post-processed row must agree on all of it.
_PAIR_KEYS = ("model", "output", "patient_id", "view", "instant", "fold")


def postprocessing_effect(
    raw_rows: Sequence[Mapping],
    post_rows: Sequence[Mapping],
    thresholds: OutlierThresholds | None = None,
) -> list[dict]:
    """The effect of the CAMUS post-processing on the same predictions, per model and output.

    The two row sets are the same predictions evaluated raw and post-processed
    (:func:`keras_runet.evaluation.reports.evaluate_modes` with ``"both"``), in the same
    order; each pair is one image, so the paired tests of
    :mod:`~keras_runet.evaluation.compare` apply with raw and post-processed in place of
    models A and B.

    Args:
        raw_rows: the raw rows.
        post_rows: the post-processed rows, one per raw row, in the same order.
        thresholds: :class:`OutlierThresholds` of the outlier flags (default: Table I).

    Returns:
        One dict per (model, output), in the order they first appear: ``{"model",
        "output", "n_images", "structures": {"LVendo" | "LVepi": {"dice" | "mad_mm" |
        "hd_mm": {"mean_raw", "mean_post"}}}, "outliers": {"geometric" | "anatomical" |
        "either": {"n", "raw", "post", "only_raw", "only_post", "p"}}}``: means over the
        images as the tables take them (NaN skipped), outlier counts raw and
        post-processed, and McNemar's exact p-value of the change
        (:func:`~keras_runet.evaluation.compare.mcnemar_test`, p = 1 when no flag changed).

    Raises:
        ValueError: the row sets differ in length, or a pair is not about the same image.
    """
    from keras_runet.evaluation.compare import FLAGS, mcnemar_test, outlier_flags

    t = thresholds or OutlierThresholds()
    raw_rows, post_rows = list(raw_rows), list(post_rows)
    if len(raw_rows) != len(post_rows):
        raise ValueError(
            f"{len(raw_rows)} raw rows but {len(post_rows)} post-processed rows: both must be "
            "the same predictions, in the same order"
        )
    groups: dict[tuple[str, str], list[tuple[Mapping, Mapping]]] = {}
    for i, (a, b) in enumerate(zip(raw_rows, post_rows, strict=True)):
        key_a = tuple(a.get(k) for k in _PAIR_KEYS)
        key_b = tuple(b.get(k) for k in _PAIR_KEYS)
        if key_a != key_b:
            raise ValueError(
                f"row {i}: the raw row is about {dict(zip(_PAIR_KEYS, key_a, strict=True))} but "
                f"the post-processed row about {dict(zip(_PAIR_KEYS, key_b, strict=True))}"
            )
        groups.setdefault((str(a.get("model") or ""), str(a.get("output") or "")), []).append(
            (a, b)
        )
    out = []
    for (model, output), pairs in groups.items():
        structures = {
            s: {
                m: {
                    "mean_raw": _finite_stats(a.get(f"{s}_{m}") for a, _ in pairs)["mean"],
                    "mean_post": _finite_stats(b.get(f"{s}_{m}") for _, b in pairs)["mean"],
                }
                for m in EFFECT_METRICS
            }
            for s in LV_STRUCTURES
        }
        flags = [(outlier_flags(a, t), outlier_flags(b, t)) for a, b in pairs]
        outliers = {}
        for kind in FLAGS:
            m = mcnemar_test([fa[kind] for fa, _ in flags], [fb[kind] for _, fb in flags])
            outliers[kind] = {
                "n": m["n"],
                "raw": m["both"] + m["only_a"],
                "post": m["both"] + m["only_b"],
                "only_raw": m["only_a"],
                "only_post": m["only_b"],
                "p": m["p"],
            }
        out.append(
            {
                "model": model,
                "output": output,
                "n_images": len(pairs),
                "structures": structures,
                "outliers": outliers,
            }
        )
    return out


# --------------------------------------------------------------------------- volumes, EF


def patient_volumes(rows: Iterable[Mapping], source: str = "pred") -> list[dict]:
    """Simpson's biplane EDV, ESV (ml) and EF (%) per (model, output, patient).

    Args:
        rows: per-image rows holding ``lv_length_mm`` / ``lv_diameters_mm`` (prediction)
            and ``ref_lv_length_mm`` / ``ref_lv_diameters_mm`` (reference mask).
        source: "pred" or "ref": which masks' disks to use.

    Returns:
        A list of ``{"model", "output", "patient_id", "EDV", "ESV", "EF"}``; patients
        without the four rows (2CH/4CH x ED/ES) get NaN where a volume is missing.
    """
    if source not in ("pred", "ref"):
        raise ValueError(f"source must be 'pred' or 'ref', got {source!r}")
    prefix = "" if source == "pred" else "ref_"
    disks: dict[tuple, dict] = {}
    for r in rows:
        key = (str(r.get("model") or ""), str(r.get("output") or ""), r.get("patient_id"))
        disks.setdefault(key, {})[(r.get("view"), r.get("instant"))] = (
            r.get(f"{prefix}lv_length_mm"),
            r.get(f"{prefix}lv_diameters_mm"),
        )
    out = []
    for (model, output, patient), views in disks.items():
        vol = {}
        for instant in ("ED", "ES"):
            a, b = views.get(("2CH", instant)), views.get(("4CH", instant))
            if a is None or b is None or a[1] is None or b[1] is None:
                vol[instant] = float("nan")
            else:
                vol[instant] = biplane_volume_from_disks(a[0], a[1], b[0], b[1])
        out.append(
            {
                "model": model,
                "output": output,
                "patient_id": patient,
                "EDV": vol["ED"],
                "ESV": vol["ES"],
                "EF": ejection_fraction(vol["ED"], vol["ES"]),
            }
        )
    return out


_REFERENCE_KEYS = {"EDV": ("EDV", "LVedv"), "ESV": ("ESV", "LVesv"), "EF": ("EF", "LVef")}


def _reference_value(ref: Mapping, index: str) -> float:
    # The first key that holds a finite number (the 2023 cfg has EF, the original LVef;
    # a reader may report the other as NaN).
    for key in _REFERENCE_KEYS[index]:
        try:
            value = float(ref.get(key))
        except (TypeError, ValueError):
            continue
        if math.isfinite(value):
            return value
    return float("nan")


def _agreement(pred: Sequence[float], ref: Sequence[float]) -> dict:
    p = np.asarray(pred, dtype=np.float64)
    g = np.asarray(ref, dtype=np.float64)
    ok = np.isfinite(p) & np.isfinite(g)
    p, g = p[ok], g[ok]
    n = int(ok.sum())
    nan = float("nan")
    if n == 0:
        return {"n": 0, "corr": nan, "bias": nan, "sd": nan, "mae": nan}
    diff = p - g
    corr = nan
    if n >= 2 and p.std() > 0 and g.std() > 0:
        corr = float(np.corrcoef(p, g)[0, 1])
    return {
        "n": n,
        "corr": corr,
        "bias": float(diff.mean()),
        "sd": float(diff.std()),
        "mae": float(np.abs(diff).mean()),
    }


def ejection_fraction_table(
    rows_or_volumes: Sequence[Mapping], references: Mapping | None = None
) -> dict:
    """EDV, ESV and EF against references: correlation, bias +- sd, MAE (CAMUS Table IV).

    Args:
        rows_or_volumes: per-image rows (with the LV disks) or the output of
            :func:`patient_volumes` (dicts with ``EDV``, ``ESV``, ``EF``).
        references: ``{patient_id: {"EDV"|"LVedv": ml, "ESV"|"LVesv": ml, "EF"|"LVef": %}}``
            (e.g. the ``Info_*.cfg`` values). None: compare with the volumes of the
            reference masks (rows only).

    Returns:
        ``{"reference": "given" | "reference masks", "groups": [{"model", "output",
        "n_patients", "EDV" | "ESV" | "EF": {"n", "corr", "bias", "sd", "mae"},
        "patients": [{"patient_id", "EDV", "ESV", "EF", "ref_EDV", "ref_ESV",
        "ref_EF"}]}]}``; EF in percent.
    """
    items = list(rows_or_volumes)
    is_rows = bool(items) and "lv_diameters_mm" in items[0]
    volumes = patient_volumes(items, "pred") if is_rows else items
    if references is None:
        if not is_rows:
            raise ValueError("references are required when volumes (not rows) are given")
        ref_vols = {
            (v["model"], v["output"], v["patient_id"]): v for v in patient_volumes(items, "ref")
        }
        kind = "reference masks"
    else:
        kind = "given"
    groups: dict[tuple[str, str], list[dict]] = {}
    for v in volumes:
        model, output = str(v.get("model") or ""), str(v.get("output") or "")
        pid = v.get("patient_id")
        if references is None:
            ref = ref_vols[(model, output, pid)]
        else:
            ref = references.get(pid, {})
        groups.setdefault((model, output), []).append(
            {
                "patient_id": pid,
                "EDV": float(v["EDV"]),
                "ESV": float(v["ESV"]),
                "EF": float(v["EF"]),
                "ref_EDV": _reference_value(ref, "EDV"),
                "ref_ESV": _reference_value(ref, "ESV"),
                "ref_EF": _reference_value(ref, "EF"),
            }
        )
    out = []
    for (model, output), patients in groups.items():
        entry = {"model": model, "output": output, "n_patients": len(patients)}
        for index in ("EDV", "ESV", "EF"):
            entry[index] = _agreement(
                [p[index] for p in patients], [p[f"ref_{index}"] for p in patients]
            )
        entry["patients"] = patients
        out.append(entry)
    return {"reference": kind, "groups": out}
