"""Tables II and III as the RU-Net paper prints them, ours beside the paper's own rows.

The paper (Leclerc et al., IEEE IUS 2019; docs/metrics.md, "Published numbers") reports,
over its 10-fold cross-validation of the 2000 annotated CAMUS images, per model: the
parameter count, LVendo / LVepi MAD and HD (mm, mean +- sd over images) and the counts of
geometric and anatomical outliers. Table II compares U-Net 1, SHG and RU-Net (dil 11,
shift 0.5) on their final outputs; Table III gives RU-Net's two outputs (o1: ``coarse``,
o2: ``segmentation``) with dil 30, shift 0.7.

:func:`paper_table_lines` writes our run in the same layout. The paper's rows (and our
differences to them) are added only when the run covers the paper's protocol: every one of
the 10 folds as the paper split them, and the preset of that table (``paper`` for Table II,
``paper-table3`` for Table III); otherwise a line says why they are left out.

>>> PAPER_TABLES["table2"]["runet"]["geometric_outliers"]
320
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from tfds_camus.vocabulary import MODEL_DISPLAY_NAMES

__all__ = ["PAPER_IMAGES", "PAPER_TABLES", "covers_paper_protocol", "paper_table_lines"]

PAPER_IMAGES = 2000  # the 10 folds' test images together


def _row(params, endo_mad, endo_hd, epi_mad, epi_hd, geo, ana):
    return {
        "params_m": params,
        "LVendo": {"mad_mm": endo_mad, "hd_mm": endo_hd},
        "LVepi": {"mad_mm": epi_mad, "hd_mm": epi_hd},
        "geometric_outliers": geo,
        "anatomical_outliers": ana,
    }


# (mean, sd) in mm; outliers as counts over the 2000 images. Transcribed from the paper.
PAPER_TABLES = {
    "table2": {
        "unet1": _row(2.0, (1.8, 1.2), (5.8, 3.4), (2.0, 1.1), (6.2, 3.8), 396, 95),
        "shg": _row(4.5, (1.8, 1.1), (5.9, 3.5), (2.0, 1.1), (6.2, 3.9), 425, 47),
        "runet": _row(3.9, (1.8, 1.1), (5.7, 3.6), (1.9, 1.2), (6.1, 4.4), 320, 23),
    },
    "table3": {
        "coarse": _row(None, (1.8, 1.2), (5.9, 3.6), (2.0, 1.1), (6.5, 3.9), 403, 116),
        "segmentation": _row(None, (1.7, 1.0), (5.6, 3.3), (1.9, 1.1), (6.0, 4.1), 306, 33),
    },
}
_TABLE_PRESET = {"table2": "paper", "table3": "paper-table3"}
_TITLES = {
    "table2": "Table II: geometric performance and outliers (final outputs)",
    "table3": "Table III: RU-Net's refinement, o1 (`coarse`) and o2 (`segmentation`)",
}


def covers_paper_protocol(protocol: Mapping | None, table: str) -> tuple[bool, str]:
    """Whether a run's protocol (:func:`keras_runet.cross_validation.run_protocol`) is the
    paper's for ``table``: ``(True, "")`` or ``(False, why not)``."""
    if not protocol or not protocol.get("folds"):
        return False, "the run has no cross-validation protocol"
    folds = protocol["folds"]
    if sorted(int(r["fold"]) for r in folds) != list(range(1, 11)):
        return False, f"the run covers {len(folds)} of the paper's 10 folds"
    if not all(r.get("as_paper") for r in folds):
        return False, "its folds are not the paper's 400 / 50 / 50 patients"
    preset = protocol.get("preset")
    if preset != _TABLE_PRESET[table]:
        return False, f"it was trained with preset {preset!r}, not {_TABLE_PRESET[table]!r}"
    off = protocol.get("fields_off_the_paper") or []
    if off:
        return False, f"its {', '.join(off)} not the paper's (see the deviations)"
    return True, ""


def _pm(stat) -> str:
    mean, sd = (stat["mean"], stat["sd"]) if isinstance(stat, Mapping) else stat
    if mean is None or not math.isfinite(mean):
        return "n/a"
    return f"{mean:.1f} ± {sd:.1f}"


def _count(outl, n) -> str:
    if isinstance(outl, Mapping):
        return f"{outl['count']} ({outl['percent']:.1f} %)"
    return f"{outl} ({100.0 * outl / n:.1f} %)"


def _params(count: int | None) -> str:
    """Our parameter count, in millions as the paper prints them."""
    return "" if count is None else f"{count / 1e6:.2f} M"


def _paper_params(millions: float | None) -> str:
    return "" if millions is None else f"{millions:.1f} M"


def _diff(ours, theirs) -> str:
    if ours is None or not math.isfinite(ours):
        return "n/a"
    return f"{ours - theirs:+.1f}"


def _ours(summary: Mapping, table: str) -> list[tuple[str, str, Mapping, float | None]]:
    """(key, label, subset "all" of the group, params) of our rows of ``table``."""
    params = summary.get("params") or {}
    rows = []
    for g in summary["groups"]:
        model, output = g["model"], g["output"]
        if table == "table2" and output == "segmentation":
            label = MODEL_DISPLAY_NAMES.get(model, model)
            rows.append((model, label, g["subsets"]["all"], params.get(model)))
        elif table == "table3" and model == "runet":
            label = f"RU-Net - {'o1' if output == 'coarse' else 'o2'} (`{output}`)"
            rows.append((output, label, g["subsets"]["all"], params.get(model)))
    return rows


def paper_table_lines(summary: Mapping) -> list[str]:
    """Markdown sections: Table II (and Table III when the run has RU-Net's two outputs)
    laid out as the paper prints them, with the paper's rows and our differences when
    the run covers the paper's protocol (:func:`covers_paper_protocol`)."""
    lines: list[str] = []
    header = (
        "| Model | Params | LVendo MAD | LVendo HD | LVepi MAD | LVepi HD | Geo outliers | "
        "Ana outliers |"
    )
    for table in ("table2", "table3"):
        ours = _ours(summary, table)
        if not ours or (table == "table3" and len(ours) < 2):
            continue
        ok, why = covers_paper_protocol(summary.get("protocol"), table)
        lines += ["", f"## {_TITLES[table]}", "", header, "|---" * 8 + "|"]
        paper = PAPER_TABLES[table]
        for key, label, b, params in ours:
            s = b["structures"]
            lines.append(
                f"| {label} | {_params(params)} | {_pm(s['LVendo']['mad_mm'])} | "
                f"{_pm(s['LVendo']['hd_mm'])} | {_pm(s['LVepi']['mad_mm'])} | "
                f"{_pm(s['LVepi']['hd_mm'])} | {_count(b['geometric_outliers'], b['n'])} | "
                f"{_count(b['anatomical_outliers'], b['n'])} |"
            )
            if ok and key in paper:
                p = paper[key]
                lines.append(
                    f"| {label}, the paper | {_paper_params(p['params_m'])} | "
                    f"{_pm(p['LVendo']['mad_mm'])} | {_pm(p['LVendo']['hd_mm'])} | "
                    f"{_pm(p['LVepi']['mad_mm'])} | {_pm(p['LVepi']['hd_mm'])} | "
                    f"{_count(p['geometric_outliers'], PAPER_IMAGES)} | "
                    f"{_count(p['anatomical_outliers'], PAPER_IMAGES)} |"
                )
                diffs = [
                    _diff(s[x][m]["mean"], p[x][m][0])
                    for x in ("LVendo", "LVepi")
                    for m in ("mad_mm", "hd_mm")
                ]
                pct = [
                    b[k]["percent"] - 100.0 * p[k] / PAPER_IMAGES
                    for k in ("geometric_outliers", "anatomical_outliers")
                ]
                lines.append(
                    f"| difference (ours - paper) | | {' | '.join(diffs)} | "
                    f"{pct[0]:+.1f} points | {pct[1]:+.1f} points |"
                )
        lines.append("")
        if ok:
            lines.append("The paper's rows: RU-Net paper (IEEE IUS 2019), over its 2000 images.")
        else:
            lines.append(f"The paper's rows are left out: {why} (docs/metrics.md has them).")
    return lines
