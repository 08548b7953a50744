"""The report files of an evaluation: ``report.md``, ``report.json``, ``per_image.csv``.

- :func:`evaluate_items` evaluates items once (raw or post-processed), each row carrying its
  item's :data:`CARRIED_KEYS` (RU-Net's ``roi_fraction``); :func:`evaluate_modes` does it
  for a ``postprocess`` mode ("raw", "post", or "both": the same predictions raw, the
  primary rows, and post-processed).
- :func:`write_report` writes ``report.md`` (:func:`format_markdown`), ``report.json``
  (:func:`summarize`'s summary, NaN as null), ``per_image.csv`` and, when the rows hold the
  LV disks, ``per_patient_volumes.csv``, each atomically (:mod:`tfds_camus.atomic`), and the
  HD and failure-detector figures; the summary gets the paired comparisons of models
  (:mod:`~keras_runet.evaluation.compare`) and the failure detector
  (:mod:`~keras_runet.evaluation.detector`) first (:func:`add_comparisons`), and, given the
  post-processed rows of the same predictions, their summary and the effect of the
  post-processing (:func:`add_postprocessed`; ``per_image_postprocessed.csv``);
  :func:`evaluate_and_report` evaluates items and writes all of it.
- :func:`write_per_image_csv` / :func:`read_per_image_csv` write rows as CSV and read them
  back; :func:`load_summary` reads ``report.json`` back.

The tables themselves are computed in :mod:`keras_runet.evaluation.tables` and printed in
:mod:`keras_runet.evaluation.markdown`; their names are re-exported here.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from keras_runet.evaluation.markdown import format_markdown
from keras_runet.evaluation.outliers import OutlierThresholds
from keras_runet.evaluation.postprocess import (
    postprocess_label_map,
    postprocess_mode,
    postprocess_passes,
)
from keras_runet.evaluation.records import META_KEYS, evaluate_label_maps
from keras_runet.evaluation.tables import (
    METRICS,
    SUBSETS,
    ejection_fraction_table,
    patient_volumes,
    postprocessing_effect,
    summarize,
)
from tfds_camus.atomic import atomic_path, write_text

__all__ = [
    "CARRIED_KEYS",
    "METRICS",
    "POSTPROCESSED_CSV",
    "SUBSETS",
    "add_comparisons",
    "add_postprocessed",
    "ejection_fraction_table",
    "evaluate_and_report",
    "evaluate_items",
    "evaluate_modes",
    "format_markdown",
    "load_summary",
    "patient_volumes",
    "postprocessing_effect",
    "read_per_image_csv",
    "summarize",
    "write_per_image_csv",
    "write_report",
]

# Item keys copied into the item's row by evaluate_items: what the prediction pass measured
# besides the label map (RU-Net's ROI-mask fraction).
CARRIED_KEYS = ("roi_fraction",)
# The rows of the same predictions post-processed, next to per_image.csv ("both").
POSTPROCESSED_CSV = "per_image_postprocessed.csv"

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
    # the effect of the post-processing
    *("mean_raw", "mean_post"),
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
    postprocessed_rows: Sequence[Mapping] | None = None,
) -> dict[str, Path]:
    """Write ``report.md``, ``report.json``, ``per_image.csv`` (and the HD figure).

    Also ``per_patient_volumes.csv`` (EDV, ESV, EF and their references per patient) when
    the rows hold the LV disks, and, given ``postprocessed_rows``,
    ``per_image_postprocessed.csv`` (a stale one from an earlier report is removed
    otherwise).

    Args:
        rows: per-image rows: the primary ones (every table, comparison and figure).
        out_dir: output folder (created).
        thresholds: :class:`OutlierThresholds` (default: Table I).
        references: per-patient reference volumes for the EF table (see
            :func:`ejection_fraction_table`).
        summary: a summary already computed (else :func:`summarize` is called); the
            paired comparisons and the failure detector are added to it in place
            (:func:`add_comparisons`), with ``thresholds`` or else the summary's own, and
            so are the mode and the post-processed rows' summary (:func:`add_postprocessed`).
        figures: also draw ``hd_distribution.png``
            (:func:`keras_runet.evaluation.figures.plot_hd_distribution`) and
            ``failure_detector.png``
            (:func:`keras_runet.evaluation.figures.plot_failure_detector`).
        postprocessed_rows: the same predictions as ``rows`` (raw), evaluated
            post-processed, in the same order (``postprocess="both"``).

    Returns:
        ``{"markdown": path, "json": path, "csv": path}`` (+ ``"volumes_csv"``,
        ``"postprocessed_csv"``, ``"hd_figure"``, ``"detector_figure"``).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = list(rows)
    if summary is None:
        summary = summarize(rows, thresholds, references)
    if thresholds is None and summary.get("thresholds"):
        thresholds = OutlierThresholds.from_dict(summary["thresholds"])
    add_comparisons(summary, rows, thresholds)
    add_postprocessed(summary, rows, postprocessed_rows, thresholds, references)
    from keras_runet.evaluation.calibration import reference_outlier_warning

    warning = reference_outlier_warning(rows, thresholds)
    summary["warnings"] = [warning] if warning else []
    paths = {
        "markdown": out / "report.md",
        "json": out / "report.json",
        "csv": out / "per_image.csv",
    }
    write_per_image_csv(rows, paths["csv"])
    if postprocessed_rows is not None:
        paths["postprocessed_csv"] = write_per_image_csv(
            postprocessed_rows, out / POSTPROCESSED_CSV
        )
    else:
        (out / POSTPROCESSED_CSV).unlink(missing_ok=True)
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


def add_postprocessed(
    summary: dict,
    rows: Sequence[Mapping],
    postprocessed_rows: Sequence[Mapping] | None,
    thresholds: OutlierThresholds | None = None,
    references: Mapping | None = None,
) -> dict:
    """Add the evaluation mode and, for "both", the post-processed rows to ``summary``, in
    place (unless it holds them already), and return it.

    ``summary["postprocess"]``: "both" with ``postprocessed_rows``, else "post" or "raw"
    as the primary rows are (``summary["postprocessed"]``). With ``postprocessed_rows``:
    ``summary["postprocessed_predictions"]``, their :func:`summarize` (thresholds and
    references as the primary rows'), and ``summary["postprocessing_effect"]``,
    :func:`~keras_runet.evaluation.tables.postprocessing_effect` (raw vs post-processed,
    image by image).

    Raises:
        ValueError: ``postprocessed_rows`` given while the primary rows are not raw, or
            holding rows that are not post-processed.
    """
    if postprocessed_rows is None:
        summary.setdefault("postprocess", "post" if summary.get("postprocessed") else "raw")
        return summary
    post = list(postprocessed_rows)
    if any(r.get("postprocessed") for r in rows):
        raise ValueError(
            "postprocessed_rows go with raw primary rows (postprocess='both'); these primary "
            "rows are post-processed"
        )
    if not all(r.get("postprocessed") for r in post):
        raise ValueError("postprocessed_rows hold rows that are not post-processed")
    summary["postprocess"] = "both"
    if "postprocessed_predictions" not in summary:
        summary["postprocessed_predictions"] = summarize(post, thresholds, references)
    if "postprocessing_effect" not in summary:
        summary["postprocessing_effect"] = postprocessing_effect(rows, post, thresholds)
    return summary


def evaluate_items(
    items: Iterable[Mapping],
    workers: int | None = 0,
    postprocess=False,
    *,
    thresholds: OutlierThresholds | None = None,
    distance_method: str = "edt",
) -> list[dict]:
    """One evaluation pass: :func:`~keras_runet.evaluation.evaluate_label_maps` rows of
    ``items``, each carrying its item's :data:`CARRIED_KEYS` (RU-Net's ``roi_fraction``).

    Args:
        items: evaluation items (read lazily, as by ``evaluate_label_maps``).
        workers: worker processes (0/1: serial, None: all cores).
        postprocess: "raw" / False or "post" / True (one pass; "both" is
            :func:`evaluate_modes`).
        thresholds: :class:`OutlierThresholds` (default: Table I).
        distance_method: "edt" (default) or "kdtree" (same numbers, faster).

    Returns:
        One row per item, in order.

    Raises:
        ValueError: ``postprocess`` is "both" or not a mode.
    """
    passes = postprocess_passes(postprocess)
    if len(passes) != 1:
        raise ValueError("evaluate_items evaluates one pass; evaluate_modes evaluates 'both'")
    carried: list[dict] = []

    def noted(items):
        for item in items:
            carried.append({k: item[k] for k in CARRIED_KEYS if k in item})
            yield item

    rows = evaluate_label_maps(
        noted(items),
        workers=workers,
        thresholds=thresholds,
        postprocess=passes[0],
        distance_method=distance_method,
    )
    for row, extra in zip(rows, carried, strict=True):  # one row per item, in order
        row.update(extra)
    return rows


def evaluate_modes(
    items: Iterable[Mapping] | Callable[[], Iterable[Mapping]],
    postprocess="raw",
    *,
    workers: int | None = 0,
    thresholds: OutlierThresholds | None = None,
    distance_method: str = "edt",
) -> tuple[list[dict], list[dict] | None]:
    """The rows of a ``postprocess`` mode (:func:`evaluate_items` once per pass).

    Args:
        items: evaluation items, or a function giving them afresh for each pass (items read
            lazily from files need not all be held for "both"; an iterable is held).
        postprocess: "raw", "post" or "both" (or the old bool, see
            :func:`~keras_runet.evaluation.postprocess.postprocess_mode`).
        workers, thresholds, distance_method: as for :func:`evaluate_items`.

    Returns:
        ``(rows, postprocessed_rows)``: the primary rows (raw for "raw" and "both",
        post-processed for "post") and, for "both" only, the same items post-processed, in
        the same order (else None).
    """
    passes = postprocess_passes(postprocess)
    if not callable(items) and len(passes) > 1:
        items = list(items)
    results = [
        evaluate_items(
            items() if callable(items) else items,
            workers,
            flag,
            thresholds=thresholds,
            distance_method=distance_method,
        )
        for flag in passes
    ]
    return results[0], (results[1] if len(results) > 1 else None)


def evaluate_and_report(
    items: Iterable[Mapping],
    out_dir,
    *,
    workers: int | None = 0,
    thresholds: OutlierThresholds | None = None,
    postprocess="raw",
    references: Mapping | None = None,
    figures: bool = True,
    worst_k: int = 6,
    distance_method: str = "edt",
) -> tuple[list[dict], dict[str, Path]]:
    """Evaluate items and write the whole report: the one call for a data pipeline.

    Args:
        items: items of :func:`keras_runet.evaluation.evaluate_label_maps` (an optional
            ``image`` key is used by the worst-case figure; :data:`CARRIED_KEYS` such as
            ``roi_fraction`` go into the rows). Held in memory.
        out_dir: output folder.
        workers: worker processes (0/1: serial, None: all cores).
        thresholds: :class:`OutlierThresholds` (default: Table I).
        postprocess: "raw" (default), "post" (the CAMUS post-processing applied to the
            predictions) or "both" (raw rows in the tables, the same predictions
            post-processed beside them and in ``per_image_postprocessed.csv``); a bool
            reads as "raw" / "post".
        references: per-patient reference volumes for the EF table (None: reference masks).
        figures: draw ``hd_distribution.png`` and ``worst_cases.png``.
        worst_k: number of worst cases drawn (from the primary rows).
        distance_method: "edt" (default) or "kdtree" (same numbers, faster).

    Returns:
        ``(rows, paths)``: the primary rows; paths as :func:`write_report`'s, plus
        ``"worst_figure"``.
    """
    from keras_runet.evaluation.figures import case_title, plot_worst_cases, worst_indices

    mode = postprocess_mode(postprocess)
    items = list(items)
    rows, post_rows = evaluate_modes(
        items, mode, workers=workers, thresholds=thresholds, distance_method=distance_method
    )
    paths = write_report(
        rows,
        out_dir,
        thresholds=thresholds,
        references=references,
        figures=figures,
        postprocessed_rows=post_rows,
    )
    if figures and worst_k and rows:
        cases = []
        for i in worst_indices(rows, worst_k):
            item = items[i]
            pred = postprocess_label_map(item["pred"]) if mode == "post" else item["pred"]
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
