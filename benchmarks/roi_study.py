"""Does RU-Net's attention do what the paper says? U-Net 1 and RU-Net variants over seeds.

The RU-Net paper (Leclerc et al., IEEE IUS 2019) reports that masking the image with the
first U-Net's dilated segmentation reduces outliers (Table II) and that the second U-Net
refines the first one's output (Table III, ``o1`` -> ``o2``). This script measures it on one
fold of a prepared CAMUS (by default a synthetic one it writes itself), for several training
seeds, and reports what it finds, whichever way it goes:

- per variant and seed: the mean ROI-mask fraction on the test images (how much of the image
  the attention keeps; 1.0: it passes everything and cannot help), Dice, HD and the
  geometric / anatomical outliers of the final output;
- for each RU-Net variant, the coarse -> final change (Table III style: the first U-Net's
  ``coarse`` output against the final ``segmentation`` on the same images): mean HD, outlier
  counts and McNemar's exact p for the change of the "either" outlier flag;
- the paired comparison of each RU-Net variant with U-Net 1 trained with the same seed, on the
  same images (:mod:`keras_runet.evaluation.compare`: McNemar on the outlier flags, Wilcoxon
  and a bootstrap CI of the per-image LVendo HD difference), per seed and pooled over seeds
  (pooled: the image-seed pairs, each seed being an independent training run);
- the RU-Net variants are the paper's reading (ROI = LV + myocardium + atrium, box kernel of
  side ``dil``) and the other choices the paper leaves open (``--roi-classes lvepi``: LV +
  myocardium only; ``--roi-kernel disk``): see docs/presets.md.

Every run is a :func:`keras_runet.cross_validation.run_fold` in ``OUT/<variant>/seed<s>``, so an
interrupted study resumes (finished runs are read back, an interrupted training continues at
its last epoch). The base configuration is the ``paper`` preset (dil 11, shift 0.5) with the
size and epoch overrides given here, listed in the output.

    python benchmarks/roi_study.py --out /tmp/roi_study [--data-dir TFDS_DIR] [--fold 1] \
        [--seeds 0,1,2] [--epochs 20] [--image-size 128x128] [--width 1.0] [--dtype POLICY] \
        [--variants unet1,runet,runet-lvepi,runet-disk] [--patients 40] [--scale 0.5]

Without ``--data-dir`` it writes a synthetic CAMUS of ``--patients`` patients spread over the
fold groups (``tfds_camus.phantom``) and prepares it in ``OUT/data``. Writes ``OUT/roi_study.md``
(printed) and ``OUT/roi_study.json``. docs/roi_study.md quotes a run. CPU: about 1-2 minutes per
run at the defaults on 2 cores (12 runs).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import time
from pathlib import Path

import numpy as np

VARIANTS = {
    "unet1": dict(model="unet1"),
    "runet": dict(model="runet"),  # the paper's reading: LV + myo + LA, box of side dil
    "runet-lvepi": dict(model="runet", roi_classes="lvepi"),
    "runet-disk": dict(model="runet", roi_kernel="disk"),
}
STRUCTS = ("LVendo", "LVepi")


def _parse_size(text: str) -> tuple[int, int]:
    h, _, w = text.lower().partition("x")
    return int(h), int(w or h)


def _builder(args, out: Path):
    from keras_runet.data import load_builder, prepare_camus

    if args.data_dir:
        return load_builder(args.data_dir, "256")
    from tfds_camus.phantom import write_synthetic_camus

    camus = out / "data" / "camus"
    write_synthetic_camus(
        camus, args.patients, per_group=True, scale=args.scale, seed=args.data_seed, reuse=True
    )
    return prepare_camus(camus, out / "data" / "tfds", "256")


def _mean(rows, key) -> float:
    vals = [float(r[key]) for r in rows if r.get(key) is not None]
    vals = [v for v in vals if math.isfinite(v)]
    return float(np.mean(vals)) if vals else math.nan


def _flags(rows, thresholds):
    from keras_runet.evaluation.compare import outlier_flags

    return [outlier_flags(r, thresholds) for r in rows]


def _by_image(rows, output):
    return {
        (r["patient_id"], r["view"], r["instant"]): r for r in rows if r.get("output") == output
    }


def _summary(rows, thresholds) -> dict:
    flags = _flags(rows, thresholds)
    out = {
        "n": len(rows),
        "geometric": sum(f["geometric"] for f in flags),
        "anatomical": sum(f["anatomical"] for f in flags),
        "either": sum(f["either"] for f in flags),
    }
    for s in STRUCTS:
        out[f"{s}_dice"] = _mean(rows, f"{s}_dice")
        out[f"{s}_hd_mm"] = _mean(rows, f"{s}_hd_mm")
        out[f"{s}_mad_mm"] = _mean(rows, f"{s}_mad_mm")
    roi = [r["roi_fraction"] for r in rows if r.get("roi_fraction") is not None]
    out["roi_fraction"] = float(np.mean(roi)) if roi else None
    return out


def _paired(rows_a, rows_b, thresholds) -> dict:
    """Image-paired tests of A against B (A - B: negative, A closer to the reference)."""
    from keras_runet.evaluation.compare import mcnemar_test, paired_difference

    keys = sorted(set(rows_a) & set(rows_b))
    fa = _flags([rows_a[k] for k in keys], thresholds)
    fb = _flags([rows_b[k] for k in keys], thresholds)
    mc = mcnemar_test([f["either"] for f in fa], [f["either"] for f in fb])
    hd = paired_difference(
        [rows_a[k].get("LVendo_hd_mm") for k in keys],
        [rows_b[k].get("LVendo_hd_mm") for k in keys],
    )
    return {"n": len(keys), "mcnemar": mc, "lvendo_hd": hd}


def run_study(args) -> dict:
    from keras_runet.cross_validation import fold_split_strings, run_fold
    from keras_runet.evaluation import OutlierThresholds
    from keras_runet.presets import deviations, preset_config
    from keras_runet.training import NonFiniteLossError

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    builder = _builder(args, out)
    splits = fold_split_strings(builder, args.fold)
    overrides = dict(image_size=_parse_size(args.image_size), epochs=args.epochs)
    if args.dtype:
        overrides["dtype"] = args.dtype
    if args.width != 1.0:
        overrides["width"] = args.width
    base = preset_config("paper", **overrides)
    thresholds = OutlierThresholds()
    seeds = [int(s) for s in args.seeds.split(",")]
    variants = [v.strip() for v in args.variants.split(",")]
    for v in variants:
        if v not in VARIANTS:
            raise SystemExit(f"--variants: unknown variant {v!r} (known: {', '.join(VARIANTS)})")
    runs: dict[str, dict[int, list[dict]]] = {v: {} for v in variants}
    diverged: list[dict] = []
    for seed in seeds:
        for v in variants:
            spec = dict(VARIANTS[v])
            model = spec.pop("model")
            config = dataclasses.replace(base, model=model, seed=seed, **spec)
            done = out / v / f"seed{seed}" / model / f"fold{args.fold}" / "per_image.csv"
            if args.report_only and not done.exists():
                print(f"[{v} seed {seed}] not run (--report-only)", flush=True)
                continue
            start = time.perf_counter()
            try:
                res = run_fold(
                    builder, model, args.fold, out / v / f"seed{seed}", config, workers=1
                )
            except NonFiniteLossError as err:  # a finding, not a crash: listed in the output
                print(f"[{v} seed {seed}] diverged: {err}", flush=True)
                diverged.append({"variant": v, "seed": seed, "error": str(err)})
                continue
            rows = [dict(r, model=v, seed=seed) for r in res.rows]
            runs[v][seed] = rows
            s = _summary([r for r in rows if r["output"] == "segmentation"], thresholds)
            roi = "" if s["roi_fraction"] is None else f", ROI {s['roi_fraction']:.2f}"
            state = "done earlier" if res.skipped else f"{time.perf_counter() - start:.0f} s"
            print(
                f"[{v} seed {seed}] {s['n']} images: LVendo Dice {s['LVendo_dice']:.3f}, "
                f"HD {s['LVendo_hd_mm']:.1f} mm, outliers geo {s['geometric']} "
                f"ana {s['anatomical']}{roi} ({state})",
                flush=True,
            )
    result = {
        "fold": args.fold,
        "splits": splits,
        "seeds": seeds,
        "variants": {v: {k: VARIANTS[v][k] for k in VARIANTS[v]} for v in variants},
        "config": base.to_json(),
        "deviations": deviations(base, "paper"),
        "dataset": builder.info.full_name,
        "diverged": diverged,
        "per_seed": [],
        "coarse_to_final": [],
        "vs_unet1": [],
        "pooled_vs_unet1": [],
    }
    for v in variants:
        for seed in seeds:
            if seed not in runs[v]:
                continue
            final = [r for r in runs[v][seed] if r["output"] == "segmentation"]
            result["per_seed"].append({"variant": v, "seed": seed, **_summary(final, thresholds)})
            coarse = _by_image(runs[v][seed], "coarse")
            if coarse:
                fin = _by_image(runs[v][seed], "segmentation")
                result["coarse_to_final"].append(
                    {
                        "variant": v,
                        "seed": seed,
                        "coarse": _summary(list(coarse.values()), thresholds),
                        "final": _summary(list(fin.values()), thresholds),
                        "final_vs_coarse": _paired(fin, coarse, thresholds),
                    }
                )
    if "unet1" in variants:
        for v in variants:
            if v == "unet1":
                continue
            pooled_a, pooled_b = {}, {}
            for seed in seeds:
                if seed not in runs[v] or seed not in runs["unet1"]:
                    continue
                a = _by_image(runs[v][seed], "segmentation")
                b = _by_image(runs["unet1"][seed], "segmentation")
                result["vs_unet1"].append({"variant": v, "seed": seed, **_paired(a, b, thresholds)})
                pooled_a.update({(seed, *k): r for k, r in a.items()})
                pooled_b.update({(seed, *k): r for k, r in b.items()})
            paired_seeds = sorted({k[0] for k in pooled_a})
            if paired_seeds:
                result["pooled_vs_unet1"].append(
                    {"variant": v, "seeds": paired_seeds, **_paired(pooled_a, pooled_b, thresholds)}
                )
    return result


def _f(x, d=2) -> str:
    return "n/a" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.{d}f}"


def _p(x) -> str:
    if x is None or not math.isfinite(x):
        return "n/a"
    return f"{x:.4f}" if x >= 1e-3 else f"{x:.1e}"


def _ci(d) -> str:
    return f"{_f(d['mean_diff'])} [{_f(d['ci_low'])}, {_f(d['ci_high'])}]"


def format_markdown(result: dict) -> str:
    lines = [
        f"Fold {result['fold']} of `{result['dataset']}` (test split {result['splits']['test']}),"
        f" seeds {', '.join(map(str, result['seeds']))}; the `paper` preset with:",
        "",
    ]
    lines += [f"- {d}" for d in result["deviations"]] + [""]
    for d in result.get("diverged", []):
        lines += [f"**Diverged:** {d['variant']} seed {d['seed']}: {d['error']}", ""]
    lines += [
        "### Per seed: final output",
        "",
        "| variant | seed | N | ROI fraction | LVendo Dice | LVendo HD (mm) | LVepi HD (mm) "
        "| geometric | anatomical | either |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["per_seed"]:
        lines.append(
            f"| {r['variant']} | {r['seed']} | {r['n']} | {_f(r['roi_fraction'])} | "
            f"{_f(r['LVendo_dice'], 3)} | {_f(r['LVendo_hd_mm'], 1)} | {_f(r['LVepi_hd_mm'], 1)}"
            f" | {r['geometric']} | {r['anatomical']} | {r['either']} |"
        )
    lines += ["", "### Mean over seeds (± sd)", ""]
    lines += [
        "| variant | ROI fraction | LVendo Dice | LVendo HD (mm) | LVepi HD (mm) | geometric "
        "| anatomical | either |",
        "|---|---|---|---|---|---|---|---|",
    ]
    by_variant: dict[str, list] = {}
    for r in result["per_seed"]:
        by_variant.setdefault(r["variant"], []).append(r)
    for v, rs in by_variant.items():

        def ms(key, d=2, rs=rs):
            vals = [x[key] for x in rs if x[key] is not None and math.isfinite(x[key])]
            if not vals:
                return "n/a"
            return f"{np.mean(vals):.{d}f} ± {np.std(vals):.{d}f}"

        lines.append(
            f"| {v} | {ms('roi_fraction')} | {ms('LVendo_dice', 3)} | {ms('LVendo_hd_mm', 1)} | "
            f"{ms('LVepi_hd_mm', 1)} | {ms('geometric', 1)} | {ms('anatomical', 1)} | "
            f"{ms('either', 1)} |"
        )
    if result["coarse_to_final"]:
        lines += [
            "",
            "### Coarse (first U-Net) -> final (Table III style)",
            "",
            "Final - coarse on the same images; McNemar on the 'either' outlier flag.",
            "",
            "| variant | seed | LVendo HD coarse -> final | LVepi HD coarse -> final | "
            "outliers coarse -> final | McNemar p | LVendo HD final - coarse (95 % CI) |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in result["coarse_to_final"]:
            c, f, t = r["coarse"], r["final"], r["final_vs_coarse"]
            lines.append(
                f"| {r['variant']} | {r['seed']} | {_f(c['LVendo_hd_mm'], 1)} -> "
                f"{_f(f['LVendo_hd_mm'], 1)} | {_f(c['LVepi_hd_mm'], 1)} -> "
                f"{_f(f['LVepi_hd_mm'], 1)} | {c['either']} -> {f['either']} | "
                f"{_p(t['mcnemar']['p'])} | {_ci(t['lvendo_hd'])} |"
            )
    if result["vs_unet1"]:
        lines += [
            "",
            "### Against U-Net 1 trained with the same seed (same images)",
            "",
            "Only-variant / only-U-Net-1 counts of 'either' outliers with McNemar's exact p;"
            " LVendo HD variant - U-Net 1 (negative: the variant is closer) with its bootstrap"
            " 95 % CI and the Wilcoxon p. Pooled: all image-seed pairs of the seeds run.",
            "",
            "| variant | seed | N | only variant | only U-Net 1 | McNemar p | "
            "LVendo HD diff (95 % CI) | Wilcoxon p |",
            "|---|---|---|---|---|---|---|---|",
        ]
        rows = result["vs_unet1"] + [dict(r, seed="pooled") for r in result["pooled_vs_unet1"]]
        for r in rows:
            mc, hd = r["mcnemar"], r["lvendo_hd"]
            lines.append(
                f"| {r['variant']} | {r['seed']} | {r['n']} | {mc['only_a']} | {mc['only_b']} | "
                f"{_p(mc['p'])} | {_ci(hd)} | {_p(hd['wilcoxon_p'])} |"
            )
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, help="study folder (runs, roi_study.md / .json)")
    p.add_argument("--data-dir", help="prepared TFDS camus data dir (default: write synthetic)")
    p.add_argument("--fold", type=int, default=1)
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--image-size", default="128x128")
    p.add_argument("--width", type=float, default=1.0)
    p.add_argument(
        "--dtype",
        default="",
        help="mixed precision policy, e.g. mixed_bfloat16 (default: float32; bfloat16 is only "
        "faster on CPUs with AVX512_BF16 or AMX)",
    )
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--patients", type=int, default=40, help="synthetic CAMUS patients")
    p.add_argument("--scale", type=float, default=0.5, help="synthetic CAMUS image scale")
    p.add_argument("--data-seed", type=int, default=7, help="synthetic CAMUS seed")
    p.add_argument(
        "--report-only",
        action="store_true",
        help="train nothing: report the runs already finished in --out",
    )
    args = p.parse_args(argv)

    from keras_runet.commands._common import setup_logging
    from keras_runet.evaluation.reports import _jsonable
    from tfds_camus.atomic import write_json, write_text

    setup_logging()
    result = run_study(args)
    text = format_markdown(result)
    out = Path(args.out)
    write_text(out / "roi_study.md", text)
    write_json(out / "roi_study.json", _jsonable(result))
    print(text)
    print(f"written: {out / 'roi_study.md'}, {out / 'roi_study.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
