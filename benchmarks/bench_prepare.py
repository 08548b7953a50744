"""Times the preparation of the ``camus`` TFDS builder on a full-size synthetic CAMUS.

Writes 500 synthetic patients at native size (about 780 x 550 pixels, the 2023 NIfTI layout
unless ``--layout original``), then runs ``download_and_prepare`` for each config into a fresh
data_dir and prints the wall time and the examples per split. The issue's target: the ``256``
config of the full dataset in 3 minutes or less on 2 cores.

    python benchmarks/bench_prepare.py                       # 500 patients, all configs
    python benchmarks/bench_prepare.py --configs 256 --json out.json
    python benchmarks/bench_prepare.py --num-patients 20 --scale 0.5   # a quick look

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


def _generate(args) -> tuple[Path, float | None]:
    work = Path(args.work_dir)
    data = work / f"synthetic_{args.layout}_{args.num_patients}_s{args.scale:g}_seed{args.seed}"
    stamp = data / ".complete"
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


def _prepare(config: str, manual_dir: Path, work: Path) -> dict:
    data_dir = work / f"tfds_{config}"
    shutil.rmtree(data_dir, ignore_errors=True)
    builder = tfds.builder(f"camus/{config}", data_dir=str(data_dir))
    start, cpu_start = time.perf_counter(), time.process_time()
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir))
    )
    seconds = time.perf_counter() - start
    cpu_seconds = time.process_time() - cpu_start
    splits = {name: info.num_examples for name, info in builder.info.splits.items()}
    size = sum(f.stat().st_size for f in data_dir.rglob("*") if f.is_file())
    return {
        "config": config,
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
    for config in args.configs:
        if config.startswith("half_sequence") and args.layout != reader.NIFTI:
            continue
        res = _prepare(config, manual_dir, work)
        results["configs"].append(res)
        if not args.keep:
            shutil.rmtree(work / f"tfds_{config}", ignore_errors=True)

    print(
        f"synthetic CAMUS: {len(patients)} patients, {args.layout} layout, scale {args.scale:g}"
        + (f", written in {gen_seconds:.0f} s" if gen_seconds else " (reused)")
    )
    print(f"load average before / after: {results['load_before']} / {os.getloadavg()[0]:.1f}")
    print(
        f"{'config':<20}{'prepare (s)':>12}{'CPU (s)':>9}{'examples':>10}{'MB':>8}"
        "  examples per split"
    )
    for res in results["configs"]:
        splits = res["splits"]
        total = sum(splits.values())
        per_split = ", ".join(f"{k} {v}" for k, v in splits.items())
        print(
            f"{res['config']:<20}{res['seconds']:>12.1f}{res['cpu_seconds']:>9.1f}{total:>10}"
            f"{res['bytes'] / 1e6:>8.0f}  {per_split}"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
