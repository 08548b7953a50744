"""Export to a SavedModel for TF Serving: layout, atomicity, safe mode, and the signatures
checked the way the server uses them (a fresh process without keras_runet, saved_model_cli).
"""

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import keras_runet
from keras_runet import export as ex
from keras_runet.cli import main as cli_main

SIZE = 64


@pytest.fixture(scope="module")
def runet_export(tmp_path_factory):
    """A tiny RU-Net saved as .keras and exported as version 1."""
    tmp = tmp_path_factory.mktemp("export")
    keras.utils.set_random_seed(1)
    model = keras_runet.build_model(
        "runet", input_shape=(SIZE, SIZE, 1), width=0.25, dil=5, shift=0.4
    )
    model_path = tmp / "runet.keras"
    model.save(model_path)
    version_dir = ex.export_model(model_path, tmp / "serving", training_data="synthetic test")
    return model, model_path, version_dir


def _margin_ok(probs, labels, expected_labels, eps=1e-4):
    """Labels agree wherever the top two probabilities are not a float-tolerance tie."""
    top2 = np.sort(probs, axis=-1)[..., -2:]
    clear = (top2[..., 1] - top2[..., 0]) > eps
    return np.array_equal(labels[clear], expected_labels[clear])


def _reference(model, x):
    """What serving_default must compute, in eager TF: resize, model, resize back, argmax."""
    h, w = x.shape[1:3]
    out = model(tf.image.resize(x, (SIZE, SIZE), "bilinear"), training=False)
    probs = tf.image.resize(out["segmentation"], (h, w), "bilinear").numpy()
    coarse = tf.image.resize(out["coarse"], (h, w), "bilinear").numpy()
    return probs, coarse


def test_layout_metadata_and_keras_copy(runet_export):
    model, model_path, version_dir = runet_export
    assert version_dir.name == "1"
    assert (version_dir / "saved_model.pb").is_file()
    assert (version_dir / "variables").is_dir()
    assert ex.stale_temporaries(version_dir.parent) == []
    # Each weight is stored once: variables/ is about the size of the float32 parameters.
    var_bytes = sum(p.stat().st_size for p in (version_dir / "variables").iterdir())
    param_bytes = 4 * model.count_params()
    assert param_bytes <= var_bytes < 1.2 * param_bytes + 50_000, (var_bytes, param_bytes)
    meta = json.loads((version_dir / "assets.extra" / ex.METADATA_NAME).read_text())
    assert meta["model_kind"] == "runet"
    assert meta["dil"] == 5 and meta["shift"] == pytest.approx(0.4)
    assert meta["input_size"] == [SIZE, SIZE]
    assert meta["label_names"] == ["background", "lv_cavity", "myocardium", "left_atrium"]
    assert meta["keras_runet_version"] == keras_runet.__version__
    assert meta["training_data"] == "synthetic test"
    assert meta["version"] == 1
    assert set(meta["signatures"]) == {"serving_default", "serving_bytes"}
    copied = version_dir / "assets.extra" / ex.KERAS_NAME
    assert copied.read_bytes() == model_path.read_bytes()


def test_fresh_process_without_keras_runet_matches_keras(runet_export, tmp_path):
    model, _, version_dir = runet_export
    rng = np.random.default_rng(0)
    x64 = rng.random((2, SIZE, SIZE, 1), dtype=np.float32)
    x_odd = rng.random((1, 83, 101, 1), dtype=np.float32)  # not the model's size, not square
    png_pixels = (rng.random((70, 90)) * 255).astype(np.uint8)
    Image.fromarray(png_pixels).save(tmp_path / "img.png")
    np.savez(tmp_path / "inputs.npz", x64=x64, x_odd=x_odd)
    script = textwrap.dedent(
        """
        import sys
        import numpy as np
        import tensorflow as tf
        base, work = sys.argv[1], sys.argv[2]
        loaded = tf.saved_model.load(base)
        assert "keras_runet" not in sys.modules, "the SavedModel must not need keras_runet"
        inp = np.load(work + "/inputs.npz")
        f = loaded.signatures["serving_default"]
        res = {}
        for key in ("x64", "x_odd"):
            for name, v in f(image=tf.constant(inp[key])).items():
                res[key + "_" + name] = v.numpy()
        png = open(work + "/img.png", "rb").read()
        out = loaded.signatures["serving_bytes"](image_bytes=tf.constant([png, png]))
        for name, v in out.items():
            res["bytes_" + name] = v.numpy()
        bad = inp["x64"][:1].copy()
        bad[0, 3, 4, 0] = np.nan
        try:
            f(image=tf.constant(bad))
            res["nan_error"] = np.array("")
        except tf.errors.InvalidArgumentError as err:
            res["nan_error"] = np.array(err.message)
        wrong = {"empty": np.zeros((0, 64, 64, 1), np.float32),
                 "uint8_range": (inp["x64"][:1] * 255.0).astype(np.float32)}
        for key, value in wrong.items():
            try:
                f(image=tf.constant(value))
                res[key + "_error"] = np.array("")
            except tf.errors.InvalidArgumentError as err:
                res[key + "_error"] = np.array(err.message)
        res["signatures"] = np.array(sorted(loaded.signatures))
        np.savez(work + "/outputs.npz", **res)
        """
    )
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run(
        [sys.executable, "-c", script, str(version_dir), str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = dict(np.load(tmp_path / "outputs.npz"))
    assert sorted(out["signatures"]) == ["serving_bytes", "serving_default"]
    # Requests that would answer nonsense are refused, saying why.
    assert "non-empty batch" in str(out["empty_error"])
    assert "divide 8-bit pixels by 255" in str(out["uint8_range_error"])

    # Same size as the model: the serving graph is the Keras model.
    keras_out = model.predict_on_batch(x64)
    np.testing.assert_allclose(out["x64_probabilities"], keras_out["segmentation"], atol=1e-5)
    assert out["x64_segmentation"].shape == (2, SIZE, SIZE)
    assert out["x64_segmentation"].dtype == np.int32
    assert _margin_ok(
        keras_out["segmentation"], out["x64_segmentation"], keras_out["segmentation"].argmax(-1)
    )
    assert _margin_ok(keras_out["coarse"], out["x64_coarse"], keras_out["coarse"].argmax(-1))

    # Another size: resized in the graph, answered at the input's size.
    probs, coarse = _reference(model, x_odd)
    assert out["x_odd_probabilities"].shape == (1, 83, 101, 4)
    assert out["x_odd_segmentation"].shape == (1, 83, 101)
    np.testing.assert_allclose(out["x_odd_probabilities"], probs, atol=1e-5)
    assert _margin_ok(probs, out["x_odd_segmentation"], probs.argmax(-1))
    assert _margin_ok(coarse, out["x_odd_coarse"], coarse.argmax(-1))

    # Encoded PNG bytes: decoded to [0, 1] grayscale, then the same graph.
    img = png_pixels[None, ..., None].astype(np.float32) / 255.0
    probs_b, _ = _reference(model, np.concatenate([img, img]))
    assert out["bytes_probabilities"].shape == (2, 70, 90, 4)
    np.testing.assert_allclose(out["bytes_probabilities"], probs_b, atol=1e-5)

    assert "NaN" in str(out["nan_error"])


def test_saved_model_cli_show_and_run(runet_export, tmp_path):
    model, _, version_dir = runet_export
    x = np.random.default_rng(1).random((1, 48, 72, 1), dtype=np.float32)
    np.save(tmp_path / "x.npy", x)
    cli = Path(sys.executable).with_name("saved_model_cli")
    cli = str(cli) if cli.exists() else "saved_model_cli"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    run_cmd = [
        cli,
        "run",
        "--dir",
        str(version_dir),
        "--tag_set",
        "serve",
        "--signature_def",
        "serving_default",
        "--inputs",
        f"image={tmp_path / 'x.npy'}",
        "--outdir",
        str(tmp_path / "cli_out"),
    ]
    # Both commands at once: each spends seconds importing TensorFlow.
    procs = {
        name: subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
        for name, cmd in (
            ("show", [cli, "show", "--dir", str(version_dir), "--all"]),
            ("run", run_cmd),
        )
    }
    results = {name: (p, *p.communicate(timeout=300)) for name, p in procs.items()}
    show, listing, show_err = results["show"]
    assert show.returncode == 0, show_err[-3000:]
    assert "signature_def['serving_default']" in listing
    assert "signature_def['serving_bytes']" in listing
    assert "inputs['image'] tensor_info:" in listing
    assert "inputs['image_bytes'] tensor_info:" in listing
    for name in ("segmentation", "probabilities", "coarse"):
        assert f"outputs['{name}'] tensor_info:" in listing
    assert "shape: (-1, -1, -1, 1)" in listing  # image: any batch, height and width
    assert "dtype: DT_STRING" in listing and "dtype: DT_INT32" in listing

    run, _, run_err = results["run"]
    assert run.returncode == 0, run_err[-3000:]
    seg = np.load(tmp_path / "cli_out" / "segmentation.npy")
    probs = np.load(tmp_path / "cli_out" / "probabilities.npy")
    assert seg.shape == (1, 48, 72) and probs.shape == (1, 48, 72, 4)
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-4)
    expected, _ = _reference(model, x)
    np.testing.assert_allclose(probs, expected, atol=1e-5)


def test_interrupted_export_leaves_no_version(runet_export, tmp_path, monkeypatch):
    model, _, _ = runet_export
    base = tmp_path / "serving"
    real_write = ex._write_savedmodel

    def write_then_fail(m, path):
        real_write(m, path)  # a complete SavedModel in the temporary folder ...
        raise KeyboardInterrupt  # ... and the export stops before the rename

    monkeypatch.setattr(ex, "_write_savedmodel", write_then_fail)
    with pytest.raises(KeyboardInterrupt):
        ex.export_model(model, base, version=4)
    assert not (base / "4").exists()
    assert list(base.iterdir()) == []

    def half_written(m, path):
        Path(path).mkdir(parents=True)
        (Path(path) / "saved_model.pb").write_bytes(b"\x00" * 10)
        raise OSError("disk full")

    monkeypatch.setattr(ex, "_write_savedmodel", half_written)
    with pytest.raises(OSError, match="disk full"):
        ex.export_model(model, base, version=4)
    assert list(base.iterdir()) == []


def test_versions_are_not_overwritten_unless_asked(tmp_path):
    model = keras_runet.build_model("unet1", input_shape=(32, 32, 1), width=0.125)
    base = tmp_path / "serving"
    assert ex.export_model(model, base).name == "1"
    assert ex.export_model(model, base).name == "2"
    marker = base / "2" / "assets.extra" / "marker"
    marker.write_text("old")
    with pytest.raises(ex.ExportError, match="version 2 already exists"):
        ex.export_model(model, base, version=2)
    assert marker.exists()
    ex.export_model(model, base, version=2, overwrite=True)
    assert not marker.exists() and (base / "2" / "saved_model.pb").is_file()
    assert sorted(p.name for p in base.iterdir()) == ["1", "2"]
    with pytest.raises(ex.ExportError, match="positive integer"):
        ex.export_model(model, base, version=0)
    meta = json.loads((base / "1" / "assets.extra" / ex.METADATA_NAME).read_text())
    assert meta["model_kind"] == "unet1" and meta["dil"] is None
    loaded = tf.saved_model.load(str(base / "1"))
    outs = loaded.signatures["serving_default"].structured_outputs
    assert sorted(outs) == ["probabilities", "segmentation"]  # no coarse for U-Net 1


def test_safe_mode_refuses_code_in_model_file(tmp_path):
    inp = keras.Input((32, 32, 1), name="image")
    x = keras.layers.Lambda(lambda t: t * 2.0)(inp)
    seg = keras.layers.Conv2D(4, 1, activation="softmax", name="segmentation")(x)
    path = tmp_path / "lambda.keras"
    keras.Model(inp, {"segmentation": seg}).save(path)
    with pytest.raises(ex.ExportError, match="safe mode"):
        ex.load_model(path)
    with pytest.raises(ex.ExportError, match="does not exist"):
        ex.load_model(tmp_path / "missing.keras")
    (tmp_path / "junk.keras").write_text("not a zip")
    with pytest.raises(ex.ExportError, match="junk.keras"):
        ex.load_model(tmp_path / "junk.keras")


def test_weights_checkpoint_needs_and_uses_the_architecture(tmp_path):
    model = keras_runet.build_model("runet", input_shape=(32, 32, 1), width=0.125, dil=3)
    path = tmp_path / "best.weights.h5"
    model.save_weights(path)
    with pytest.raises(ex.ExportError, match="weights only"):
        ex.load_model(path)
    again = ex.load_model(path, model_kind="runet", input_shape=(32, 32, 1), width=0.125, dil=3)
    x = np.random.default_rng(0).random((1, 32, 32, 1), dtype=np.float32)
    np.testing.assert_allclose(
        again.predict_on_batch(x)["segmentation"], model.predict_on_batch(x)["segmentation"]
    )


def test_weights_of_another_architecture_are_one_line_not_a_silent_export(tmp_path, capsys):
    runet = keras_runet.build_model("runet", input_shape=(32, 32, 1), width=0.125, dil=3)
    path = tmp_path / "runet.weights.h5"
    runet.save_weights(path)
    with pytest.raises(ex.ExportError, match="does not hold the weights of this unet1"):
        ex.load_model(path, model_kind="unet1", input_shape=(32, 32, 1), width=0.125)
    with pytest.raises(ex.ExportError, match="differ in shape"):
        ex.load_model(path, model_kind="runet", input_shape=(32, 32, 1), width=0.25, dil=3)
    argv = ["export", str(path), str(tmp_path / "serving"), "--model-kind", "unet1"]
    assert cli_main([*argv, "--width", "0.125", "--image-size", "32x32"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and len(err) < 600 and "--model-kind" in err
    assert not (tmp_path / "serving").exists()


def test_cli_export(tmp_path, capsys):
    model = keras_runet.build_model("unet1", input_shape=(32, 32, 1), width=0.125)
    model_path = tmp_path / "m.keras"
    model.save(model_path)
    base = tmp_path / "serving"
    (base / ".tmp-2-deadbeef").mkdir(parents=True)  # left by a killed export
    assert cli_main(["export", str(model_path), str(base), "--version", "3"]) == 0
    out = capsys.readouterr().out
    assert str(base / "3") in out and "serving_default" in out
    if importlib.util.find_spec("tensorflow_serving") is not None:  # the test extra has it
        assert "warmup: assets.extra/tf_serving_warmup_requests" in out
        assert (base / "3" / "assets.extra" / ex.WARMUP_NAME).is_file()
    assert ".tmp-2-deadbeef is left from a killed export" in out
    assert cli_main(["export", str(model_path), str(base), "--version", "3"]) == 2
    err = capsys.readouterr().err
    assert "already exists" in err and len(err.strip().splitlines()) == 1
    assert cli_main(["export", str(tmp_path / "nope.keras"), str(base)]) == 2
    assert "nope.keras" in capsys.readouterr().err


def test_shg_exports_its_final_segmentation(tmp_path):
    model = keras_runet.build_model("shg", input_shape=(32, 32, 1), width=0.125)
    version_dir = ex.export_model(model, tmp_path / "serving")
    meta = json.loads((version_dir / "assets.extra" / ex.METADATA_NAME).read_text())
    assert meta["model_kind"] == "shg"
    assert meta["model_outputs"] == ["segmentation", "stage1", "stage2"]
    sig = tf.saved_model.load(str(version_dir)).signatures["serving_default"]
    x = np.random.default_rng(0).random((1, 32, 32, 1), dtype=np.float32)
    out = sig(image=tf.constant(x))
    assert sorted(out) == ["probabilities", "segmentation"]
    np.testing.assert_allclose(
        out["probabilities"].numpy(), model.predict_on_batch(x)["segmentation"], atol=1e-5
    )
