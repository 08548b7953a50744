"""Training-step time of U-Net 1 in float32 and mixed_bfloat16 on this machine's CPU.

Whether ``mixed_bfloat16`` pays depends on the CPU: with AVX512_BF16 (or AMX) it is ~1.8x
float32 (benchmarks/RESULTS.md, the full run); without, TensorFlow emulates bfloat16 and the
step is several times slower. This prints the CPU's bfloat16 flags
(:func:`keras_runet.config.cpu_has_fast_bfloat16`) and a Markdown table of the median
``train_on_batch`` time (batch 8, random data, after 2 warm-up steps) per width and policy.

    python benchmarks/precision_step.py [--size 128] [--widths 0.5,1.0] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--widths", default="0.5,1.0")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)

    import keras

    from keras_runet.config import cpu_has_fast_bfloat16
    from keras_runet.models import build_model, compile_model

    print(f"hardware bfloat16 (AVX512_BF16 / AMX): {cpu_has_fast_bfloat16()}")
    print("| width | float32 (s/step) | mixed_bfloat16 (s/step) | bf16 / fp32 |")
    print("|---|---|---|---|")
    rng = np.random.default_rng(0)
    x = rng.random((8, args.size, args.size, 1), dtype=np.float32)
    y = {"segmentation": rng.integers(0, 4, (8, args.size, args.size))}
    for width in (float(w) for w in args.widths.split(",")):
        times = {}
        for dtype in (None, "mixed_bfloat16"):
            keras.backend.clear_session()
            model = compile_model(
                build_model(
                    "unet1", width=width, input_shape=(args.size, args.size, 1), dtype=dtype
                )
            )
            for _ in range(2):
                model.train_on_batch(x, y)
            steps = []
            for _ in range(args.repeats):
                t = time.perf_counter()
                model.train_on_batch(x, y)
                steps.append(time.perf_counter() - t)
            times[dtype] = statistics.median(steps)
        ratio = times["mixed_bfloat16"] / times[None]
        print(f"| {width} | {times[None]:.3f} | {times['mixed_bfloat16']:.3f} | {ratio:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
