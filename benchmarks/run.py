"""Every stage's speed in one run, against the machine's measured matmul bound and a peer.

Usage::

    python benchmarks/run.py --quick                       # < 2 min: a subset, few repeats
    python benchmarks/run.py --json benchmarks/results.json --markdown table.md   # full, < 15 min
    python benchmarks/run.py --quick --only peak,predict   # development: some stages only

Stages (``--only`` takes any of these names, comma-separated):

``peak``
    fp32 and bf16 ``tf.linalg.matmul`` of two N x N matrices (N = 4096; 2048 with ``--quick``),
    median of repeats -> GFLOP/s: the hardware bound every other GFLOP/s is a fraction of.
    Always measured when an inference or training stage runs.
``inference`` = ``predict`` + ``savedmodel`` + ``peer``
    ``predict``: U-Net 1, SHG and RU-Net at 256 x 256, float32 and mixed_bfloat16, batches
    1, 8, 32, timed through ``predict_on_batch`` (a compiled graph: eager calls are ~3x slower
    on CPU). ``savedmodel``: the same untrained models exported with
    :func:`keras_runet.export.export_model` and timed through
    ``tf.saved_model.load(...).signatures["serving_default"]`` (that signature resizes the
    image to the model's 256 x 256, here an identity size, resizes the probabilities back and
    takes the argmax: a little more work than the model alone). Both paths are timed with
    ``bench_export.median_per_image``: 2 warm-up calls, then the median of ``--repeats``
    calls (5; 3 at batch 32) interleaved between the two paths. ``peer``: MONAI's
    ``BasicUNet`` with features chosen so its parameter count is close to U-Net 1's, in
    float32 and under ``torch.autocast(bfloat16)`` (only when torch and monai are installed:
    ``pip install keras-runet[peer]``).
``training``
    images/s of ``fit`` steps (median step time after warm-up steps) of each model compiled by
    :func:`keras_runet.compile_model`, synthetic batches of 8 at 256 x 256, float32 and
    mixed_bfloat16. GFLOP/s counts a training step as 3 x the forward FLOPs (the usual
    estimate: the backward pass costs about twice the forward).
``data`` = ``prepare`` + ``pipeline`` + ``evaluation``
    ``prepare``: TFDS preparation of the ``camus/256`` config from a synthetic CAMUS at native
    size (``benchmarks/bench_prepare.py`` in a subprocess; the synthetic data is written once
    and reused from ``--work-dir``). ``pipeline``: :func:`keras_runet.data.make_dataset` with
    augmentation over the prepared data, batches of 8: one pass without cache (read, decode,
    resize, augment) and one pass from the in-memory cache. ``evaluation``:
    ``benchmarks/bench_evaluation.py`` (every metric of 2000 native-size pairs) in a subprocess.

FLOPs per image are counted from each model's layers (:mod:`flops`), not assumed. Every record
is a dict with at least ``stage``, ``model``, ``dtype``, ``batch``, ``images_per_s``,
``gflop_per_s`` and ``fraction_of_peak`` (None where they do not apply); see
:func:`make_record`. The run prints one progress line per stage on stderr, then a Markdown table
and the targets of issue 9 (met or not) on stdout.

Numbers depend on what else the machine runs: compare numbers from one run with each other.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import json
import math
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

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # bench_* and flops live beside this script
    sys.path.insert(0, str(HERE))

import flops  # noqa: E402
import numpy as np  # noqa: E402
from bench_models import median_seconds  # noqa: E402

MODELS = ("unet1", "shg", "runet")
DTYPES = ("float32", "mixed_bfloat16")
SIZE = 256
PEER_MODEL = "monai_basicunet"
# BasicUNet's features (5 levels + the last decoder): 1.95 M parameters, U-Net 1 has 1.98 M.
PEER_FEATURES = (16, 32, 64, 128, 256, 16)
PEER_DTYPES = ("float32", "autocast_bfloat16")
REQUIRED_KEYS = (
    "stage",
    "model",
    "dtype",
    "batch",
    "images_per_s",
    "gflop_per_s",
    "fraction_of_peak",
)
STEPS = ("peak", "predict", "savedmodel", "peer", "training", "prepare", "pipeline", "evaluation")
GROUPS = {
    "inference": ("predict", "savedmodel", "peer"),
    "data": ("prepare", "pipeline", "evaluation"),
}


@dataclasses.dataclass
class Settings:
    """What one run measures and how often (``--quick`` or the full run)."""

    quick: bool = False
    models: tuple[str, ...] = MODELS
    dtypes: tuple[str, ...] = DTYPES
    batches: tuple[int, ...] = (1, 8, 32)
    repeats: int = 5
    warmup: int = 2
    matmul_size: int = 4096
    matmul_repeats: int = 5
    savedmodel_models: tuple[str, ...] = MODELS
    peer_batches: tuple[int, ...] = (1, 8, 32)
    peer_channels_last_batches: tuple[int, ...] = (8,)
    train_models: tuple[str, ...] = MODELS
    train_batch: int = 8
    train_warmup: int = 2
    train_steps: int = 5
    prepare_patients: int = 500
    pipeline_batch: int = 8
    eval_images: int = 2000
    eval_unique: int = 200
    eval_repeats: int = 1
    work_dir: str = "/tmp/runet_bench"

    @classmethod
    def for_run(cls, quick: bool, repeats: int | None = None, **overrides) -> Settings:
        """The full run's settings, or the ``--quick`` subset; ``repeats`` overrides both."""
        s = cls(quick=quick)
        if quick:
            s.batches = (1, 8)
            s.repeats = 2
            s.warmup = 1
            s.matmul_size = 2048
            s.matmul_repeats = 3
            s.savedmodel_models = ("unet1",)
            s.peer_batches = (8,)
            s.peer_channels_last_batches = ()
            s.train_models = ("unet1",)
            s.train_warmup = 1
            s.train_steps = 2
            s.prepare_patients = 4
            s.eval_images = 100
            s.eval_unique = 20
        if repeats is not None:
            s.repeats = repeats
        for key, value in overrides.items():
            if value is not None:
                setattr(s, key, value)
        return s


def make_record(
    stage: str,
    model: str | None,
    dtype: str | None,
    batch: int | None,
    images_per_s: float | None,
    *,
    gflop_per_image: float | None = None,
    peak_gflop_per_s: float | None = None,
    **extra,
) -> dict:
    """One benchmark record: the required keys first, then ``extra``.

    ``gflop_per_s`` is ``images_per_s * gflop_per_image`` and ``fraction_of_peak`` that divided
    by ``peak_gflop_per_s`` (the measured matmul throughput of the same precision); both are
    None when an argument they need is None (e.g. the data stages).
    """
    gflop_per_s = None
    if images_per_s is not None and gflop_per_image is not None:
        gflop_per_s = images_per_s * gflop_per_image
    fraction = None
    if gflop_per_s is not None and peak_gflop_per_s:
        fraction = gflop_per_s / peak_gflop_per_s
    record = {
        "stage": stage,
        "model": model,
        "dtype": dtype,
        "batch": batch,
        "images_per_s": images_per_s,
        "gflop_per_s": gflop_per_s,
        "fraction_of_peak": fraction,
    }
    if gflop_per_image is not None:
        record["gflop_per_image"] = gflop_per_image
    record.update(extra)
    return record


def repeats_for(settings: Settings, batch: int) -> tuple[int, int]:
    """(timed repeats, warm-up calls) for one batch size: large batches vary less, so batches of
    32 and more get half the repeats (at least 2) and one warm-up call."""
    if batch >= 32:
        return max(2, math.ceil(settings.repeats / 2)), 1
    return settings.repeats, settings.warmup


def peak_key(dtype: str) -> str:
    """The matmul precision that bounds a model dtype ("float32" or "bfloat16")."""
    return "bfloat16" if "bfloat16" in dtype else "float32"


def _progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- the hardware bound ----------------------------------------------------------------------


def bench_peak(settings: Settings) -> list[dict]:
    """fp32 and bf16 square matmul throughput (median of repeats), one record per precision."""
    import tensorflow as tf

    n = settings.matmul_size
    records = []
    rng = np.random.default_rng(0)
    for name, dtype in (("float32", tf.float32), ("bfloat16", tf.bfloat16)):
        a = tf.cast(tf.constant(rng.random((n, n), dtype="float32")), dtype)
        b = tf.cast(tf.constant(rng.random((n, n), dtype="float32")), dtype)
        matmul = tf.function(lambda a=a, b=b: tf.linalg.matmul(a, b))
        sec = median_seconds(matmul, settings.matmul_repeats, warmup=1)
        gflop_per_s = 2 * n**3 / sec / 1e9
        records.append(
            make_record(
                "peak",
                f"matmul_{n}",
                name,
                None,
                None,
                gflop_per_s=gflop_per_s,
                fraction_of_peak=1.0,
                seconds=sec,
                repeats=settings.matmul_repeats,
                note=f"tf.linalg.matmul {n}x{n} @ {n}x{n}, median",
            )
        )
    return records


def peaks_from(records: list[dict]) -> dict[str, float]:
    """``{"float32": GFLOP/s, "bfloat16": GFLOP/s}`` from the peak records."""
    return {r["dtype"]: r["gflop_per_s"] for r in records if r["stage"] == "peak"}


# --- inference ----------------------------------------------------------------------------


def model_flops(name: str, cross_check: bool = False) -> tuple[float, int]:
    """(GFLOP per 256 x 256 image, parameters) of one of our models, counted from its layers.

    With ``cross_check``, also logs TensorFlow's profiler count of the same model.
    """
    import keras

    from keras_runet.models import build_model

    keras.backend.clear_session()
    model = build_model(name, input_shape=(SIZE, SIZE, 1))
    counted = flops.keras_flops_per_image(model) / 1e9
    if cross_check:
        profiled = flops.tf_profiler_flops_per_image(model, (SIZE, SIZE, 1)) / 1e9
        _progress(f"flops {name}: {counted:.3f} GFLOP counted, {profiled:.3f} TF profiler")
    return counted, model.count_params()


def bench_predict(
    settings: Settings, peaks: dict, gflops: dict, *, savedmodel: bool, predict: bool = True
) -> list[dict]:
    """``predict_on_batch`` and/or exported ``serving_default`` images/s of our models."""
    import keras
    import tensorflow as tf
    from bench_export import median_per_image

    from keras_runet.export import export_model
    from keras_runet.models import build_model

    # One predict function per batch size is retraced on purpose: silence TF's warning.
    tf.get_logger().setLevel("ERROR")
    records = []
    rng = np.random.default_rng(0)
    export_root = Path(tempfile.mkdtemp(prefix="runet_bench_export_"))
    try:
        for name in settings.models:
            export = savedmodel and name in settings.savedmodel_models
            if not (predict or export):
                continue
            for dtype in settings.dtypes:
                keras.backend.clear_session()
                keras.utils.set_random_seed(0)
                model = build_model(name, input_shape=(SIZE, SIZE, 1), dtype=dtype)
                common = dict(
                    gflop_per_image=gflops[name][0],
                    peak_gflop_per_s=peaks.get(peak_key(dtype)),
                    params=gflops[name][1],
                    framework=f"keras {keras.__version__} / tensorflow {tf.__version__}",
                )
                serving = None
                if export:
                    start = time.perf_counter()
                    version = export_model(model, export_root / f"{name}_{dtype}", version=1)
                    export_s = time.perf_counter() - start
                    serving = tf.saved_model.load(str(version)).signatures["serving_default"]
                for batch in settings.batches:
                    x = rng.random((batch, SIZE, SIZE, 1), dtype="float32")
                    xt = tf.constant(x)
                    calls = {}
                    if predict:
                        calls["predict"] = lambda m=model, x=x: m.predict_on_batch(x)
                    if serving is not None:
                        calls["savedmodel"] = lambda s=serving, xt=xt: s(image=xt)
                    repeats = repeats_for(settings, batch)[0]
                    # bench_export's timer: 2 warm-up calls each, then the repeats interleaved
                    # (load from other processes hits both paths alike); wall time is reported.
                    per_image = median_per_image(calls, batch, repeats)
                    for path, timing in per_image.items():
                        # (wall, CPU) seconds per image; an older bench_export gave wall only.
                        sec, cpu = timing if isinstance(timing, tuple) else (timing, None)
                        extra = {} if cpu is None else {"cpu_ms_per_image": 1000 * cpu}
                        if path == "savedmodel":
                            extra.update(
                                export_s=export_s,
                                note="serving_default: resize to 256x256 (identity here) and "
                                "back, argmax; int32 label maps out",
                            )
                        records.append(
                            make_record(
                                "inference",
                                name,
                                dtype,
                                batch,
                                1.0 / sec,
                                path=path,
                                ms_per_image=1000 * sec,
                                repeats=repeats,
                                **common,
                                **extra,
                            )
                        )
                _progress(
                    f"inference {name} {dtype}: "
                    + ", ".join(
                        f"{r['path']} b{r['batch']} {r['images_per_s']:.1f} img/s"
                        for r in records
                        if r["model"] == name and r["dtype"] == dtype
                    )
                )
                del model, serving
    finally:
        shutil.rmtree(export_root, ignore_errors=True)
    return records


def peer_available() -> bool:
    """True when torch and monai can be imported (the optional ``peer`` extra)."""
    try:
        import monai  # noqa: F401
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def build_peer():
    """MONAI's 2-D ``BasicUNet``, 1 input channel, 4 classes, about U-Net 1's size."""
    from monai.networks.nets import BasicUNet

    return BasicUNet(spatial_dims=2, in_channels=1, out_channels=4, features=PEER_FEATURES)


def bench_peer(settings: Settings, peaks: dict) -> list[dict]:
    """MONAI BasicUNet images/s in float32 and under ``torch.autocast(bfloat16)``.

    PyTorch's default NCHW layout at ``settings.peer_batches``, and its channels-last layout
    (often faster with oneDNN on CPU) at ``settings.peer_channels_last_batches``, so that our
    models are compared with the faster of the two.
    """
    import monai
    import torch

    torch.manual_seed(0)
    net = build_peer().eval()
    params = sum(p.numel() for p in net.parameters())
    gflop = flops.torch_flops_per_image(net, (1, SIZE, SIZE)) / 1e9
    framework = f"torch {torch.__version__} / monai {monai.__version__}"
    records = []
    layouts = (
        ("torch", torch.contiguous_format, settings.peer_batches),
        ("torch_channels_last", torch.channels_last, settings.peer_channels_last_batches),
    )
    for path, layout, batches in layouts:
        if not batches:
            continue
        net = net.to(memory_format=layout)
        for dtype in PEER_DTYPES:
            autocast = dtype == "autocast_bfloat16"
            for batch in batches:
                x = torch.rand((batch, 1, SIZE, SIZE)).to(memory_format=layout)

                def forward(x=x, autocast=autocast, net=net):
                    with torch.inference_mode():
                        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
                            return net(x)

                repeats, warmup = repeats_for(settings, batch)
                sec = median_seconds(forward, repeats, warmup)
                records.append(
                    make_record(
                        "inference",
                        PEER_MODEL,
                        dtype,
                        batch,
                        batch / sec,
                        gflop_per_image=gflop,
                        peak_gflop_per_s=peaks.get(peak_key(dtype)),
                        path=path,
                        ms_per_image=1000 * sec / batch,
                        params=params,
                        repeats=repeats,
                        framework=framework,
                        note=f"BasicUNet features={PEER_FEATURES}, eval, inference_mode, "
                        f"{torch.get_num_threads()} threads",
                    )
                )
            _progress(
                f"peer {PEER_MODEL} {path} {dtype}: "
                + ", ".join(
                    f"b{r['batch']} {r['images_per_s']:.1f} img/s"
                    for r in records
                    if r["dtype"] == dtype and r["path"] == path
                )
            )
    return records


# --- training -----------------------------------------------------------------------------


def _step_timer():
    import keras

    class StepTimer(keras.callbacks.Callback):
        """Wall time between the ends of consecutive training steps."""

        def __init__(self):
            super().__init__()
            self.ends = []

        def on_train_begin(self, logs=None):
            self.ends = [time.perf_counter()]

        def on_train_batch_end(self, batch, logs=None):
            self.ends.append(time.perf_counter())

    return StepTimer()


def bench_training(settings: Settings, peaks: dict, gflops: dict) -> list[dict]:
    """images/s of ``fit`` steps of each model (median step time after warm-up steps)."""
    import keras
    import tensorflow as tf

    from keras_runet.models import build_model, compile_model

    records = []
    rng = np.random.default_rng(0)
    batch = settings.train_batch
    x = rng.random((batch, SIZE, SIZE, 1), dtype="float32")
    labels = rng.integers(0, 4, (batch, SIZE, SIZE)).astype("int32")
    for name in settings.train_models:
        for dtype in settings.dtypes:
            keras.backend.clear_session()
            keras.utils.set_random_seed(0)
            model = compile_model(build_model(name, input_shape=(SIZE, SIZE, 1), dtype=dtype))
            y = {o: labels for o in model.output_names}
            data = tf.data.Dataset.from_tensors((x, y)).repeat()
            timer = _step_timer()
            steps = settings.train_warmup + settings.train_steps
            model.fit(
                data, steps_per_epoch=steps, epochs=1, verbose=0, shuffle=False, callbacks=[timer]
            )
            step_s = statistics.median(np.diff(timer.ends)[settings.train_warmup :])
            records.append(
                make_record(
                    "training",
                    name,
                    dtype,
                    batch,
                    batch / step_s,
                    gflop_per_image=3 * gflops[name][0],
                    peak_gflop_per_s=peaks.get(peak_key(dtype)),
                    path="fit",
                    ms_per_image=1000 * step_s / batch,
                    params=gflops[name][1],
                    steps_timed=settings.train_steps,
                    note="median fit step after warm-up; GFLOP = 3 x forward",
                )
            )
            _progress(f"training {name} {dtype}: {batch / step_s:.1f} img/s")
            del model
    return records


# --- data ---------------------------------------------------------------------------------


def _run_script(script: str, args: list[str], timeout: float) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, str(HERE / script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    if proc.returncode:
        raise RuntimeError(f"{script} {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    return proc


def _tfds_dir(settings: Settings) -> Path:
    return Path(settings.work_dir) / f"prepared_{settings.prepare_patients}"


def bench_prepare(settings: Settings) -> list[dict]:
    """TFDS preparation time of ``camus/256`` (bench_prepare.py in a subprocess, kept)."""
    work = _tfds_dir(settings)
    work.mkdir(parents=True, exist_ok=True)
    out = work / "prepare.json"
    # bench_prepare writes (once) and reuses the synthetic CAMUS under --work-dir; share it
    # between runs through a symlink so that only the preparation is timed.
    synth_root = Path(settings.work_dir)
    name = f"synthetic_nifti_{settings.prepare_patients}_s1_seed0"
    if (synth_root / name / ".complete").exists() and not (work / name).exists():
        (work / name).symlink_to(synth_root / name)
    _run_script(
        "bench_prepare.py",
        [
            "--num-patients",
            str(settings.prepare_patients),
            "--configs",
            "256",
            "--forms",
            "extracted",
            "--work-dir",
            str(work),
            "--keep",
            "--json",
            str(out),
        ],
        timeout=3600,
    )
    result = json.loads(out.read_text())
    config = result["configs"][0]
    examples = sum(v for k, v in config["splits"].items() if k.startswith("group"))
    seconds = config["seconds"]
    extra = {}
    if result["num_patients"] != 500:
        extra["extrapolated_500_patients_s"] = seconds * 500 / result["num_patients"]
    return [
        make_record(
            "data",
            None,
            "uint8",
            None,
            examples / seconds,
            task="tfds_prepare",
            seconds=seconds,
            num_patients=result["num_patients"],
            examples=examples,
            megabytes=config["bytes"] / 1e6,
            synthetic_generate_s=result["generate_seconds"],
            note="camus/256 download_and_prepare from native-size synthetic NIfTI "
            "(images/s: annotated images of the 10 fold splits)",
            **extra,
        )
    ]


def bench_pipeline(settings: Settings) -> list[dict]:
    """make_dataset with augmentation: one pass without cache, one from the memory cache."""
    from keras_runet.data import Augmentation, dataset_size, load_builder, make_dataset

    builder = load_builder(_tfds_dir(settings) / "tfds_256", "256")
    splits = "+".join(sorted(k for k in builder.info.splits if k.startswith("group")))
    examples = dataset_size(builder.as_dataset(split=splits))
    batch = settings.pipeline_batch
    per_pass = math.ceil(examples / batch)
    records = []
    for cache in (False, True):
        ds = make_dataset(
            builder.as_dataset(split=splits),
            ["segmentation"],
            batch_size=batch,
            training=True,
            augmentation=Augmentation(),
            cache=cache,
        )
        it = iter(ds)
        if cache:  # the first pass fills the cache; time the second
            for _ in range(per_pass):
                next(it)
        start = time.perf_counter()
        images = 0
        for _ in range(per_pass):
            images += int(next(it)[0].shape[0])
        sec = time.perf_counter() - start
        records.append(
            make_record(
                "data",
                None,
                "float32",
                batch,
                images / sec,
                task="pipeline_cached" if cache else "pipeline_uncached",
                seconds=sec,
                images=images,
                note=(
                    "second pass, from the in-memory cache, + augmentation"
                    if cache
                    else "first pass: read TFRecords, decode, augment"
                ),
            )
        )
    return records


def bench_evaluation_stage(settings: Settings) -> list[dict]:
    """bench_evaluation.py in a subprocess (its worker processes fork a TF-free process)."""
    proc = _run_script(
        "bench_evaluation.py",
        [
            "--images",
            str(settings.eval_images),
            "--unique",
            str(settings.eval_unique),
            "--repeats",
            str(settings.eval_repeats),
            "--json",
        ],
        timeout=1800,
    )
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    return [
        make_record(
            "data",
            None,
            "uint8",
            None,
            result["images_per_s"],
            task="evaluation",
            seconds=result["median_s"],
            images=result["images"],
            workers=result["workers"],
            note=f"every metric of {result['images']} native-size "
            f"({result['shape'][0]}x{result['shape'][1]}) pairs, {result['workers']} workers",
        )
    ]


# --- report -------------------------------------------------------------------------------


def _find(records, **match):
    for r in records:
        if all(r.get(k) == v for k, v in match.items()):
            return r
    return None


def evaluate_targets(records: list[dict]) -> list[dict]:
    """Issue 9's targets (batch 8, ``predict`` path), each met / not met / not measured."""
    targets = []

    def ips(model, dtype, path="predict"):
        r = _find(records, stage="inference", model=model, dtype=dtype, batch=8, path=path)
        return None if r is None else r

    unet32, unet16 = ips("unet1", "float32"), ips("unet1", "mixed_bfloat16")
    runet32, runet16 = ips("runet", "float32"), ips("runet", "mixed_bfloat16")
    peer16 = max(
        (
            r
            for r in records
            if r["model"] == PEER_MODEL and r["dtype"] == "autocast_bfloat16" and r["batch"] == 8
        ),
        key=lambda r: r["images_per_s"],
        default=None,
    )

    def add(name, value, threshold, detail):
        met = None if value is None else value >= threshold
        targets.append(
            {"target": name, "value": value, "threshold": threshold, "met": met, "detail": detail}
        )

    add(
        "U-Net 1 float32 inference (batch 8) >= 65 % of fp32 matmul",
        None if unet32 is None else unet32["fraction_of_peak"],
        0.65,
        None
        if unet32 is None or unet32["fraction_of_peak"] is None
        else f"{unet32['gflop_per_s']:.0f} GFLOP/s of "
        f"{unet32['gflop_per_s'] / unet32['fraction_of_peak']:.0f}",
    )
    add(
        "mixed_bfloat16 >= 2x float32 (U-Net 1, batch 8)",
        None if not (unet32 and unet16) else unet16["images_per_s"] / unet32["images_per_s"],
        2.0,
        None
        if not (unet32 and unet16)
        else f"{unet16['images_per_s']:.1f} vs {unet32['images_per_s']:.1f} images/s",
    )
    for dtype, r, u in (("float32", runet32, unet32), ("mixed_bfloat16", runet16, unet16)):
        add(
            f"RU-Net >= 0.45x U-Net 1 images/s ({dtype}, batch 8)",
            None if not (r and u) else r["images_per_s"] / u["images_per_s"],
            0.45,
            None if not (r and u) else f"{r['images_per_s']:.1f} vs {u['images_per_s']:.1f}",
        )
    add(
        "our bf16 U-Net 1 >= torch bf16 BasicUNet images/s (batch 8)",
        None if not (unet16 and peer16) else unet16["images_per_s"] / peer16["images_per_s"],
        1.0,
        None
        if not (unet16 and peer16)
        else f"{unet16['images_per_s']:.1f} vs {peer16['images_per_s']:.1f} images/s "
        f"(the faster torch layout: {peer16['path']})",
    )
    return targets


def _fmt(value, spec=".1f", scale=1.0):
    return "–" if value is None else format(value * scale, spec)


def markdown_table(records: list[dict]) -> str:
    """The records as one Markdown table."""
    lines = [
        "| stage | what | model | dtype | batch | images/s | GFLOP/image | GFLOP/s | % of peak |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        what = r.get("path") or r.get("task") or ""
        if r["stage"] == "peak":
            what = r["model"]
        model = "–" if r["stage"] == "peak" or r["model"] is None else r["model"]
        if r.get("task") == "tfds_prepare":
            what += f" ({r['num_patients']} patients, {r['seconds']:.1f} s)"
        if r.get("task") == "evaluation":
            what += f" ({r['images']} pairs, {r['seconds']:.1f} s)"
        lines.append(
            f"| {r['stage']} | {what} | {model} | {r['dtype'] or '–'} | {r['batch'] or '–'} | "
            f"{_fmt(r['images_per_s'])} | {_fmt(r.get('gflop_per_image'), '.2f')} | "
            f"{_fmt(r['gflop_per_s'], '.0f')} | {_fmt(r['fraction_of_peak'], '.0f', 100)} |"
        )
    return "\n".join(lines)


def markdown_targets(targets: list[dict]) -> str:
    """The targets as a Markdown list."""
    lines = []
    for t in targets:
        status = {True: "**met**", False: "**not met**", None: "not measured"}[t["met"]]
        value = "–" if t["value"] is None else f"{t['value']:.2f} (threshold {t['threshold']})"
        detail = f"; {t['detail']}" if t["detail"] else ""
        lines.append(f"- {t['target']}: {status}: {value}{detail}")
    return "\n".join(lines)


def markdown_report(records: list[dict], run_line: str, failures=()) -> str:
    """Machine, run, table and targets as one Markdown section (what RESULTS.md keeps)."""
    parts = [
        "### Machine\n",
        machine_description(),
        f"\n### Run\n\n{run_line}\n",
        markdown_table(records),
        "\n### Targets (issue 9)\n",
        markdown_targets(evaluate_targets(records)),
    ]
    if failures:
        parts += ["\n### Failed stages\n", "\n".join(f"- {f}" for f in failures)]
    return "\n".join(parts) + "\n"


def machine_description() -> str:
    """CPU model, cores, AVX-512 / AMX flags, library versions, date, load average."""
    model, flags, info = platform.processor() or platform.machine(), set(), {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = (part.strip() for part in line.partition(":"))
            info.setdefault(key, value)
        model = info.get("model name", model)
        if "cpu family" in info:
            model += f" (family {info['cpu family']}, model {info.get('model', '?')})"
        flags = set(info.get("flags", "").split())
    simd = sorted(f for f in flags if f.startswith(("avx512", "amx")))
    versions = []
    for mod in ("tensorflow", "keras", "numpy", "torch", "monai"):
        with contextlib.suppress(ImportError):
            versions.append(f"{mod} {__import__(mod).__version__}")
    load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    amx = "yes" if any(f.startswith("amx") for f in simd) else "no"
    return (
        f"- CPU: {model}, {os.cpu_count()} cores; AMX: {amx}; "
        f"{' '.join(simd) or 'no AVX-512'}\n"
        f"- Software: {', '.join(versions)}, Python {platform.python_version()}\n"
        f"- Date: {now}; load average at the end {load}"
    )


# --- main ---------------------------------------------------------------------------------


def parse_only(text: str | None) -> list[str]:
    """``--only`` names -> the steps to run, in STEPS order (groups expand)."""
    if not text:
        return list(STEPS)
    wanted = set()
    for name in (t.strip() for t in text.split(",") if t.strip()):
        if name in GROUPS:
            wanted.update(GROUPS[name])
        elif name in STEPS:
            wanted.add(name)
        else:
            raise SystemExit(
                f"--only: unknown stage {name!r}; choose from {', '.join((*GROUPS, *STEPS))}"
            )
    return [s for s in STEPS if s in wanted]


def run(settings: Settings, steps: list[str], save=None, failures=None) -> list[dict]:
    """Run the selected steps; return every record.

    Args:
        settings: what to measure.
        steps: names from :data:`STEPS` (see :func:`parse_only`).
        save: called with the records so far after each stage (partial results survive).
        failures: a list that collects ``"stage: error"`` for stages that raised; None
            re-raises instead (a failed stage does not stop the others when given).
    """
    records: list[dict] = []
    needs_flops = {"predict", "savedmodel", "training"} & set(steps)
    t0 = time.perf_counter()

    def timed(name, fn):
        start = time.perf_counter()
        try:
            out = fn()
        except Exception as err:
            if failures is None:
                raise
            failures.append(f"{name}: {type(err).__name__}: {err}")
            _progress(f"stage {name} FAILED: {type(err).__name__}: {err}")
            return []
        records.extend(out)
        if save is not None:
            save(records)
        _progress(
            f"stage {name} done in {time.perf_counter() - start:.0f} s "
            f"({time.perf_counter() - t0:.0f} s total)"
        )
        return out

    peaks = {}
    if "peak" in steps or needs_flops or "peer" in steps:
        peaks = peaks_from(timed("peak", lambda: bench_peak(settings)))
    gflops = {}
    if needs_flops:
        models = set(settings.models) | set(settings.train_models)
        gflops = {m: model_flops(m, cross_check=True) for m in MODELS if m in models}
        _progress("flops: " + ", ".join(f"{m} {g:.2f} GFLOP" for m, (g, _) in gflops.items()))
    if "predict" in steps or "savedmodel" in steps:
        timed(
            "inference (predict/savedmodel)",
            lambda: bench_predict(
                settings,
                peaks,
                gflops,
                savedmodel="savedmodel" in steps,
                predict="predict" in steps,
            ),
        )
    if "peer" in steps:
        if peer_available():
            timed("peer", lambda: bench_peer(settings, peaks))
        else:
            _progress("peer skipped: torch and monai are not installed (pip install .[peer])")
    if "training" in steps:
        timed("training", lambda: bench_training(settings, peaks, gflops))
    if "prepare" in steps:
        timed("data: tfds prepare", lambda: bench_prepare(settings))
    if "pipeline" in steps:
        if not (_tfds_dir(settings) / "tfds_256").exists():
            timed("data: tfds prepare", lambda: bench_prepare(settings))
        timed("data: tf.data pipeline", lambda: bench_pipeline(settings))
    if "evaluation" in steps:
        timed("data: evaluation", lambda: bench_evaluation_stage(settings))
    return records


def main(argv=None) -> int:
    """Command line: see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a subset, few repeats (< 2 min)")
    parser.add_argument("--only", help="comma-separated stages: " + ", ".join((*GROUPS, *STEPS)))
    parser.add_argument("--json", help="write the list of records to this file")
    parser.add_argument("--markdown", help="also write the machine, table and targets here")
    parser.add_argument("--repeats", type=int, help="timed repeats per inference measurement")
    parser.add_argument("--matmul-size", type=int, help="N of the N x N peak matmul (4096)")
    parser.add_argument("--prepare-patients", type=int, help="patients for the TFDS preparation")
    parser.add_argument("--work-dir", help="synthetic CAMUS and prepared TFDS data (reused)")
    args = parser.parse_args(argv)
    settings = Settings.for_run(
        args.quick,
        args.repeats,
        matmul_size=args.matmul_size,
        prepare_patients=args.prepare_patients,
        work_dir=args.work_dir,
    )
    steps = parse_only(args.only)
    kind = "--quick" if args.quick else "full"
    _progress(f"run.py {kind}: {', '.join(steps)}")
    load_before = " ".join(f"{v:.2f}" for v in os.getloadavg())

    def save(records):
        if args.json:
            from tfds_camus.atomic import write_json

            write_json(args.json, records)

    failures: list[str] = []
    start = time.perf_counter()
    records = run(settings, steps, save=save, failures=failures)
    total = time.perf_counter() - start
    save(records)
    report = markdown_report(
        records,
        f"{kind}, {total / 60:.1f} min; stages {', '.join(steps)}; inference repeats "
        f"{settings.repeats} (batch >= 32: {repeats_for(settings, 32)[0]}), median reported; "
        f"load average before the run {load_before}",
        failures,
    )
    print(report)
    if args.markdown:
        Path(args.markdown).write_text(report)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
