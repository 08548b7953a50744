"""Export benchmark: SavedModel size, signature listing, serving vs Keras latency on this machine.

Exports untrained default-size (256 x 256, full width) RU-Net and U-Net 1 models with
:func:`keras_runet.export.export_model`, then prints for each:

- the size of the version folder (``saved_model.pb``, ``variables/``, ``assets.extra/``);
- ``saved_model_cli show --dir <version> --all`` (the signature listing TF Serving sees);
- the median per-image latency of the exported ``serving_default`` signature (loaded with
  ``tf.saved_model.load``, the way a server loads it; at 256 x 256 the in-graph resizes are
  identities) next to Keras's ``predict_on_batch`` on the same batch (measured interleaved, so that load from other jobs hits both alike),
  at batch 1 and 8, and of
  ``serving_default`` at CAMUS's native size (~780 x 550: resize in the graph included).

Usage::

    python benchmarks/bench_export.py [--repeats 7] [--models runet unet1] [--out DIR]

Latency depends on the machine and its load: the numbers are for comparison on one machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_runet  # noqa: E402
from keras_runet.export import export_model  # noqa: E402


def folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def mib(n: int) -> str:
    return f"{n / 2**20:.2f} MiB"


def median_per_image(fns: dict, batch: int, repeats: int) -> dict:
    """Median wall and CPU (all threads) seconds per image of each callable, measured
    interleaved so that load from other jobs hits every callable alike. CPU time is less
    sensitive to a busy machine than wall time."""
    for fn in fns.values():  # warm-up (tracing, oneDNN primitive creation)
        fn()
        fn()
    wall = {name: [] for name in fns}
    cpu = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            c0, t0 = time.process_time(), time.perf_counter()
            fn()
            wall[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
    return {
        name: (statistics.median(wall[name]) / batch, statistics.median(cpu[name]) / batch)
        for name in fns
    }


def saved_model_cli_listing(version_dir: Path) -> str:
    cli = Path(sys.executable).with_name("saved_model_cli")
    cmd = [str(cli) if cli.exists() else "saved_model_cli", "show", "--dir", str(version_dir)]
    proc = subprocess.run([*cmd, "--all"], capture_output=True, text=True, timeout=600)
    if proc.returncode:
        return f"saved_model_cli failed ({proc.returncode}): {proc.stderr[-2000:]}"
    return proc.stdout


def bench_model(kind: str, out: Path, repeats: int) -> None:
    keras.utils.set_random_seed(0)
    model = keras_runet.build_model(kind, input_shape=(256, 256, 1))
    t0 = time.perf_counter()
    version_dir = export_model(model, out / kind, version=1, overwrite=True)
    export_s = time.perf_counter() - t0
    print(f"\n=== {kind}: {model.count_params():,} parameters, exported in {export_s:.1f} s")
    print(f"version folder: {version_dir}")
    print(
        f"size: total {mib(folder_size(version_dir))}; saved_model.pb "
        f"{mib((version_dir / 'saved_model.pb').stat().st_size)}; variables/ "
        f"{mib(folder_size(version_dir / 'variables'))}; assets.extra/ (.keras + JSON + warmup) "
        f"{mib(folder_size(version_dir / 'assets.extra'))}"
    )
    print("\n$ saved_model_cli show --dir", version_dir, "--all")
    print(saved_model_cli_listing(version_dir))

    loaded = tf.saved_model.load(str(version_dir))
    serving = loaded.signatures["serving_default"]
    rng = np.random.default_rng(0)
    print(f"median per image, {repeats} interleaved repeats, wall ms (CPU ms, all threads):")
    print(f"{'batch':>5}  {'size':>9}  {'serving_default':>17}  {'keras predict_on_batch':>22}")
    for batch in (1, 8):
        x = rng.random((batch, 256, 256, 1), dtype=np.float32)
        xt = tf.constant(x)
        t = median_per_image(
            {
                "serving": lambda xt=xt: serving(image=xt),
                "keras": lambda x=x: model.predict_on_batch(x),
            },
            batch,
            repeats,
        )
        print(f"{batch:>5}  {'256x256':>9}  {fmt(t['serving']):>17}  {fmt(t['keras']):>22}")
    for batch in (1, 8):
        xt = tf.constant(rng.random((batch, 780, 550, 1), dtype=np.float32))
        t = median_per_image({"serving": lambda xt=xt: serving(image=xt)}, batch, repeats)
        print(f"{batch:>5}  {'780x550':>9}  {fmt(t['serving']):>17}  {'(fixed size)':>22}")


def fmt(wall_cpu) -> str:
    return f"{wall_cpu[0] * 1e3:.1f} ({wall_cpu[1] * 1e3:.1f})"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--models", nargs="+", default=["runet", "unet1"])
    parser.add_argument("--out", help="export folder (default: a temporary folder, removed)")
    args = parser.parse_args(argv)
    print(
        f"TF {tf.__version__}, Keras {keras.__version__}, keras-runet {keras_runet.__version__}, "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU(s), "
        f"GPUs: {len(tf.config.list_physical_devices('GPU'))}, load average "
        f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}"
    )
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="bench_export_"))
    try:
        for kind in args.models:
            bench_model(kind, out, args.repeats)
    finally:
        if not args.out:
            shutil.rmtree(out, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
