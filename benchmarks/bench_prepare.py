"""Times the preparation of the ``camus`` TFDS builder on a full-size synthetic CAMUS.

Writes 500 synthetic patients at native size (about 780 x 550 pixels, the 2023 NIfTI layout
unless ``--layout original``), then runs ``download_and_prepare`` for each config into a fresh
data_dir and prints the wall time and the examples per split. The issue's target: the ``256``
config of the full dataset in 3 minutes or less on 2 cores.

    python benchmarks/bench_prepare.py                       # 500 patients, all configs
    python benchmarks/bench_prepare.py --configs 256 --json out.json
    python benchmarks/bench_prepare.py --num-patients 20 --scale 0.5   # a quick look
    python benchmarks/bench_prepare.py --configs 256 --forms extracted camus_public_zip

``--forms camus_public_zip`` also packs the synthetic CAMUS as the 2023 release's
``CAMUS_public.zip`` (once, reused) and times the preparation from the zip, extraction by
TFDS included, beside the preparation from the extracted tree.

The synthetic data is kept in ``--work-dir`` and reused when it is already complete (same
number of patients, layout, scale and seed): delete it to regenerate.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import time
from pathlib import Path

import tensorflow_datasets as tfds

import tfds_camus  # noqa: F401  (registers "camus")
from tfds_camus import phantom, reader

CONFIGS = ("256", "native", "half_sequence_256")
FORMS = ("extracted", "camus_public_zip")


def _generate(args) -> tuple[Path, float | None]:
    work = Path(args.work_dir)
    data = work / f"synthetic_{args.layout}_{args.num_patients}_s{args.scale:g}_seed{args.seed}"
    stamp = data / ".bench_complete"  # beside the phantom's own .complete marker
    if stamp.exists():
        return data, None
    shutil.rmtree(data, ignore_errors=True)
    start = time.perf_counter()
    phantom.write_synthetic_camus(
        data,
        num_patients=args.num_patients,
        layout=args.layout,
        seed=args.seed,
        scale=args.scale,
        workers=args.workers,
    )
    seconds = time.perf_counter() - start
    stamp.write_text(f"{seconds:.1f}\n")
    return data, seconds


def _zipped(data: Path, work: Path) -> tuple[Path, float | None]:
    """``CAMUS_public.zip`` of the synthetic tree, in a manual dir of its own (made once)."""
    manual = work / f"{data.name}_zip"
    stamp = manual / ".complete"
    if stamp.exists():
        return manual, None
    shutil.rmtree(manual, ignore_errors=True)
    start = time.perf_counter()
    phantom.as_downloaded(data, manual, "camus_public_zip")
    seconds = time.perf_counter() - start
    stamp.write_text(f"{seconds:.1f}\n")
    return manual, seconds


def _data_dir(work: Path, config: str, form: str) -> Path:
    return work / (f"tfds_{config}" if form == "extracted" else f"tfds_{config}_{form}")


def _prepare(config: str, manual_dir: Path, work: Path, form: str = "extracted") -> dict:
    data_dir = _data_dir(work, config, form)
    shutil.rmtree(data_dir, ignore_errors=True)
    builder = tfds.builder(f"camus/{config}", data_dir=str(data_dir))
    start, cpu_start = time.perf_counter(), time.process_time()
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir))
    )
    seconds = time.perf_counter() - start
    cpu_seconds = time.process_time() - cpu_start
    splits = {name: info.num_examples for name, info in builder.info.splits.items()}
    # the prepared dataset only (not TFDS's extraction of the zip under downloads/)
    size = sum(f.stat().st_size for f in (data_dir / "camus").rglob("*") if f.is_file())
    return {
        "config": config,
        "form": form,
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "splits": splits,
        "bytes": size,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-patients", type=int, default=500)
    parser.add_argument("--layout", choices=reader.LAYOUTS, default=reader.NIFTI)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=CONFIGS)
    parser.add_argument(
        "--forms",
        nargs="+",
        default=["extracted"],
        choices=FORMS,
        help="prepare from the extracted tree and/or from CAMUS_public.zip (nifti layout)",
    )
    parser.add_argument("--work-dir", default="/tmp/camus_bench")
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="processes for writing the synthetic data (not for preparing)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the prepared TFRecords")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    manual_dir, gen_seconds = _generate(args)
    patients = reader.list_patients(manual_dir)
    results = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
        "num_patients": args.num_patients,
        "layout": args.layout,
        "scale": args.scale,
        "patients_found": len(patients),
        "generate_seconds": gen_seconds,
        # Wall times depend on what else runs on the machine: the load is recorded, and the
        # CPU time of this process (all its threads) is given beside the wall time.
        "load_before": round(os.getloadavg()[0], 1),
        "configs": [],
    }
    forms = {"extracted": manual_dir}
    if "camus_public_zip" in args.forms:
        if args.layout != reader.NIFTI:
            parser.error("--forms camus_public_zip needs --layout nifti")
        forms["camus_public_zip"], results["zip_seconds"] = _zipped(manual_dir, work)
        zip_path = forms["camus_public_zip"] / "CAMUS_public.zip"
        results["zip_megabytes"] = round(zip_path.stat().st_size / 1e6, 1)
    results["from_zip"] = []
    # Warm-up (untimed): the first preparation in a process pays TensorFlow's and TFDS's
    # lazy set-up, which would otherwise land on whichever form is timed first.
    tiny = phantom.write_synthetic_camus(work / "warmup", patient_ids=[1], scale=0.1)
    _prepare("256", tiny, work / "warmup")
    shutil.rmtree(work / "warmup", ignore_errors=True)
    for config in args.configs:
        if config.startswith("half_sequence") and args.layout != reader.NIFTI:
            continue
        for form in args.forms:
            res = _prepare(config, forms[form], work, form)
            # "configs": the extracted tree (what benchmarks/run.py reads); "from_zip" beside it
            results["configs" if form == "extracted" else "from_zip"].append(res)
            if not args.keep:
                shutil.rmtree(_data_dir(work, config, form), ignore_errors=True)

    print(
        f"synthetic CAMUS: {len(patients)} patients, {args.layout} layout, scale {args.scale:g}"
        + (f", written in {gen_seconds:.0f} s" if gen_seconds else " (reused)")
    )
    print(f"load average before / after: {results['load_before']} / {os.getloadavg()[0]:.1f}")
    print(
        f"{'config':<20}{'prepare (s)':>12}{'CPU (s)':>9}{'examples':>10}{'MB':>8}"
        "  examples per split"
    )
    for res in results["configs"] + results["from_zip"]:
        splits = res["splits"]
        total = sum(splits.values())
        per_split = ", ".join(f"{k} {v}" for k, v in splits.items())
        name = res["config"] + (" (zip)" if res["form"] != "extracted" else "")
        print(
            f"{name:<20}{res['seconds']:>12.1f}{res['cpu_seconds']:>9.1f}{total:>10}"
            f"{res['bytes'] / 1e6:>8.0f}  {per_split}"
        )
    by_config = {r["config"]: r["seconds"] for r in results["configs"]}
    for res in results["from_zip"]:
        if res["config"] in by_config:
            print(
                f"from CAMUS_public.zip ({results['zip_megabytes']} MB): {res['seconds']:.1f} s "
                f"vs {by_config[res['config']]:.1f} s from the extracted tree "
                f"(x{res['seconds'] / by_config[res['config']]:.2f}) for config {res['config']}"
            )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
