"""Keras 3 on JAX end to end: train (one device and DataParallel over two), a tuning trial,
export, predict (the JAX demo, which cross-validates and evaluates, runs in .ci/run).

The JAX side runs in one subprocess (Keras fixes its backend at import; XLA_FLAGS gives the
CPU two devices). Its SavedModel is then loaded here, on TensorFlow, next to the TensorFlow
export of the same ``.keras`` file: the same signatures, inputs and outputs, and the same
numbers (the model's forward pass is jax2tf's XlaCallModule op there, TensorFlow's kernels
here). ``runet predict`` on both backends writes the same label map.
"""

import importlib.util
import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import SimpleITK as sitk
import tensorflow as tf

import keras_runet
from keras_runet import export as ex
from keras_runet.cli import main as cli_main

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("jax") is None, reason="jax is not installed"
)

SIZE = 64

JAX_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    import keras
    assert keras.backend.backend() == "jax", keras.backend.backend()
    import jax
    from keras_runet import data, export, training
    from keras_runet.cli import main
    data_dir, work, model_file, inputs = sys.argv[1], Path(sys.argv[2]), sys.argv[3], sys.argv[4]
    builder = data.load_builder(data_dir)
    out = {"devices": jax.device_count()}
    for name, distribute in (("single", None), ("mirrored", "mirrored")):
        config = training.TrainConfig(model="unet1", epochs=1, width=0.125, image_size=(32, 32),
                                      batch_size=8, patience=0, augment=False,
                                      distribute=distribute)
        strategy = training.get_strategy(distribute)
        result = training.train(config, builder.as_dataset(split="group1+group3"),
                                builder.as_dataset(split="group2"), work / name, verbose=0)
        out[name] = {"replicas": strategy.num_replicas_in_sync, "epochs": result.epochs_run,
                     "loss": result.history[-1]["loss"], "score": result.best_score}
        with strategy.scope():  # what train() builds under it: weights on every device
            probe = training.build_and_compile(config)
        out[name]["weight_devices"] = len(probe.weights[0].value.sharding.device_set)
    from keras_runet import tuning
    from keras_runet.cross_validation import fold_split_strings
    splits = fold_split_strings(builder, 1)
    tiny = training.TrainConfig(width=0.125, image_size=(32, 32), epochs=1, batch_size=8,
                                patience=0, seed=1)
    search = tuning.run_search(work / "study", builder.as_dataset(split=splits["train"]),
                               builder.as_dataset(split=splits["validation"]),
                               base_config=tiny, oracle="random", objective="outliers",
                               max_trials=1, figure=False)
    out["tune"] = [r["status"] for r in search.rows]
    import contextlib, io
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(["train", "--data-dir", data_dir, "--model", "unet1", "--out",
                     str(work / "multiworker"), "--distribute", "multiworker"])
    run_dir = work / "multiworker"
    written = sorted(p.name for p in run_dir.iterdir()) if run_dir.exists() else []
    out["multiworker"] = [code, err.getvalue(), written]
    assert main(["export", model_file, str(work / "export")]) == 0
    assert main(["predict", model_file, inputs, "--out", str(work / "pred"),
                 "--no-overlays"]) == 0
    print(json.dumps(out))
    """
)


def _tree_bytes(folder):
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _clear(probs, eps=1e-4):
    top2 = np.sort(probs, axis=-1)[..., -2:]
    return (top2[..., 1] - top2[..., 0]) > eps


@pytest.fixture(scope="module")
def both_backends(camus_tiny, tmp_path_factory):
    """One RU-Net .keras file, exported and predicted on TensorFlow (here) and JAX."""
    work = tmp_path_factory.mktemp("jax")
    keras.utils.set_random_seed(3)
    model = keras_runet.build_model(
        "runet", input_shape=(SIZE, SIZE, 1), width=0.25, dil=5, shift=0.4
    )
    model_file = work / "runet.keras"
    model.save(model_file)
    (work / "inputs").mkdir()
    image = sitk.ReadImage(str(camus_tiny["root"].rglob("*_4CH_ED.nii.gz").__next__()))
    sitk.WriteImage(image, str(work / "inputs" / "a_4CH_ED.nii.gz"))
    script = work / "jax_side.py"
    script.write_text(JAX_SCRIPT)
    env = dict(
        os.environ,
        KERAS_BACKEND="jax",
        JAX_PLATFORMS="cpu",
        XLA_FLAGS="--xla_force_host_platform_device_count=2",
        TF_CPP_MIN_LOG_LEVEL="3",
        # XLA:CPU compiles the partitionable threefry of each weight shape's initializer for
        # 1-6 s (a tiny RU-Net builds in ~22 s; docs/design.md); the other form in ~0.3 s.
        JAX_THREEFRY_PARTITIONABLE="0",
    )
    proc = subprocess.run(
        [sys.executable, str(script), str(camus_tiny["data_dir"]), str(work / "jax"),
         str(model_file), str(work / "inputs")],
        capture_output=True, text=True, env=env, timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    jax_side = json.loads(proc.stdout.strip().splitlines()[-1])
    tf_version = ex.export_model(model_file, work / "tf" / "export")
    assert cli_main(
        ["predict", str(model_file), str(work / "inputs"), "--out", str(work / "tf" / "pred"),
         "--no-overlays"]
    ) == 0  # fmt: skip
    return {
        "work": work,
        "jax": jax_side,
        "tf_version": tf_version,
        "jax_version": work / "jax" / "export" / "1",
    }


def test_training_on_jax_one_device_and_data_parallel_over_two(both_backends):
    jax_side = both_backends["jax"]
    assert jax_side["devices"] == 2
    single, mirrored = jax_side["single"], jax_side["mirrored"]
    assert (single["replicas"], mirrored["replicas"]) == (1, 2)
    assert (single["weight_devices"], mirrored["weight_devices"]) == (1, 2)
    assert single["epochs"] == mirrored["epochs"] == 1
    # The same global batches from the same seeded weights: the batch split over two
    # devices changes the loss only by float reordering.
    assert np.isfinite(single["loss"])
    assert mirrored["loss"] == pytest.approx(single["loss"], rel=1e-4)
    # The command line refuses multiworker on JAX in one line, before anything is written.
    code, stderr, written = jax_side["multiworker"]
    assert code == 2 and written == []
    assert len(stderr.strip().splitlines()) == 1 and "Traceback" not in stderr
    assert "multiworker" in stderr and "KERAS_BACKEND=tensorflow" in stderr


def test_a_tuning_trial_completes_on_jax(both_backends):
    assert both_backends["jax"]["tune"] == ["COMPLETED"]


def test_jax_export_has_the_signatures_of_the_tensorflow_one(both_backends):
    tf_dir, jax_dir = both_backends["tf_version"], both_backends["jax_version"]
    tf_model, jax_model = tf.saved_model.load(str(tf_dir)), tf.saved_model.load(str(jax_dir))
    assert sorted(jax_model.signatures) == sorted(tf_model.signatures)
    assert sorted(tf_model.signatures) == [ex.BYTES_SIGNATURE, ex.DEFAULT_SIGNATURE]
    for name, signature in tf_model.signatures.items():
        other = jax_model.signatures[name]
        assert other.structured_input_signature == signature.structured_input_signature, name
        outputs = {k: (v.dtype, v.shape.rank) for k, v in signature.structured_outputs.items()}
        assert {
            k: (v.dtype, v.shape.rank) for k, v in other.structured_outputs.items()
        } == outputs  # fmt: skip
    # Keras's JAX path: the model is jax2tf's StableHLO in one XlaCallModule op.
    assert b"XlaCallModule" in (jax_dir / "saved_model.pb").read_bytes()
    assert b"XlaCallModule" not in (tf_dir / "saved_model.pb").read_bytes()
    # Each weight stored once on both (tracking the model twice would double variables/).
    tf_bytes, jax_bytes = _tree_bytes(tf_dir / "variables"), _tree_bytes(jax_dir / "variables")
    assert 0.8 < jax_bytes / tf_bytes < 1.25, (jax_bytes, tf_bytes)
    meta = {
        d: json.loads((d / ex.EXTRA_DIR / ex.METADATA_NAME).read_text()) for d in (tf_dir, jax_dir)
    }
    assert (meta[tf_dir]["keras_backend"], meta[jax_dir]["keras_backend"]) == ("tensorflow", "jax")
    for key in ("model_kind", "dil", "shift", "input_size", "signatures", "parameters"):
        assert meta[jax_dir][key] == meta[tf_dir][key], key
    assert (jax_dir / ex.EXTRA_DIR / ex.KERAS_NAME).is_file()


def test_jax_export_gives_the_tensorflow_numbers(both_backends):
    tf_model = tf.saved_model.load(str(both_backends["tf_version"]))
    jax_model = tf.saved_model.load(str(both_backends["jax_version"]))
    rng = np.random.default_rng(0)
    x = tf.constant(rng.random((2, 90, 70, 1), dtype=np.float32))
    a = tf_model.signatures[ex.DEFAULT_SIGNATURE](image=x)
    b = jax_model.signatures[ex.DEFAULT_SIGNATURE](image=x)
    assert sorted(a) == sorted(b) == ["coarse", "probabilities", "segmentation"]
    assert b["segmentation"].shape == (2, 90, 70) and b["segmentation"].dtype == tf.int32
    np.testing.assert_allclose(b["probabilities"], a["probabilities"], atol=1e-4)
    clear = _clear(a["probabilities"].numpy())
    assert clear.mean() > 0.99
    assert np.array_equal(a["segmentation"].numpy()[clear], b["segmentation"].numpy()[clear])
    png = tf.io.encode_png(tf.constant(rng.integers(0, 256, (50, 40, 1), dtype=np.uint8)))
    a = tf_model.signatures[ex.BYTES_SIGNATURE](image_bytes=tf.stack([png]))
    b = jax_model.signatures[ex.BYTES_SIGNATURE](image_bytes=tf.stack([png]))
    np.testing.assert_allclose(b["probabilities"], a["probabilities"], atol=1e-4)
    # The contract's checks are TensorFlow ops on both backends.
    with pytest.raises(tf.errors.InvalidArgumentError, match="NaN or infinite"):
        jax_model.signatures[ex.DEFAULT_SIGNATURE](image=tf.fill([1, 20, 20, 1], np.nan))


def test_jax_export_warmup_requests_run_against_its_signatures(both_backends):
    pytest.importorskip("tensorflow_serving.apis.prediction_log_pb2")
    from tensorflow_serving.apis import prediction_log_pb2

    jax_dir = both_backends["jax_version"]
    loaded = tf.saved_model.load(str(jax_dir))
    path = jax_dir / ex.EXTRA_DIR / ex.WARMUP_NAME
    names = []
    for raw in tf.data.TFRecordDataset(str(path)).as_numpy_iterator():
        request = prediction_log_pb2.PredictionLog.FromString(raw).predict_log.request
        names.append(request.model_spec.signature_name)
        inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
        out = loaded.signatures[names[-1]](**{k: tf.constant(v) for k, v in inputs.items()})
        assert out["segmentation"].shape[0] == 1
    assert sorted(names) == [ex.BYTES_SIGNATURE, ex.DEFAULT_SIGNATURE]


def test_runet_predict_writes_the_same_label_map_on_both_backends(both_backends):
    work = both_backends["work"]
    maps = {}
    for side in ("tf", "jax"):
        rows = (work / side / "pred" / "predictions.csv").read_text().splitlines()
        assert len(rows) == 2 and ",ok," in rows[1], rows
        label_map = sitk.ReadImage(str(work / side / "pred" / "a_4CH_ED.nii.gz"))
        maps[side] = (sitk.GetArrayFromImage(label_map), label_map.GetSpacing())
    assert maps["jax"][1] == maps["tf"][1]
    assert maps["jax"][0].shape == maps["tf"][0].shape
    assert (maps["jax"][0] == maps["tf"][0]).mean() > 0.999
