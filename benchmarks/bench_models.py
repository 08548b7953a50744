"""Forward time of U-Net 1, SHG and RU-Net on this machine, and the attention's share.

Usage:
    python benchmarks/bench_models.py [--quick] [--json out.json]

For each model, dtype policy (float32, mixed_bfloat16) and batch size (1, 8) it times
``predict_on_batch`` (a compiled graph; eager calls are slower on CPU, docs/design.md) after
a warm-up and reports the median over repeats, in ms per image. It also times RU-Net's ROI
attention alone (the separable box filter of keras_runet.layers.RoiAttention) against the
naive 2-D ``dil x dil`` convolution it replaces, at batch 8, and reports the attention's share
of RU-Net's forward time. Numbers from one run are comparable with each other; absolute
times depend on what else the machine is doing.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402


def median_seconds(fn, repeats: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_forward(
    models=("unet1", "shg", "runet"),
    batches=(1, 8),
    dtypes=("float32", "mixed_bfloat16"),
    repeats=5,
    size=256,
):
    import keras

    from keras_runet.models import build_model

    records = []
    rng = np.random.default_rng(0)
    for dtype in dtypes:
        for name in models:
            keras.backend.clear_session()
            model = build_model(name, input_shape=(size, size, 1), dtype=dtype)
            for batch in batches:
                x = rng.random((batch, size, size, 1), dtype="float32")
                sec = median_seconds(lambda m=model, x=x: m.predict_on_batch(x), repeats)
                records.append(
                    {
                        "stage": "inference",
                        "model": name,
                        "dtype": dtype,
                        "batch": batch,
                        "ms_per_image": 1000 * sec / batch,
                        "images_per_s": batch / sec,
                        "params": model.count_params(),
                    }
                )
    return records


def bench_attention(batch=8, size=256, dil=11, repeats=10):
    import tensorflow as tf

    from keras_runet.layers import RoiAttention

    rng = np.random.default_rng(0)
    image = tf.constant(rng.random((batch, size, size, 1), dtype="float32"))
    probs = rng.random((batch, size, size, 4), dtype="float32")
    probs = tf.constant(probs / probs.sum(-1, keepdims=True))
    layer = RoiAttention(dil=dil)
    separable = tf.function(lambda: layer([image, probs]))

    kernel = tf.ones((dil, dil, 1, 1)) / dil**2

    @tf.function
    def naive():
        fg = tf.reduce_sum(probs[..., 1:], axis=-1, keepdims=True)
        m = tf.sigmoid(100.0 * (fg - 0.5))
        m = tf.nn.conv2d(m, kernel, 1, "SAME")
        return image * tf.sigmoid(100.0 * (m - 0.01))

    diff = float(tf.reduce_max(tf.abs(separable() - naive())))
    return {
        "separable_ms_per_image": 1000 * median_seconds(separable, repeats) / batch,
        "naive_conv_ms_per_image": 1000 * median_seconds(naive, repeats) / batch,
        "max_abs_difference": diff,
        "dil": dil,
        "batch": batch,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats, float32 only")
    parser.add_argument("--json", help="write the records to this file")
    args = parser.parse_args(argv)
    repeats = 3 if args.quick else 7
    dtypes = ("float32",) if args.quick else ("float32", "mixed_bfloat16")
    records = bench_forward(dtypes=dtypes, repeats=repeats)
    attention = [bench_attention(dil=d, repeats=repeats * 2) for d in (11, 30)]
    runet8 = next(
        r for r in records if r["model"] == "runet" and r["batch"] == 8 and r["dtype"] == "float32"
    )
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores")
    print("| model | dtype | batch | ms / image | images / s | params |")
    print("|---|---|---|---|---|---|")
    for r in records:
        print(
            f"| {r['model']} | {r['dtype']} | {r['batch']} | {r['ms_per_image']:.1f} | "
            f"{r['images_per_s']:.1f} | {r['params'] / 1e6:.2f} M |"
        )
    print()
    print(
        "| attention (batch 8) | separable ms / image | naive 2-D conv ms / image | share of "
        "RU-Net fp32 forward | max abs diff |"
    )
    print("|---|---|---|---|---|")
    for a in attention:
        a["share_of_runet"] = a["separable_ms_per_image"] / runet8["ms_per_image"]
        print(
            f"| dil {a['dil']} | {a['separable_ms_per_image']:.2f} | "
            f"{a['naive_conv_ms_per_image']:.2f} | {100 * a['share_of_runet']:.1f} % | "
            f"{a['max_abs_difference']:.1e} |"
        )
    if args.json:
        from tfds_camus.atomic import write_json

        write_json(args.json, {"forward": records, "attention": attention})


if __name__ == "__main__":
    main()
