"""Benchmark: every per-image metric for 2000 native-size CAMUS-like image pairs.

Times :func:`keras_runet.evaluation.evaluate_label_maps` (Dice, MAD, pooled MAD and HD of
LVendo, LVepi and LA; convexity and simplicity of prediction and reference; outlier flags;
the LV disks of Simpson's biplane method) with parallel worker processes, on label maps of
about 780 x 550 pixels (0.154 x 0.308 mm) drawn like the synthetic CAMUS: a tilted,
truncated ellipse LV with its myocardium and the atrium below, and predictions perturbed
in size, position and tilt with irregular, noisy borders (some with spurious blobs and
holes, so that outliers occur). ``--unique`` distinct pairs are drawn once and cycled to
``--images`` items (every item is evaluated independently; nothing is cached).

    python benchmarks/bench_evaluation.py                  # 2000 pairs, all cores, 3 repeats
    python benchmarks/bench_evaluation.py --workers 1 --images 200 --json

Prints the median wall time of the repeats, images per second, and the CPU time of this
process and its workers (``--json``: one JSON object). The target of the project is
<= 30 s for 2000 pairs on 2 cores. On a shared machine the wall time depends on the load
(the 1-minute load average is printed); CPU time / workers is what idle cores would take.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import statistics
import sys
import time

import numpy as np
from scipy import ndimage as ndi

SHAPE = (780, 550)
SPACING = (0.154, 0.308)


def _smooth_noise(rng, shape, cell: int, amplitude: float) -> np.ndarray:
    small = rng.standard_normal((shape[0] // cell + 3, shape[1] // cell + 3)).astype(np.float32)
    field = ndi.zoom(small, cell, order=1)[: shape[0], : shape[1]]
    return amplitude * field


def draw_label_map(params: dict, rng=None, noise: float = 0.0) -> np.ndarray:
    """A CAMUS-like label map (0 bg, 1 LV, 2 myocardium, 3 LA) from shape parameters (mm)."""
    rows = ((np.arange(SHAPE[0], dtype=np.float32) + 0.5) * SPACING[0])[:, None]
    cols = ((np.arange(SHAPE[1], dtype=np.float32) + 0.5 - SHAPE[1] / 2) * SPACING[1])[None, :]
    t = params["tilt"]
    dy, dx = rows - params["apex_depth"], cols - params["lv_x"]
    u = dy * math.cos(t) + dx * math.sin(t)  # along the long axis, from the apex
    v = -dy * math.sin(t) + dx * math.cos(t)
    length, b, thick = params["length"], params["half_width"], params["thickness"]
    a = length / 1.5
    perturb = 0.0
    if noise and rng is not None:
        perturb = _smooth_noise(rng, SHAPE, 40, noise) + _smooth_noise(rng, SHAPE, 12, noise / 3)
    endo = ((u - a) / a) ** 2 + (v / b) ** 2 + perturb
    epi = ((u - a) / (a + thick)) ** 2 + (v / (b + thick)) ** 2 + perturb
    above = u < length
    la_a, la_b = params["la_a"], params["la_b"]
    la = ((u - length - 0.6 * la_a) / la_a) ** 2 + ((v - params["la_x"]) / la_b) ** 2 + perturb
    lm = np.zeros(SHAPE, np.uint8)
    lm[(la <= 1) & ~above] = 3
    lm[(epi <= 1) & above] = 2
    lm[(endo <= 1) & above] = 1
    return lm


def random_params(rng) -> dict:
    return {
        "tilt": math.radians(rng.uniform(-12, 12)),
        "apex_depth": rng.uniform(12, 22),
        "lv_x": rng.uniform(-6, 6),
        "length": rng.uniform(60, 90),
        "half_width": rng.uniform(17, 27),
        "thickness": rng.uniform(7, 11),
        "la_a": rng.uniform(18, 26),
        "la_b": rng.uniform(16, 22),
        "la_x": rng.uniform(-4, 4),
    }


def perturbed(params: dict, rng, scale: float) -> dict:
    p = dict(params)
    p["tilt"] += math.radians(rng.normal(0, 3 * scale))
    p["apex_depth"] += rng.normal(0, 2 * scale)
    p["lv_x"] += rng.normal(0, 1.5 * scale)
    for k in ("length", "half_width", "thickness", "la_a", "la_b"):
        p[k] *= 1 + rng.normal(0, 0.06 * scale)
    return p


def make_pairs(n: int, seed: int = 0) -> list[dict]:
    """``n`` (pred, ref) pairs with metadata, as evaluate_label_maps takes them."""
    rng = np.random.default_rng(seed)
    pairs = []
    for i in range(n):
        params = random_params(rng)
        ref = draw_label_map(params)
        scale = rng.choice([0.5, 1.0, 2.5], p=[0.5, 0.35, 0.15])
        pred = draw_label_map(perturbed(params, rng, scale), rng, noise=0.08 * scale)
        if rng.random() < 0.1:  # a spurious blob of LV outside the heart
            r, c = rng.integers(100, 700), rng.integers(50, 500)
            pred[r : r + 25, c : c + 15] = 1
        if rng.random() < 0.05:  # a hole in the myocardium
            ys, xs = np.nonzero(pred == 2)
            k = rng.integers(len(ys))
            pred[ys[k] - 4 : ys[k] + 4, xs[k] - 2 : xs[k] + 2] = 0
        pairs.append(
            {
                "model": "bench",
                "output": "segmentation",
                "patient_id": f"patient{i // 4 + 1:04d}",
                "view": ("2CH", "4CH")[(i // 2) % 2],
                "instant": ("ED", "ES")[i % 2],
                "image_quality": ("Good", "Medium", "Poor")[i % 3],
                "pred": pred,
                "ref": ref,
                "spacing": SPACING,
            }
        )
    return pairs


def _cpu_s() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000, help="image pairs evaluated (2000)")
    parser.add_argument("--unique", type=int, default=200, help="distinct pairs drawn (200)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="worker processes")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats (median reported)")
    parser.add_argument("--postprocess", action="store_true", help="also time the post-processing")
    parser.add_argument(
        "--distance-method",
        choices=("edt", "kdtree"),
        default="edt",
        help="contour distances by EDT on a box (default) or k-d tree (same numbers)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)

    from keras_runet.evaluation import evaluate_label_maps, summarize

    t0 = time.perf_counter()
    pairs = make_pairs(min(args.unique, args.images))
    items = [pairs[i % len(pairs)] for i in range(args.images)]
    draw_s = time.perf_counter() - t0

    times, cpu = [], []
    rows = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        c = _cpu_s()
        rows = evaluate_label_maps(
            items,
            workers=args.workers,
            postprocess=args.postprocess,
            distance_method=args.distance_method,
            progress=False,  # timed: no progress lines
        )
        times.append(time.perf_counter() - t)
        cpu.append(_cpu_s() - c)  # this process + its (reaped) workers
    median = statistics.median(times)
    cpu_median = statistics.median(cpu)
    load = os.getloadavg()[0]
    summary = summarize(rows)["groups"][0]["subsets"]["all"]
    result = {
        "images": args.images,
        "unique_pairs": len(pairs),
        "shape": list(SHAPE),
        "spacing_mm": list(SPACING),
        "workers": args.workers,
        "cpu_count": os.cpu_count(),
        "postprocess": args.postprocess,
        "distance_method": args.distance_method,
        "repeats_s": [round(x, 3) for x in times],
        "median_s": round(median, 3),
        "images_per_s": round(args.images / median, 1),
        "cpu_s": round(cpu_median, 3),
        "cpu_ms_per_image": round(1000 * cpu_median / args.images, 2),
        "loadavg_1min_after": round(load, 2),
        "draw_s": round(draw_s, 2),
        "geometric_outliers": summary["geometric_outliers"]["count"],
        "anatomical_outliers": summary["anatomical_outliers"]["count"],
        "python": platform.python_version(),
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"{args.images} pairs of {SHAPE[0]}x{SHAPE[1]} ({len(pairs)} distinct), "
            f"{args.workers} workers, distances by {args.distance_method}: median {median:.2f} s over {args.repeats} repeats "
            f"({', '.join(f'{x:.2f}' for x in times)}), {args.images / median:.0f} images/s; "
            f"CPU {cpu_median:.1f} s ({result['cpu_ms_per_image']} ms/image); "
            f"load average {load:.1f}; "
            f"outliers geo {result['geometric_outliers']}, ana {result['anatomical_outliers']}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
