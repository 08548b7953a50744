"""The summary of :func:`keras_runet.evaluation.tables.summarize` as Markdown tables.

:func:`format_markdown` prints Table II / III style tables (geometric performance and
outliers), then Dice and the left atrium, then per instant and image quality, then the
clinical indices (Table IV), then, when the summary holds them, the paired comparisons of
models, the failure detector and the post-processed predictions (``postprocess="both"``: their
main table and the effect of the post-processing); a cross-validation summary also gets its
patients per fold. The header says whether the predictions were post-processed and whether
the outlier thresholds are the paper's Table I.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from keras_runet.evaluation._validation import LA, LV_STRUCTURES, STRUCTURES
from keras_runet.evaluation.outliers import OutlierThresholds
from keras_runet.evaluation.paper import paper_table_lines
from keras_runet.evaluation.shapes import ShapeConvention

__all__ = ["format_markdown"]


def _pm(stats: Mapping | None, digits: int = 1) -> str:
    if not stats or stats.get("mean") is None or not math.isfinite(stats["mean"]):
        return "n/a"
    return f"{stats['mean']:.{digits}f} ± {stats['sd']:.{digits}f}"


def _outl(block: Mapping, key: str) -> str:
    c = block[key]
    pct = c["percent"]
    return f"{c['count']} ({pct:.1f} %)" if pct is not None and math.isfinite(pct) else "0"


def _row(*cells) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _header(*names: str) -> list[str]:
    """A table's header line and its rule."""
    return [_row(*names), "|" + "---|" * len(names)]


def _num(x, digits=3) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.{digits}f}"


def _protocol_lines(protocol: Mapping | None) -> list[str]:
    """The cross-validation's patients per fold and its deviations from the paper."""
    if not protocol or not protocol.get("folds"):
        return []
    lines = []
    if protocol.get("preset"):
        lines += [f"Preset: `{protocol['preset']}` (docs/presets.md)", ""]
    software = protocol.get("software")
    if software:
        lines += [
            f"Run with keras-runet {software['keras_runet']}, Keras {software['keras']} on the "
            f"{software['keras_backend']} backend.",
            "",
        ]
    lines += [
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
        lines += ["Deviations from the paper (folds and settings):", ""]
        lines += [f"- {d}" for d in protocol["deviations"]]
        lines.append("")
    return lines


def _p(x) -> str:
    if x is None or not math.isfinite(x):
        return "n/a"
    return f"{x:.1e}" if x < 1e-4 else f"{x:.4f}"


def _paired_lines(comparisons) -> list[str]:
    """The "Paired comparisons" section (:func:`keras_runet.evaluation.compare.compare_models`)."""
    if not comparisons:
        return []
    lines = [
        "",
        "## Paired comparisons",
        "",
        "Two models on the same images (patient, view, instant), final outputs. Outliers: "
        "McNemar's exact test (binomial test on the images where only one of the two is an "
        "outlier). Distances: mean per-image difference A - B (negative: A closer to the "
        "reference) with its bootstrap 95 % confidence interval (BCa, images resampled, "
        "fixed seed) and the Wilcoxon signed-rank p-value; pairs where a structure is "
        "missing (NaN) are dropped and counted.",
    ]
    for c in comparisons:
        a, b = c["model_a"], c["model_b"]
        lines += ["", f"### {a} vs {b} ({c['output']}): {c['n_images']} images", ""]
        if c.get("only_a_images") or c.get("only_b_images"):
            lines += [
                f"Not paired: {c['only_a_images']} image(s) of {a} only, "
                f"{c['only_b_images']} of {b} only.",
                "",
            ]
        lines += _header("Outliers", "N", "Both", f"Only {a}", f"Only {b}", "McNemar p")
        for kind, m in c["outliers"].items():
            lines.append(_row(kind, m["n"], m["both"], m["only_a"], m["only_b"], _p(m["p"])))
        lines += [
            "",
            *_header(
                "Structure",
                "Metric (mm)",
                "N",
                "Dropped (NaN)",
                f"Mean {a}",
                f"Mean {b}",
                f"{a} - {b} (95 % CI)",
                "Wilcoxon p",
            ),
        ]
        for structure, metrics in c["distances"].items():
            for metric, d in metrics.items():
                lines.append(
                    _row(
                        structure,
                        metric.removesuffix("_mm").upper(),
                        d["n"],
                        d["n_dropped"],
                        _num(d["mean_a"], 2),
                        _num(d["mean_b"], 2),
                        f"{_num(d['mean_diff'], 2)} "
                        f"[{_num(d['ci_low'], 2)}, {_num(d['ci_high'], 2)}]",
                        _p(d["wilcoxon_p"]),
                    )
                )
    return lines


def _detector_lines(detector) -> list[str]:
    """The "Failure detector" section (:func:`keras_runet.evaluation.detector.failure_detector`)."""
    if not detector:
        return []
    lines = [
        "",
        "## Failure detector",
        "",
        "The anatomical flag (no ground truth needed: what `runet predict` calls a suspicious "
        "shape) as a detector of geometric outliers, and the AUROC of the quality score (the "
        "smallest normalised margin (value - limit) / (1 - limit) of simplicity and convexity "
        "to their limits; negative exactly when the flag is raised).",
        "",
        *_header(
            "Model",
            "Output",
            "N",
            "Geo outliers",
            "Flagged",
            "Flagged geo outliers",
            "Precision",
            "Recall",
            "F1",
            "AUROC (score)",
        ),
    ]
    for d in detector:
        lines.append(
            _row(
                d["model"],
                d["output"],
                d["n"],
                d["n_failures"],
                d["n_flagged"],
                d["tp"],
                _num(d["precision"]),
                _num(d["recall"]),
                _num(d["f1"]),
                _num(d["auroc"]),
            )
        )
    return lines


_MODE_TEXT = {
    "raw": "raw (no post-processing).",
    "post": "post-processed (largest component, holes filled).",
    "both": "raw (no post-processing); the same predictions post-processed (largest "
    'component, holes filled) are evaluated in "Post-processed predictions" below.',
}


def _mode(summary: Mapping) -> str:
    """The summary's evaluation mode (reports before the "both" mode hold only the bool)."""
    return summary.get("postprocess") or ("post" if summary.get("postprocessed") else "raw")


def _thresholds_note(t: Mapping) -> str:
    """Whether the outlier thresholds are the paper's Table I, and what differs if not."""
    paper = OutlierThresholds().to_dict()
    changed = [
        f"{k} {t[k]} (Table I: {v})"
        for k, v in paper.items()
        if k not in ("convention", "structures") and k in t and t[k] != v
    ]
    if "structures" in t and list(t["structures"]) != paper["structures"]:
        changed.append(f"structures {' / '.join(t['structures'])}")
    convention = t.get("convention")
    if convention is not None and convention != paper["convention"]:
        name = ShapeConvention.from_dict(convention).name
        changed.append(f"shape convention {name or convention} (docs/thresholds.md)")
    if not changed:
        return "Outlier thresholds: the paper's Table I."
    return "Outlier thresholds: not the paper's Table I: " + "; ".join(changed) + "."


def _main_table_lines(groups) -> list[str]:
    """The Table II / III style table (LV MAD and HD, outliers) of the summary's groups."""
    lv = LV_STRUCTURES
    lines = _header(
        "Model",
        "Output",
        "N",
        *(f"{x} {m} (mm)" for x in lv for m in ("MAD", "HD")),
        "Geo outliers",
        "Ana outliers",
        "Both",
    )
    for g in groups:
        b = g["subsets"]["all"]
        s = b["structures"]
        lines.append(
            _row(
                g["model"],
                g["output"],
                b["n"],
                *(_pm(s[x][m]) for x in lv for m in ("mad_mm", "hd_mm")),
                _outl(b, "geometric_outliers"),
                _outl(b, "anatomical_outliers"),
                _outl(b, "both_outliers"),
            )
        )
    return lines


_EFFECT_DIGITS = {"dice": 3, "mad_mm": 2, "hd_mm": 2}


def _postprocessed_lines(summary: Mapping) -> list[str]:
    """The "Post-processed predictions" section (``postprocess="both"``): the post-processed
    rows' main table and the effect of the post-processing on the same images
    (:func:`keras_runet.evaluation.tables.postprocessing_effect`)."""
    post = summary.get("postprocessed_predictions")
    if not post:
        return []
    lv = LV_STRUCTURES
    lines = [
        "",
        "## Post-processed predictions",
        "",
        "The same predictions after the CAMUS post-processing (largest connected component of "
        "each structure, holes filled), evaluated again; every table above is of the raw "
        "predictions. The post-processing removes the islands and holes that the anatomical "
        "criteria count, which the RU-Net paper's outliers are about.",
        "",
        *_main_table_lines(post["groups"]),
    ]
    effect = summary.get("postprocessing_effect") or []
    if not effect:
        return lines
    lines += [
        "",
        "### Effect of the post-processing",
        "",
        "Raw → post-processed, on the same images: means over images (NaN skipped); outlier "
        "counts and McNemar's exact test of the change of the flags (binomial test on the "
        "images whose flag changed).",
        "",
        *_header(
            "Model",
            "Output",
            "N",
            *(f"{x} {m}" for x in lv for m in ("Dice", "MAD (mm)", "HD (mm)")),
        ),
    ]
    for e in effect:
        cells = []
        for x in lv:
            for m, digits in _EFFECT_DIGITS.items():
                d = e["structures"][x][m]
                cells.append(f"{_num(d['mean_raw'], digits)} → {_num(d['mean_post'], digits)}")
        lines.append(_row(e["model"], e["output"], e["n_images"], *cells))
    lines += [
        "",
        *_header(
            "Model",
            "Output",
            "Outliers",
            "N",
            "Raw",
            "Post-processed",
            "Only raw",
            "Only post-processed",
            "McNemar p",
        ),
    ]
    for e in effect:
        for kind, o in e["outliers"].items():
            lines.append(
                _row(
                    e["model"],
                    e["output"],
                    kind,
                    o["n"],
                    o["raw"],
                    o["post"],
                    o["only_raw"],
                    o["only_post"],
                    _p(o["p"]),
                )
            )
    return lines


def format_markdown(summary: Mapping) -> str:
    """Markdown tables of a summary (Table II / III style, then Dice and LA, then per
    instant and image quality, then the ejection fraction, the paired comparisons, the
    failure detector and, for ``postprocess="both"``, the post-processed predictions).

    Args:
        summary: the output of :func:`summarize` (or its JSON, read back), as
            :func:`~keras_runet.evaluation.reports.write_report` completes it.

    Returns:
        The Markdown text.
    """
    t = summary["thresholds"]
    lv = LV_STRUCTURES
    lines = [
        "# Segmentation evaluation",
        "",
        f"{summary['n_images']} images; predictions {_MODE_TEXT[_mode(summary)]}",
        f"Geometric outliers: {' or '.join(lv)} MAD > {t['mad_mm_ed']} / {t['mad_mm_es']} mm or "
        f"HD > {t['hd_mm_ed']} / {t['hd_mm_es']} mm (ED / ES). Anatomical outliers: "
        f"simplicity < {t['simplicity_lvendo']} / {t['simplicity_lvepi']} or convexity < "
        f"{t['convexity_lvendo']} / {t['convexity_lvepi']} ({' / '.join(lv)}). "
        "A missing structure counts as an outlier. Mean ± sd over images.",
        _thresholds_note(t),
        "",
        *(f"**Warning:** {w.removeprefix('warning: ')}\n" for w in summary.get("warnings") or ()),
        *_protocol_lines(summary.get("protocol")),
        "## Geometric performance and outliers",
        "",
        *_main_table_lines(summary["groups"]),
        "",
        "## Dice and left atrium",
        "",
        *_header(
            "Model",
            "Output",
            *(f"{x} Dice" for x in STRUCTURES),
            f"{LA} MAD (mm)",
            f"{LA} HD (mm)",
            f"Empty {' / '.join(STRUCTURES)}",
            "Reference ana outliers",
        ),
    ]
    for g in summary["groups"]:
        b = g["subsets"]["all"]
        s = b["structures"]
        lines.append(
            _row(
                g["model"],
                g["output"],
                *(_pm(s[x]["dice"], 3) for x in STRUCTURES),
                _pm(s[LA]["mad_mm"]),
                _pm(s[LA]["hd_mm"]),
                " / ".join(str(s[x]["hd_mm"]["n_nan"]) for x in STRUCTURES),
                _outl(b, "reference_anatomical_outliers"),
            )
        )
    lines += [
        "",
        "## By instant and image quality",
        "",
        *_header(
            "Model",
            "Output",
            "Subset",
            "N",
            *(f"{x} {m}" for x in lv for m in ("Dice", "MAD", "HD")),
            "Geo",
            "Ana",
        ),
    ]
    for g in summary["groups"]:
        for name, b in g["subsets"].items():
            if name == "all":
                continue
            s = b["structures"]
            lines.append(
                _row(
                    g["model"],
                    g["output"],
                    name,
                    b["n"],
                    *(
                        v
                        for x in lv
                        for v in (_pm(s[x]["dice"], 3), _pm(s[x]["mad_mm"]), _pm(s[x]["hd_mm"]))
                    ),
                    _outl(b, "geometric_outliers"),
                    _outl(b, "anatomical_outliers"),
                )
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
        missing = [
            index
            for index in ("EDV", "ESV")
            if all(math.isnan(g["ejection_fraction"][index]["corr"]) for g in ef_groups)
            and all(math.isnan(g["ejection_fraction"][index]["mae"]) for g in ef_groups)
        ]
        if missing and str(summary.get("ef_reference", "")).startswith("given"):
            lines.append(
                f"{' and '.join(missing)}: n/a, the reference gives no volume (the 2023 "
                "release's Info_*.cfg holds EF only; `runet evaluate --ef-reference masks` "
                "compares with the volumes of the reference masks)."
            )
    lines += paper_table_lines(summary)
    lines += _paired_lines(summary.get("paired_comparisons"))
    lines += _detector_lines(summary.get("failure_detector"))
    lines += _postprocessed_lines(summary)
    return "\n".join(lines) + "\n"
