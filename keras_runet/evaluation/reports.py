"""Aggregate per-image rows into the paper's tables: Markdown, JSON summary, per-image CSV.

- :func:`summarize` groups rows by ``(model, output)`` (one line per model, and per output
  of RU-Net like the paper's Table III o1 / o2) and computes, for the subsets ``all``,
  ``ED``, ``ES``, ``Good+Medium`` and ``Poor``: mean and sd of Dice, MAD and HD (and the
  pooled MAD, convexity, simplicity) per structure, and the number and percentage of
  geometric and anatomical outliers (recomputed from the metrics with the thresholds
  given, so a CSV can be re-read with other thresholds). Means and sds skip NaN (an empty
  structure), whose count is reported as ``n_nan``; sd is the population sd (ddof=0).
- :func:`ejection_fraction_table` pairs the 2CH and 4CH rows of each patient into
  Simpson's biplane EDV, ESV and EF and compares them with references (the ``Info_*.cfg``
  values, or, without references, the volumes of the reference masks): Pearson
  correlation, bias +- sd of (prediction - reference), mean absolute error (CAMUS paper,
  Table IV).
- :func:`format_markdown` prints the summary as Table II / III style Markdown;
  :func:`write_report` writes ``report.md``, ``report.json`` and ``per_image.csv``
  atomically (temporary file, then ``os.replace``); :func:`read_per_image_csv` reads the CSV
  back into rows.

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
"""

from __future__ import annotations

import csv
import json
import math
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from keras_runet.evaluation._validation import STRUCTURES
from keras_runet.evaluation.outliers import (
    OutlierThresholds,
    anatomical_outlier,
    geometric_outlier,
)
from keras_runet.evaluation.records import META_KEYS
from keras_runet.evaluation.volumes import biplane_volume_from_disks, ejection_fraction

__all__ = [
    "SUBSETS",
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

SUBSETS = ("all", "ED", "ES", "Good+Medium", "Poor")
METRICS = ("dice", "mad_mm", "hd_mm", "mad_pooled_mm", "convexity", "simplicity")
_STRING_COLUMNS = set(META_KEYS) | {"geometric_reasons", "anatomical_reasons"}
_BOOL_COLUMNS = {
    "postprocessed",
    "geometric_outlier",
    "anatomical_outlier",
    "ref_anatomical_outlier",
}
_INT_COLUMNS = {"height", "width"}
_SEQUENCE_COLUMNS = {"lv_diameters_mm", "ref_lv_diameters_mm"}


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
    missing = [k for k in ("instant", "LVendo_hd_mm") if rows and k not in rows[0]]
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


# --------------------------------------------------------------------------- Markdown


def _pm(stats: Mapping | None, digits: int = 1) -> str:
    if not stats or stats.get("mean") is None or not math.isfinite(stats["mean"]):
        return "n/a"
    return f"{stats['mean']:.{digits}f} ± {stats['sd']:.{digits}f}"


def _outl(block: Mapping, key: str) -> str:
    c = block[key]
    pct = c["percent"]
    return f"{c['count']} ({pct:.1f} %)" if pct is not None and math.isfinite(pct) else "0"


def _num(x, digits=3) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.{digits}f}"


def _protocol_lines(protocol: Mapping | None) -> list[str]:
    """The cross-validation's patients per fold and its deviations from the paper."""
    if not protocol or not protocol.get("folds"):
        return []
    lines = [
        "## Patients per fold",
        "",
        "| Fold | Training | Validation | Test | As in the paper (400 / 50 / 50) |",
        "|---|---|---|---|---|",
    ]
    for r in protocol["folds"]:
        lines.append(
            f"| {r['fold']} | {r['train']} | {r['validation']} | {r['test']} | "
            f"{'yes' if r['as_paper'] else '**no**'} |"
        )
    lines.append("")
    if protocol.get("deviations"):
        lines += ["Deviations from the paper's protocol:", ""]
        lines += [f"- {d}" for d in protocol["deviations"]]
        lines.append("")
    return lines


def format_markdown(summary: Mapping) -> str:
    """Markdown tables of a summary (Table II / III style, then Dice and LA, then per
    instant and image quality, then the ejection fraction).

    Args:
        summary: the output of :func:`summarize` (or its JSON, read back).

    Returns:
        The Markdown text.
    """
    t = summary["thresholds"]
    lines = [
        "# Segmentation evaluation",
        "",
        f"{summary['n_images']} images; predictions "
        + (
            "post-processed (largest component, holes filled)."
            if summary["postprocessed"]
            else "raw (no post-processing)."
        ),
        f"Geometric outliers: LVendo or LVepi MAD > {t['mad_mm_ed']} / {t['mad_mm_es']} mm or "
        f"HD > {t['hd_mm_ed']} / {t['hd_mm_es']} mm (ED / ES). Anatomical outliers: "
        f"simplicity < {t['simplicity_lvendo']} / {t['simplicity_lvepi']} or convexity < "
        f"{t['convexity_lvendo']} / {t['convexity_lvepi']} (LVendo / LVepi). "
        "A missing structure counts as an outlier. Mean ± sd over images.",
        "",
        *_protocol_lines(summary.get("protocol")),
        "## Geometric performance and outliers",
        "",
        "| Model | Output | N | LVendo MAD (mm) | LVendo HD (mm) | LVepi MAD (mm) | LVepi HD (mm) "
        "| Geo outliers | Ana outliers | Both |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for g in summary["groups"]:
        b = g["subsets"]["all"]
        s = b["structures"]
        lines.append(
            f"| {g['model']} | {g['output']} | {b['n']} | {_pm(s['LVendo']['mad_mm'])} | "
            f"{_pm(s['LVendo']['hd_mm'])} | {_pm(s['LVepi']['mad_mm'])} | {_pm(s['LVepi']['hd_mm'])} | "
            f"{_outl(b, 'geometric_outliers')} | {_outl(b, 'anatomical_outliers')} | "
            f"{_outl(b, 'both_outliers')} |"
        )
    lines += [
        "",
        "## Dice and left atrium",
        "",
        "| Model | Output | LVendo Dice | LVepi Dice | LA Dice | LA MAD (mm) | LA HD (mm) "
        "| Empty LVendo / LVepi / LA | Reference ana outliers |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for g in summary["groups"]:
        b = g["subsets"]["all"]
        s = b["structures"]
        empties = " / ".join(str(s[k]["hd_mm"]["n_nan"]) for k in ("LVendo", "LVepi", "LA"))
        lines.append(
            f"| {g['model']} | {g['output']} | {_pm(s['LVendo']['dice'], 3)} | "
            f"{_pm(s['LVepi']['dice'], 3)} | {_pm(s['LA']['dice'], 3)} | {_pm(s['LA']['mad_mm'])} | "
            f"{_pm(s['LA']['hd_mm'])} | {empties} | {_outl(b, 'reference_anatomical_outliers')} |"
        )
    lines += [
        "",
        "## By instant and image quality",
        "",
        "| Model | Output | Subset | N | LVendo Dice | LVendo MAD | LVendo HD | LVepi Dice "
        "| LVepi MAD | LVepi HD | Geo | Ana |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for g in summary["groups"]:
        for name, b in g["subsets"].items():
            if name == "all":
                continue
            s = b["structures"]
            lines.append(
                f"| {g['model']} | {g['output']} | {name} | {b['n']} | {_pm(s['LVendo']['dice'], 3)} | "
                f"{_pm(s['LVendo']['mad_mm'])} | {_pm(s['LVendo']['hd_mm'])} | "
                f"{_pm(s['LVepi']['dice'], 3)} | {_pm(s['LVepi']['mad_mm'])} | "
                f"{_pm(s['LVepi']['hd_mm'])} | {_outl(b, 'geometric_outliers')} | "
                f"{_outl(b, 'anatomical_outliers')} |"
            )
    ef_groups = [g for g in summary["groups"] if g.get("ejection_fraction")]
    if ef_groups:
        lines += [
            "",
            "## Clinical indices (Simpson's biplane, 20 disks)",
            "",
            "| Model | Output | Patients | EDV corr | EDV bias ± sd (ml) | EDV MAE (ml) | ESV corr "
            "| ESV bias ± sd (ml) | ESV MAE (ml) | EF corr | EF bias ± sd (%) | EF MAE (%) |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for g in ef_groups:
            e = g["ejection_fraction"]
            cells = []
            for index in ("EDV", "ESV", "EF"):
                a = e[index]
                cells += [
                    _num(a["corr"]),
                    f"{_num(a['bias'], 1)} ± {_num(a['sd'], 1)}",
                    _num(a["mae"], 1),
                ]
            lines.append(
                f"| {g['model']} | {g['output']} | {e['n_patients']} | " + " | ".join(cells) + " |"
            )
        lines.append("")
        lines.append(
            f"Reference volumes: {summary.get('ef_reference', 'see report.json')}; "
            "bias = prediction - reference; EF in %."
        )
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- files


def _atomic_write(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            write(fh)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


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

    def write(fh):
        w = csv.writer(fh)
        w.writerow(fields)
        for r in rows:
            w.writerow([_cell(r.get(k)) for k in fields])

    _atomic_write(path, write)
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


def _restore_nan(x):
    # JSON null back to NaN where a number was (the stats blocks), for format_markdown.
    if isinstance(x, dict):
        return {
            k: (
                float("nan")
                if v is None and k in ("mean", "sd", "percent", "corr", "bias", "mae")
                else _restore_nan(v)
            )
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
        summary: a summary already computed (else :func:`summarize` is called).
        figures: also draw ``hd_distribution.png`` (:func:`keras_runet.evaluation.figures.plot_hd_distribution`).

    Returns:
        ``{"markdown": path, "json": path, "csv": path}`` (+ ``"volumes_csv"``,
        ``"hd_figure"``).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = list(rows)
    if summary is None:
        summary = summarize(rows, thresholds, references)
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
    _atomic_write(paths["json"], lambda fh: fh.write(text + "\n"))
    md = format_markdown(summary)
    _atomic_write(paths["markdown"], lambda fh: fh.write(md))
    if figures and rows:
        from keras_runet.evaluation.figures import plot_hd_distribution

        paths["hd_figure"] = plot_hd_distribution(rows, out / "hd_distribution.png", thresholds)
    return paths


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
