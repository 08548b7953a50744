"""The report files of an evaluation: ``report.md``, ``report.json``, ``per_image.csv``.

- :func:`write_report` writes ``report.md`` (:func:`format_markdown`), ``report.json``
  (:func:`summarize`'s summary, NaN as null), ``per_image.csv`` and, when the rows hold the
  LV disks, ``per_patient_volumes.csv``, each atomically (:mod:`tfds_camus.atomic`), and the
  HD and failure-detector figures; the summary gets the paired comparisons of models
  (:mod:`~keras_runet.evaluation.compare`) and the failure detector
  (:mod:`~keras_runet.evaluation.detector`) first (:func:`add_comparisons`); :func:`evaluate_and_report` evaluates items and writes all of it.
- :func:`write_per_image_csv` / :func:`read_per_image_csv` write rows as CSV and read them
  back; :func:`load_summary` reads ``report.json`` back.

The tables themselves are computed in :mod:`keras_runet.evaluation.tables` and printed in
:mod:`keras_runet.evaluation.markdown`; their names are re-exported here.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from keras_runet.evaluation.markdown import format_markdown
from keras_runet.evaluation.outliers import OutlierThresholds
from keras_runet.evaluation.records import META_KEYS
from keras_runet.evaluation.tables import (
    METRICS,
    SUBSETS,
    ejection_fraction_table,
    patient_volumes,
    summarize,
)
from tfds_camus.atomic import atomic_path, write_text

__all__ = [
    "METRICS",
    "SUBSETS",
    "add_comparisons",
    "ejection_fraction_table",
    "evaluate_and_report",
    "format_markdown",
    "load_summary",
    "patient_volumes",
    "read_per_image_csv",
    "summarize",
    "write_per_image_csv",
    "write_report",
]

_STRING_COLUMNS = set(META_KEYS) | {"geometric_reasons", "anatomical_reasons"}
_BOOL_COLUMNS = {
    "postprocessed",
    "geometric_outlier",
    "anatomical_outlier",
    "ref_anatomical_outlier",
}
_INT_COLUMNS = {"height", "width"}
_SEQUENCE_COLUMNS = {"lv_diameters_mm", "ref_lv_diameters_mm"}


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, list | tuple | np.ndarray):
        return " ".join(_cell(v) for v in value)
    if isinstance(value, float | np.floating):
        return "nan" if not math.isfinite(value) else repr(float(value))
    return str(value)


def write_per_image_csv(rows: Sequence[Mapping], path) -> Path:
    """Write the rows as a CSV (one line per image), atomically.

    Booleans are ``true``/``false``, NaN is ``nan``, None is empty, and the LV disk
    diameters are one space-separated cell. :func:`read_per_image_csv` reads it back.

    Args:
        rows: per-image rows.
        path: the CSV file to write.

    Returns:
        The path.
    """
    path = Path(path)
    fields: list[str] = []
    for r in rows:
        fields.extend(k for k in r if k not in fields)

    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(fields)
        for r in rows:
            w.writerow([_cell(r.get(k)) for k in fields])
    return path


def _parse(key: str, text: str):
    if key in _STRING_COLUMNS:
        return text if text != "" else None
    if text == "":
        return None
    if key in _BOOL_COLUMNS:
        return text == "true"
    if key in _SEQUENCE_COLUMNS:
        return tuple(float(x) for x in text.split())
    if key in _INT_COLUMNS:
        return int(text)
    try:
        return float(text)
    except ValueError:
        return text


def read_per_image_csv(path) -> list[dict]:
    """Read a CSV written by :func:`write_per_image_csv` back into rows.

    Args:
        path: the CSV file.

    Returns:
        A list of row dicts with numbers, booleans and disk tuples restored.
    """
    with open(path, encoding="utf-8", newline="") as fh:
        return [{k: _parse(k, v) for k, v in r.items()} for r in csv.DictReader(fh)]


def _jsonable(x):
    if isinstance(x, Mapping):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, bool | np.bool_):
        return bool(x)
    if isinstance(x, int | np.integer):
        return int(x)
    if isinstance(x, float | np.floating):
        return float(x) if math.isfinite(x) else None
    return x


_NUMBER_KEYS = {
    *("mean", "sd", "percent", "corr", "bias", "mae"),
    # paired comparisons, failure detector
    *("p", "mean_a", "mean_b", "mean_diff", "ci_low", "ci_high", "wilcoxon_p"),
    *("precision", "recall", "f1", "auroc"),
}


def _restore_nan(x):
    # JSON null back to NaN where a number was (the stats blocks), for format_markdown.
    if isinstance(x, dict):
        return {
            k: (float("nan") if v is None and k in _NUMBER_KEYS else _restore_nan(v))
            for k, v in x.items()
        }
    if isinstance(x, list):
        return [_restore_nan(v) for v in x]
    return x


def load_summary(path) -> dict:
    """Read a ``report.json`` back (null statistics become NaN)."""
    with open(path, encoding="utf-8") as fh:
        return _restore_nan(json.load(fh))


def write_report(
    rows: Sequence[Mapping],
    out_dir,
    *,
    thresholds: OutlierThresholds | None = None,
    references: Mapping | None = None,
    summary: Mapping | None = None,
    figures: bool = True,
) -> dict[str, Path]:
    """Write ``report.md``, ``report.json``, ``per_image.csv`` (and the HD figure).

    Also ``per_patient_volumes.csv`` (EDV, ESV, EF and their references per patient) when
    the rows hold the LV disks.

    Args:
        rows: per-image rows.
        out_dir: output folder (created).
        thresholds: :class:`OutlierThresholds` (default: Table I).
        references: per-patient reference volumes for the EF table (see
            :func:`ejection_fraction_table`).
        summary: a summary already computed (else :func:`summarize` is called); the
            paired comparisons and the failure detector are added to it in place
            (:func:`add_comparisons`), with ``thresholds`` or else the summary's own.
        figures: also draw ``hd_distribution.png``
            (:func:`keras_runet.evaluation.figures.plot_hd_distribution`) and
            ``failure_detector.png``
            (:func:`keras_runet.evaluation.figures.plot_failure_detector`).

    Returns:
        ``{"markdown": path, "json": path, "csv": path}`` (+ ``"volumes_csv"``,
        ``"hd_figure"``, ``"detector_figure"``).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = list(rows)
    if summary is None:
        summary = summarize(rows, thresholds, references)
    if thresholds is None and summary.get("thresholds"):
        thresholds = OutlierThresholds.from_dict(summary["thresholds"])
    add_comparisons(summary, rows, thresholds)
    from keras_runet.evaluation.calibration import reference_outlier_warning

    warning = reference_outlier_warning(rows, thresholds)
    summary["warnings"] = [warning] if warning else []
    paths = {
        "markdown": out / "report.md",
        "json": out / "report.json",
        "csv": out / "per_image.csv",
    }
    write_per_image_csv(rows, paths["csv"])
    patients = [
        {"model": g["model"], "output": g["output"], **p}
        for g in summary["groups"]
        if g.get("ejection_fraction")
        for p in g["ejection_fraction"]["patients"]
    ]
    if patients:
        paths["volumes_csv"] = write_per_image_csv(patients, out / "per_patient_volumes.csv")
    text = json.dumps(_jsonable(summary), indent=2, allow_nan=False)
    write_text(paths["json"], text + "\n")
    write_text(paths["markdown"], format_markdown(summary))
    if figures and rows:
        from keras_runet.evaluation.figures import plot_hd_distribution

        paths["hd_figure"] = plot_hd_distribution(rows, out / "hd_distribution.png", thresholds)
        if summary.get("failure_detector"):
            from keras_runet.evaluation.figures import plot_failure_detector

            paths["detector_figure"] = plot_failure_detector(
                rows, out / "failure_detector.png", thresholds
            )
    return paths


def add_comparisons(
    summary: dict, rows: Sequence[Mapping], thresholds: OutlierThresholds | None = None
) -> dict:
    """Add the paired comparisons of models and the failure detector to ``summary``, in
    place (unless it holds them already), and return it.

    ``summary["paired_comparisons"]``: :func:`keras_runet.evaluation.compare.compare_models`
    (the final outputs of every pair of models; empty with one model);
    ``summary["failure_detector"]``:
    :func:`keras_runet.evaluation.detector.failure_detector` (per model and output).
    """
    from keras_runet.evaluation.compare import compare_models
    from keras_runet.evaluation.detector import failure_detector

    rows = list(rows)
    if "paired_comparisons" not in summary:
        summary["paired_comparisons"] = compare_models(rows, thresholds)
    if "failure_detector" not in summary:
        summary["failure_detector"] = failure_detector(rows, thresholds)
    return summary


def evaluate_and_report(
    items: Iterable[Mapping],
    out_dir,
    *,
    workers: int | None = 0,
    thresholds: OutlierThresholds | None = None,
    postprocess: bool = False,
    references: Mapping | None = None,
    figures: bool = True,
    worst_k: int = 6,
    distance_method: str = "edt",
) -> tuple[list[dict], dict[str, Path]]:
    """Evaluate items and write the whole report: the one call for a data pipeline.

    Args:
        items: items of :func:`keras_runet.evaluation.evaluate_label_maps` (an optional
            ``image`` key is used by the worst-case figure). Held in memory.
        out_dir: output folder.
        workers: worker processes (0/1: serial, None: all cores).
        thresholds: :class:`OutlierThresholds` (default: Table I).
        postprocess: apply the CAMUS post-processing to the predictions.
        references: per-patient reference volumes for the EF table (None: reference masks).
        figures: draw ``hd_distribution.png`` and ``worst_cases.png``.
        worst_k: number of worst cases drawn.
        distance_method: "edt" (default) or "kdtree" (same numbers, faster).

    Returns:
        ``(rows, paths)``; paths as :func:`write_report`'s, plus ``"worst_figure"``.
    """
    from keras_runet.evaluation.figures import case_title, plot_worst_cases, worst_indices
    from keras_runet.evaluation.postprocess import postprocess_label_map
    from keras_runet.evaluation.records import evaluate_label_maps

    items = list(items)
    rows = evaluate_label_maps(
        items,
        workers=workers,
        thresholds=thresholds,
        postprocess=postprocess,
        distance_method=distance_method,
    )
    paths = write_report(
        rows, out_dir, thresholds=thresholds, references=references, figures=figures
    )
    if figures and worst_k and rows:
        cases = []
        for i in worst_indices(rows, worst_k):
            item = items[i]
            pred = postprocess_label_map(item["pred"]) if postprocess else item["pred"]
            cases.append(
                {
                    "pred": pred,
                    "ref": item["ref"],
                    "image": item.get("image"),
                    "spacing": item["spacing"],
                    "title": case_title(rows[i]),
                }
            )
        paths["worst_figure"] = plot_worst_cases(cases, Path(out_dir) / "worst_cases.png")
    return rows, paths
