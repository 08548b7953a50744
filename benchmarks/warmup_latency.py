"""First-request latency of an export with and without TF Serving's warmup file.

TF Serving replays ``assets.extra/tf_serving_warmup_requests`` when it loads a version,
before it marks the version available; without the file, the first client request pays the
TensorFlow runtime's lazy initialisation (graph optimisation, kernel creation, thread pools,
oneDNN primitives). TF Serving itself cannot run here (no docker), so this measures the same
cost in plain TensorFlow, in fresh Python processes that load the SavedModel as a server does
(``tf.saved_model.load``; they do not import keras_runet and run no TensorFlow op before
the load):

- *no warmup* (one process per signature): the first call of the signature after the load,
  then the second call with the same input;
- *warmup* (one process per model): every record of the warmup file replayed after the load
  (what the server does at load time; its cost is reported), then a client request to each
  signature with other pixels of the same size, then one at CAMUS's native size
  (780 x 550: float image, or a 780 x 550 PNG).

Each number is the median over ``--processes`` fresh processes of the wall time and, in
brackets, the process's CPU time (all threads; less sensitive to other jobs on a busy
machine); the requests hold one image.
The models are untrained and exported with :func:`keras_runet.export.export_model` (which
writes the warmup file; tensorflow-serving-api must be installed).

The export runs on Keras's backend: ``KERAS_BACKEND=jax`` measures a JAX export (its forward
pass is one ``XlaCallModule`` op, compiled by XLA at the first call).

Usage::

    python benchmarks/warmup_latency.py [--models runet unet1] [--processes 3]
        [--image-size 256] [--width 1.0] [--out DIR]

Prints a Markdown table. Latency depends on the machine and its load.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SIGNATURES = ("serving_default", "serving_bytes")
NATIVE = (780, 550)

# Runs in a fresh process: argv = version_dir, requests pickle, mode ("cold:<signature>" or
# "warm"). The parent read the warmup file (keras_runet.serving.read_warmup_requests) and
# pickled its (signature, inputs) records, so that nothing runs TensorFlow before the load.
CHILD = textwrap.dedent(
    """
    import json, pickle, sys, time
    import numpy as np
    import tensorflow as tf

    version_dir, requests_file, mode = sys.argv[1:4]
    native = tuple(int(v) for v in sys.argv[4].split("x"))
    with open(requests_file, "rb") as f:
        records = pickle.load(f)

    def tensors(inputs):
        return {k: tf.constant(v) for k, v in inputs.items()}

    def timed_ms(signature, inputs):  # wall and CPU (all threads) milliseconds
        c0, t0 = time.process_time(), time.perf_counter()
        out = signature(**inputs)
        for value in out.values():
            value.numpy()
        return [1e3 * (time.perf_counter() - t0), 1e3 * (time.process_time() - c0)]

    t0 = time.perf_counter()
    loaded = tf.saved_model.load(version_dir)
    result = {"load_ms": 1e3 * (time.perf_counter() - t0)}
    assert "keras_runet" not in sys.modules, "the server-like process runs no model code"
    warm = dict(records)
    if mode.startswith("cold:"):
        name = mode[len("cold:"):]
        inputs = tensors(warm[name])
        result["first_ms"] = timed_ms(loaded.signatures[name], inputs)
        result["second_ms"] = timed_ms(loaded.signatures[name], inputs)
    else:
        replay = [timed_ms(loaded.signatures[name], tensors(inputs)) for name, inputs in records]
        result["replay_ms"] = [sum(t[0] for t in replay), sum(t[1] for t in replay)]
        rng = np.random.default_rng(1)  # client requests: other pixels than the warmup's

        def client(name, size=None):
            if name == "serving_default":
                shape = warm[name]["image"].shape if size is None else (1, *size, 1)
                return {"image": tf.constant(rng.random(shape, dtype=np.float32))}
            if size is None:
                size = tuple(tf.io.decode_png(warm[name]["image_bytes"][0]).shape[:2])
            pixels = rng.integers(0, 256, size=(*size, 1), dtype=np.uint8)
            return {"image_bytes": tf.constant([tf.io.encode_png(pixels).numpy()])}

        for name in warm:
            result[name + "_after_ms"] = timed_ms(loaded.signatures[name], client(name))
        for name in warm:
            sig = loaded.signatures[name]
            result[name + "_native_ms"] = timed_ms(sig, client(name, native))
    print("RESULT " + json.dumps(result))
    """
)


def run_child(version_dir: Path, requests_file: Path, mode: str) -> dict:
    h, w = NATIVE
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(version_dir), str(requests_file), mode, f"{h}x{w}"],
        capture_output=True,
        text=True,
        timeout=900,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode or not lines:
        raise RuntimeError(f"{mode} on {version_dir} failed:\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT ") :])


def median(runs: list[dict], key: str) -> str:
    """Median wall ms (median CPU ms) of ``key`` over the processes."""
    wall = statistics.median(run[key][0] for run in runs)
    cpu = statistics.median(run[key][1] for run in runs)
    return f"{wall:.0f} ({cpu:.0f})"


def bench_model(kind: str, out: Path, processes: int, size: int, width: float) -> list[str]:
    import keras

    import keras_runet
    from keras_runet.export import WARMUP_NAME, export_model
    from keras_runet.serving import read_warmup_requests

    keras.utils.set_random_seed(0)
    model = keras_runet.build_model(kind, input_shape=(size, size, 1), width=width)
    version_dir = export_model(model, out / kind, version=1, overwrite=True)
    warmup_file = version_dir / "assets.extra" / WARMUP_NAME
    if not warmup_file.is_file():
        raise SystemExit("no warmup file was written: pip install tensorflow-serving-api")
    requests_file = out / f"{kind}_requests.pickle"
    with open(requests_file, "wb") as f:
        pickle.dump(read_warmup_requests(warmup_file), f)
    cold = {name: [] for name in SIGNATURES}
    warm = []
    for _ in range(processes):  # interleaved, so that load from other jobs hits all alike
        for name in SIGNATURES:
            cold[name].append(run_child(version_dir, requests_file, f"cold:{name}"))
        warm.append(run_child(version_dir, requests_file, "warm"))
    rows = []
    label = {"runet": "RU-Net", "unet1": "U-Net 1", "shg": "SHG"}.get(kind, kind)
    load_ms = statistics.median([r["load_ms"] for r in warm + sum(cold.values(), [])])
    for name in SIGNATURES:
        rows.append(
            f"| {label} | `{name}` | {load_ms / 1e3:.1f} s | {median(cold[name], 'first_ms')} "
            f"| {median(cold[name], 'second_ms')} | {median(warm, 'replay_ms')} "
            f"| {median(warm, name + '_after_ms')} | {median(warm, name + '_native_ms')} |"
        )
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["runet", "unet1"])
    parser.add_argument("--processes", type=int, default=3, help="fresh processes per number")
    parser.add_argument("--image-size", type=int, default=256, help="model input size (square)")
    parser.add_argument("--width", type=float, default=1.0, help="network width multiplier")
    parser.add_argument("--out", help="export folder (default: a temporary folder, removed)")
    args = parser.parse_args(argv)

    import keras
    import tensorflow as tf

    print(
        f"TF {tf.__version__}, exported on the Keras {keras.config.backend()} backend, "
        f"{platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPU(s), GPUs: {len(tf.config.list_physical_devices('GPU'))}, "
        f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}; untrained models, "
        f"{args.image_size} x {args.image_size}, width {args.width}; medians over "
        f"{args.processes} fresh processes; one image per request\n"
    )
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="warmup_latency_"))
    rows = []
    try:
        for kind in args.models:
            rows += bench_model(kind, out, args.processes, args.image_size, args.width)
    finally:
        if not args.out:
            shutil.rmtree(out, ignore_errors=True)
    h, w = NATIVE
    print("Wall ms (CPU ms, all threads) per request.\n")
    print(
        "| model | signature | load | no warmup: 1st request | 2nd request "
        "| warmup replay at load (all records) | after replay: 1st request "
        f"| after replay: 1st {h} x {w} request |"
    )
    print("|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
