"""The benchmark scripts' counting and record format (no timing is asserted anywhere)."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import importlib.util  # noqa: E402

import flops  # noqa: E402

_spec = importlib.util.spec_from_file_location("runet_benchmarks_run", BENCHMARKS / "run.py")
bench_run = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = bench_run  # dataclasses look their module up
_spec.loader.exec_module(bench_run)

from keras_runet import build_model  # noqa: E402


@pytest.fixture(scope="module")
def counts():
    return {
        name: flops.keras_flops_per_image(build_model(name, input_shape=(256, 256, 1)))
        for name in ("unet1", "runet", "shg")
    }


def test_unet1_flops_match_the_reference(counts):
    # docs/design.md: 8.0 GFLOP per 256 x 256 image (2 x multiply-adds).
    assert counts["unet1"] == pytest.approx(8.0e9, rel=0.03)


def test_runet_is_two_unet1s_and_shg_three_light_ones(counts):
    # The attention adds no convolution worth counting; SHG's light U-Nets are narrower.
    assert counts["runet"] == pytest.approx(2 * counts["unet1"], rel=0.03)
    assert 2 * counts["unet1"] < counts["shg"] < 3 * counts["unet1"]


def test_counted_flops_agree_with_tensorflows_profiler(counts):
    model = build_model("unet1", input_shape=(256, 256, 1))
    profiled = flops.tf_profiler_flops_per_image(model, (256, 256, 1))
    assert profiled == pytest.approx(counts["unet1"], rel=0.01)


def test_flop_count_scales_with_the_image_and_needs_a_fixed_size():
    small = flops.keras_flops_per_image(build_model("unet1", input_shape=(128, 128, 1)))
    big = flops.keras_flops_per_image(build_model("unet1", input_shape=(256, 256, 1)))
    assert big == 4 * small
    with pytest.raises(ValueError, match="fixed input size"):
        flops.keras_flops_per_image(build_model("unet1", input_shape=(None, None, 1)))


def test_torch_counter_on_known_layers():
    torch = pytest.importorskip("torch")
    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 8, 3, padding=1),  # 2 * 16*16 * 9 * 1 * 8
        torch.nn.ConvTranspose2d(8, 4, 2, stride=2),  # 2 * 16*16 (input) * 4 * 8 * 4
        torch.nn.Flatten(),
        torch.nn.Linear(4 * 32 * 32, 10),  # 2 * 4096 * 10
    )
    expected = 2 * 256 * 9 * 8 + 2 * 256 * 4 * 8 * 4 + 2 * 4096 * 10
    assert flops.torch_flops_per_image(net, (1, 16, 16)) == expected


def test_peer_is_about_unet1s_size():
    pytest.importorskip("monai")
    net = bench_run.build_peer()
    params = sum(p.numel() for p in net.parameters())
    assert params == pytest.approx(1_976_644, rel=0.05)
    assert flops.torch_flops_per_image(net, (1, 256, 256)) > 4e9


def test_record_has_the_required_keys_and_derived_throughput():
    rec = bench_run.make_record(
        "inference", "unet1", "float32", 8, 10.0, gflop_per_image=8.0, peak_gflop_per_s=160.0
    )
    assert list(rec)[: len(bench_run.REQUIRED_KEYS)] == list(bench_run.REQUIRED_KEYS)
    assert rec["gflop_per_s"] == pytest.approx(80.0)
    assert rec["fraction_of_peak"] == pytest.approx(0.5)
    data = bench_run.make_record("data", None, "uint8", None, 50.0, task="evaluation")
    assert data["gflop_per_s"] is None and data["fraction_of_peak"] is None


def test_only_expands_groups_and_rejects_unknown_names():
    assert bench_run.parse_only("inference") == ["predict", "savedmodel", "peer"]
    assert bench_run.parse_only("data,peak") == ["peak", "prepare", "pipeline", "evaluation"]
    assert bench_run.parse_only(None) == list(bench_run.STEPS)
    with pytest.raises(SystemExit, match="unknown stage"):
        bench_run.parse_only("nonsense")


def test_tiny_only_run_writes_records_with_the_required_keys(tmp_path):
    # --only peak through main(), at a tiny matmul size: the JSON is a list of records.
    out = tmp_path / "r.json"
    argv = ["--only", "peak", "--json", str(out), "--matmul-size", "64"]
    assert bench_run.main(argv) == 0
    records = json.loads(out.read_text())
    assert {r["dtype"] for r in records} == {"float32", "bfloat16"}
    # One inference measurement (U-Net 1, batch 1, one repeat) through the same code.
    settings = bench_run.Settings(
        models=("unet1",), dtypes=("float32",), batches=(1,), repeats=1, warmup=1
    )
    peaks = bench_run.peaks_from(records)
    gflops = {"unet1": bench_run.model_flops("unet1")}
    records += bench_run.bench_predict(settings, peaks, gflops, savedmodel=False)
    for rec in records:
        assert set(bench_run.REQUIRED_KEYS) <= set(rec)
    inference = records[-1]
    assert (inference["stage"], inference["model"], inference["batch"]) == ("inference", "unet1", 1)
    assert inference["images_per_s"] > 0 and inference["fraction_of_peak"] > 0
    json.dumps(records)  # serialisable
    table = bench_run.markdown_table(records)
    assert table.count("\n") == len(records) + 1


def test_targets_are_reported_met_or_not():
    def rec(model, dtype, ips, fraction=None, path="predict"):
        r = bench_run.make_record("inference", model, dtype, 8, ips, path=path)
        r["fraction_of_peak"] = fraction
        r["gflop_per_s"] = None if fraction is None else 100.0 * fraction
        return r

    records = [
        rec("unet1", "float32", 10.0, fraction=0.7),
        rec("unet1", "mixed_bfloat16", 19.0),
        rec("runet", "float32", 5.0),
        rec("monai_basicunet", "autocast_bfloat16", 15.0, path="torch"),
        rec("monai_basicunet", "autocast_bfloat16", 20.0, path="torch_channels_last"),
    ]
    targets = {t["target"]: t for t in bench_run.evaluate_targets(records)}
    met = [t["met"] for t in targets.values()]
    assert met == [True, False, True, None, False]  # RU-Net bf16 not measured
    assert "torch_channels_last" in bench_run.markdown_targets(list(targets.values()))


def test_gpu_script_imports_without_tensorflow():
    # The GPU machine's Python has jax + keras + numpy only: gpu_jax.py (and keras_runet's
    # __init__) must not import TensorFlow, TFDS, SimpleITK or keras_runet.data (the
    # standard-library parts of tfds_camus, e.g. its vocabulary, are allowed). (Building a model on
    # JAX first compiles every initializer, ~10 s: that is left to the slow test below.)
    pytest.importorskip("jax")
    code = textwrap.dedent(
        f"""
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("tensorflow", "tensorflow_datasets", "SimpleITK"):
                    raise ImportError("blocked " + name)
        sys.meta_path.insert(0, Block())
        sys.path.insert(0, {str(BENCHMARKS)!r})
        import gpu_jax, keras, keras_runet
        assert keras.backend.backend() == "jax"
        assert callable(keras_runet.build_model) and callable(gpu_jax.run)
        assert "keras_runet.data" not in sys.modules
        print("ok")
        """
    )
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}
    env["JAX_THREEFRY_PARTITIONABLE"] = "0"  # its initializers compile 10x faster on CPU
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().endswith("ok")


@pytest.mark.slow
def test_gpu_script_runs_end_to_end_on_cpu_at_tiny_size(tmp_path):
    pytest.importorskip("jax")
    out = tmp_path / "gpu.json"
    args = "--models unet1 --size 32 --width 0.125 --batches 1 --train-batch 1 --steps 1"
    args += f" --repeats 1 --matmul-size 64 --json {out}"
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}
    env["JAX_THREEFRY_PARTITIONABLE"] = "0"  # its initializers compile 10x faster on CPU
    proc = subprocess.run(
        [sys.executable, str(BENCHMARKS / "gpu_jax.py"), *args.split()],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = json.loads(out.read_text())
    assert {r["stage"] for r in records} == {"peak", "inference", "training"}
    for rec in records:
        assert set(bench_run.REQUIRED_KEYS) <= set(rec)


def test_a_failing_stage_is_reported_and_the_others_still_run(monkeypatch):
    def broken(settings):
        raise RuntimeError("no disk")

    monkeypatch.setattr(bench_run, "bench_evaluation_stage", broken)
    saved, failures = [], []
    records = bench_run.run(
        bench_run.Settings(), ["evaluation"], save=saved.append, failures=failures
    )
    assert records == [] and saved == []
    assert failures == ["data: evaluation: RuntimeError: no disk"]
    report = bench_run.markdown_report(records, "test", failures)
    assert "Failed stages" in report and "no disk" in report


def test_dice_background_script_reports_every_model_and_choice(capsys):
    """benchmarks/dice_background.py at epoch 0: untrained models, every row printed."""
    import dice_background

    dice_background.main(["--epochs", "0"])
    out = capsys.readouterr().out
    for name in ("unet1", "runet"):
        for flag in ("False", "True"):
            assert f"{name} include_background={flag}" in out
    # Only RU-Net has a ROI mask; untrained, its first U-Net predicts foreground everywhere
    # (softmax near uniform: 0.75 > shift), so the mask keeps the whole image.
    roi_lines = [line for line in out.splitlines() if "roi" in line and "epoch 0" in line]
    assert len(roi_lines) == 2 and all(line.endswith("roi 1.00") for line in roi_lines)
