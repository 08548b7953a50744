"""GPU throughput of U-Net 1, SHG and RU-Net on the JAX backend, mixed_bfloat16 (no TensorFlow).

For the lent H100 (or any accelerator JAX sees), whose Python has jax, keras and numpy but no
TensorFlow: this script imports only ``keras_runet`` (whose ``__init__`` pulls in the models,
layers, losses and metrics: Keras and ``keras.ops`` only) and ``benchmarks/flops.py`` (Keras
only), never ``keras_runet.data``, ``tfds_camus`` or TensorFlow.

Measured, per model (256 x 256, ``dtype="mixed_bfloat16"``):

- inference: images/s of a jitted ``model.stateless_call`` on a device-resident batch
  (``block_until_ready`` after each call; median of repeats after a compiling warm-up), at each
  ``--batches`` size;
- training: images/s of the training step ``keras_runet.training.train`` runs: the model
  built and compiled by ``keras_runet.training.build_and_compile`` from the ``--preset``'s
  ``TrainConfig`` (the paper's: Adam 1e-3, Dice on every output, XLA), ``fit`` on synthetic
  numpy batches (host-to-device copies included, as in real training), the wall time of
  ``--steps`` steps after a warm-up ``fit`` that compiles;
- the device's bf16 and fp32 matmul throughput (``jnp.matmul`` of two N x N matrices), so that
  every result is also a fraction of the hardware bound (FLOPs per image counted from the
  layers; a training step counted as 3 x the forward).

Usage (on the GPU machine; prints a Markdown table, ``--json`` writes the records)::

    KERAS_BACKEND=jax python benchmarks/gpu_jax.py --json gpu_results.json
    KERAS_BACKEND=jax python benchmarks/gpu_jax.py --size 64 --width 0.25 --batches 1,2 \\
        --train-batch 2 --steps 2 --matmul-size 256       # a tiny smoke test on a CPU
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")
HERE = Path(__file__).resolve().parent
# flops.py lives beside this script; keras_runet in the repository root (so that a checkout
# runs without `pip install`, e.g. on a lent GPU machine whose Python has no TensorFlow).
for folder in (HERE, HERE.parent):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

import flops  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_runet  # noqa: E402
from keras_runet import training  # noqa: E402  (Keras only: no TensorFlow)
from keras_runet.presets import PRESETS, preset_config  # noqa: E402

MODELS = ("unet1", "shg", "runet")
DTYPE = "mixed_bfloat16"


def _median_call_s(fn, repeats: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        jax.block_until_ready(fn())
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def matmul_peak(n: int, repeats: int) -> dict:
    """``{"float32": GFLOP/s, "bfloat16": GFLOP/s}`` of an ``n x n`` matmul on the device."""
    peaks = {}
    key = jax.random.PRNGKey(0)
    for name, dtype in (("float32", jnp.float32), ("bfloat16", jnp.bfloat16)):
        a = jax.random.uniform(key, (n, n), dtype=jnp.float32).astype(dtype)
        b = jax.random.uniform(jax.random.fold_in(key, 1), (n, n), jnp.float32).astype(dtype)
        matmul = jax.jit(jnp.matmul)
        sec = _median_call_s(lambda a=a, b=b, f=matmul: f(a, b), repeats)
        peaks[name] = 2 * n**3 / sec / 1e9
    return peaks


def bench_inference(model, batch: int, size: int, repeats: int) -> float:
    """Seconds per call of a jitted forward pass on a device-resident batch."""
    x = jax.device_put(np.random.default_rng(0).random((batch, size, size, 1), dtype="float32"))
    tv = [v.value for v in model.trainable_variables]
    ntv = [v.value for v in model.non_trainable_variables]

    @jax.jit
    def forward(tv, ntv, x):
        outputs, _ = model.stateless_call(tv, ntv, x, training=False)
        return outputs["segmentation"]

    return _median_call_s(lambda: forward(tv, ntv, x), repeats)


def training_config(name: str, args) -> training.TrainConfig:
    """The :class:`~keras_runet.config.TrainConfig` of a timed training run: the ``--preset``
    (the paper's by default: Adam at 1e-3, Dice on every output), at the benchmark's size,
    width, batch and ``mixed_bfloat16``."""
    return preset_config(
        args.preset,
        model=name,
        image_size=(args.size, args.size),
        width=args.width,
        batch_size=args.train_batch,
        dtype=DTYPE,
    )


def bench_training(config: training.TrainConfig, steps: int) -> float:
    """Seconds per training step of the model ``keras_runet.training.train`` trains: built and
    compiled by :func:`keras_runet.training.build_and_compile` from ``config`` (its loss, loss
    weights, optimizer and XLA, as a real run), then ``fit`` on synthetic batches (host to
    device copies included, as in real training; the tf.data pipeline, which feeds the
    device from the host's CPUs and needs TensorFlow, is not), after a compiling warm-up."""
    model = training.build_and_compile(config)
    batch = config.batch_size
    size = config.image_size
    rng = np.random.default_rng(0)
    x = rng.random((batch * steps, *size, 1), dtype="float32")
    labels = rng.integers(0, 4, (batch * steps, *size)).astype("int32")
    y = {o: labels for o in model.output_names}
    fit = dict(batch_size=batch, epochs=1, verbose=0, shuffle=False)
    model.fit(x[: 2 * batch], {o: v[: 2 * batch] for o, v in y.items()}, **fit)  # compile
    start = time.perf_counter()
    model.fit(x, y, **fit)  # the returned History holds floats: the steps have finished
    return (time.perf_counter() - start) / steps


def run(args) -> list[dict]:
    """Every model's inference and training records, plus the two matmul peaks."""
    device = jax.devices()[0]
    card = getattr(device, "device_kind", str(device))
    peaks = matmul_peak(args.matmul_size, args.repeats)
    records = [
        {
            "stage": "peak",
            "model": f"matmul_{args.matmul_size}",
            "dtype": name,
            "batch": None,
            "images_per_s": None,
            "gflop_per_s": value,
            "fraction_of_peak": 1.0,
            "device": card,
        }
        for name, value in peaks.items()
    ]
    for name in args.models:
        keras.backend.clear_session()
        keras.utils.set_random_seed(0)
        shape = (args.size, args.size, 1)
        fp32_model = keras_runet.build_model(name, input_shape=shape, width=args.width)
        gflop = flops.keras_flops_per_image(fp32_model) / 1e9
        del fp32_model
        model = keras_runet.build_model(name, input_shape=shape, width=args.width, dtype=DTYPE)
        common = dict(
            dtype=DTYPE,
            size=args.size,
            width=args.width,
            params=model.count_params(),
            device=card,
            backend=f"keras {keras.__version__} / jax {jax.__version__}",
        )
        for batch in args.batches:
            sec = bench_inference(model, batch, args.size, args.repeats)
            ips = batch / sec
            records.append(
                dict(
                    stage="inference",
                    model=name,
                    batch=batch,
                    images_per_s=ips,
                    gflop_per_image=gflop,
                    gflop_per_s=ips * gflop,
                    fraction_of_peak=ips * gflop / peaks["bfloat16"],
                    path="jit stateless_call",
                    **common,
                )
            )
            print(f"{card} inference {name} b{batch}: {ips:.0f} img/s", file=sys.stderr)
        del model
        keras.backend.clear_session()
        config = training_config(name, args)
        sec = bench_training(config, args.steps)
        ips = args.train_batch / sec
        records.append(
            dict(
                stage="training",
                model=name,
                batch=args.train_batch,
                images_per_s=ips,
                gflop_per_image=3 * gflop,
                gflop_per_s=ips * 3 * gflop,
                fraction_of_peak=ips * 3 * gflop / peaks["bfloat16"],
                path=f"training.build_and_compile (preset {config.preset}) + fit",
                learning_rate=config.learning_rate,
                **common,
            )
        )
        print(f"{card} training {name} b{args.train_batch}: {ips:.0f} img/s", file=sys.stderr)
    return records


def markdown(records: list[dict]) -> str:
    """The records as a Markdown table."""
    rows = [
        "| device | stage | model | dtype | batch | images/s | GFLOP/s | % of bf16 matmul |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        ips = "–" if r["images_per_s"] is None else f"{r['images_per_s']:.0f}"
        rows.append(
            f"| {r['device']} | {r['stage']} | {r['model']} | {r['dtype']} | {r['batch'] or '–'} "
            f"| {ips} | {r['gflop_per_s']:.0f} | {100 * r['fraction_of_peak']:.0f} |"
        )
    return "\n".join(rows)


def main(argv=None) -> int:
    """Command line: see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--batches", default="1,32,128", help="inference batch sizes")
    parser.add_argument("--train-batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=20, help="timed training steps")
    parser.add_argument("--repeats", type=int, default=20, help="timed inference calls")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument(
        "--preset", default="paper", choices=sorted(PRESETS), help="training preset (paper)"
    )
    parser.add_argument("--width", type=float, default=1.0, help="filter multiplier (tests)")
    parser.add_argument("--matmul-size", type=int, default=8192)
    parser.add_argument("--json", help="write the records here")
    args = parser.parse_args(argv)
    if keras.backend.backend() != "jax":
        parser.error(f"run with KERAS_BACKEND=jax (Keras uses {keras.backend.backend()})")
    args.models = [m for m in args.models.split(",") if m]
    args.batches = [int(b) for b in args.batches.split(",") if b]
    records = run(args)
    print(markdown(records))
    if args.json:
        Path(args.json).write_text(json.dumps(records, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
