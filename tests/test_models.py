"""The three models: parameter counts, contracts, gradients, saving, overfitting."""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
from conftest import synthetic_heart_batch

import keras_runet
from keras_runet.models import build_model, build_runet, build_shg, build_unet1, compile_model


def conv_params(cin, cout, k=3):
    return k * k * cin * cout + cout


def unet_params(cin, encoder, bottom, decoder, classes=4):
    """Parameter count of a U-Net 1 topology, counted by hand from its description
    (docs/design.md)."""
    total, c, skips = 0, cin, []
    for f in encoder:
        total += conv_params(c, f) + conv_params(f, f)
        skips.append(f)
        c = f
    total += conv_params(c, bottom) + conv_params(bottom, bottom)
    c = bottom
    for f, s in zip(decoder, reversed(skips), strict=True):
        total += conv_params(c + s, f) + conv_params(f, f)
        c = f
    return total + conv_params(c, classes, 1)


UNET1 = ((32, 32, 64, 128, 128), 128, (128, 128, 64, 32, 16))


def test_unet1_parameters_match_the_camus_description_and_the_paper():
    model = build_unet1()
    assert model.count_params() == unet_params(1, *UNET1)  # 1,976,644
    assert model.count_params() == pytest.approx(2.0e6, rel=0.03)  # paper: 2.0 M


def test_shg_parameters_match_the_paper():
    assert build_shg().count_params() == pytest.approx(4.5e6, rel=0.05)  # paper: 4.5 M


def test_runet_parameters_are_two_unet1_and_match_the_paper():
    model = build_runet()
    assert model.count_params() == 2 * unet_params(1, *UNET1)  # attention adds nothing
    assert model.count_params() == pytest.approx(3.9e6, rel=0.05)  # paper: 3.9 M
    assert model.get_layer("roi_attention").weights == []


@pytest.mark.parametrize(
    "builder,outputs",
    [
        (build_unet1, {"segmentation"}),
        (build_shg, {"stage1", "stage2", "segmentation"}),
        (build_runet, {"coarse", "segmentation"}),
    ],
)
def test_models_work_with_defaults_and_return_dicts_of_softmax(builder, outputs):
    model = builder()
    assert model.input_shape == (None, 256, 256, 1)
    out = model.predict_on_batch(np.random.default_rng(0).random((1, 256, 256, 1), "float32"))
    assert set(out) == outputs
    for value in out.values():
        assert value.shape == (1, 256, 256, 4)
        assert value.dtype == np.float32
        np.testing.assert_allclose(value.sum(-1), 1.0, atol=1e-5)


@pytest.mark.parametrize("name", ["unet1", "shg", "runet"])
@pytest.mark.parametrize("shape", [(250, 256, 1), (256, 100, 1)])
def test_sizes_not_multiple_of_32_are_rejected(name, shape):
    bad = shape[0] if shape[0] % 32 else shape[1]
    with pytest.raises(ValueError, match=str(bad)):
        build_model(name, input_shape=shape)


def test_unknown_model_name():
    with pytest.raises(ValueError, match="unknown model 'vnet'"):
        build_model("vnet")


def test_model_metric_and_export_names_derive_from_the_vocabulary():
    # One table (tfds_camus.vocabulary); the logged and exported spellings stay as they were.
    from keras_runet import export, metrics
    from keras_runet.models import MODEL_NAMES
    from tfds_camus import vocabulary

    assert MODEL_NAMES == vocabulary.MODELS == ("unet1", "shg", "runet")
    assert [m.name for m in metrics.training_metrics(4)] == [
        "dice",
        "dice_lv_endo",
        "dice_lv_myo",
        "dice_la",
    ]
    assert export.LABEL_NAMES == vocabulary.LABELS
    assert export.LABEL_NAMES == ("background", "lv_cavity", "myocardium", "left_atrium")


def test_runet_is_differentiable_end_to_end():
    import tensorflow as tf

    keras.utils.set_random_seed(1)
    x, y = synthetic_heart_batch(2, 64)
    probe = build_runet(input_shape=(64, 64, 1), width=0.25)
    coarse = probe.predict_on_batch(x)["coarse"]
    # Put the first binarisation where the coarse foreground actually varies, so the
    # sigmoids are not saturated everywhere (as they would be at a fixed shift at init).
    shift = float(np.median(1.0 - coarse[..., 0]))
    model = build_runet(input_shape=(64, 64, 1), width=0.25, shift=shift)
    model.set_weights(probe.get_weights())
    loss = keras_runet.MultiClassDiceLoss()
    first_kernel = model.get_layer("unet1_enc1_conv1").kernel
    with tf.GradientTape() as tape:
        seg = model(x, training=True)["segmentation"]  # only the final output
        value = loss(y, seg)
    grad = tape.gradient(value, first_kernel)
    assert grad is not None
    grad = grad.numpy()
    assert np.isfinite(grad).all()
    assert np.abs(grad).max() > 0


def test_compile_helper_names_metrics_predictably():
    x, y = synthetic_heart_batch(2, 64)
    for name in ("unet1", "runet"):
        model = compile_model(build_model(name, input_shape=(64, 64, 1), width=0.25))
        targets = {o: y for o in model.output_names}
        hist = model.fit(x, targets, validation_data=(x, targets), epochs=1, verbose=0)
        assert "val_segmentation_dice" in hist.history
        assert "val_segmentation_dice_lv_endo" in hist.history
        assert "segmentation_dice_la" in hist.history
        if name == "runet":
            assert "val_coarse_dice" in hist.history


def test_compile_helper_loss_weights_and_mixed_precision():
    model = build_runet(input_shape=(64, 64, 1), width=0.25, dtype="mixed_bfloat16")
    assert model.get_layer("unet1_enc1_conv1").compute_dtype == "bfloat16"
    compile_model(model, loss_weights={"coarse": 0.5})
    x, y = synthetic_heart_batch(2, 64)
    out = model.predict_on_batch(x)
    assert out["segmentation"].dtype == np.float32 and out["coarse"].dtype == np.float32
    model.fit(x, {"coarse": y, "segmentation": y}, epochs=1, verbose=0)
    with pytest.raises(ValueError, match="stage9"):
        compile_model(model, loss_weights={"stage9": 1.0})
    f16 = compile_model(build_unet1(input_shape=(64, 64, 1), width=0.25, dtype="mixed_float16"))
    assert isinstance(f16.optimizer, keras.optimizers.LossScaleOptimizer)


LOAD_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import keras
    import keras_runet  # registers the custom objects; no custom_objects passed
    x = np.load(sys.argv[1])
    result = {}
    for path in sys.argv[2:]:
        model = keras.saving.load_model(path)  # safe_mode=True by default
        out = model.predict_on_batch(x)
        np.savez(path + ".out.npz", **{k: np.asarray(v) for k, v in out.items()})
        result[path] = sorted(out)
    print(json.dumps(result))
    """
)


def test_models_save_and_load_in_a_fresh_process(tmp_path):
    """Saved as .keras, reloaded in a new Python process: identical outputs."""
    x = np.random.default_rng(3).random((2, 64, 64, 1), "float32")
    paths, expected = [], {}
    for name in ("unet1", "shg", "runet"):
        model = compile_model(build_model(name, input_shape=(64, 64, 1), dil=7, shift=0.6))
        path = str(tmp_path / f"{name}.keras")
        model.save(path)
        paths.append(path)
        expected[path] = model.predict_on_batch(x)
    np.save(tmp_path / "x.npy", x)
    script = tmp_path / "load.py"
    script.write_text(LOAD_SCRIPT)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "x.npy"), *paths],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    listed = json.loads(proc.stdout.strip().splitlines()[-1])
    for path in paths:
        got = np.load(path + ".out.npz")
        assert listed[path] == sorted(expected[path])
        for key, value in expected[path].items():
            np.testing.assert_array_equal(got[key], value)
    # The reloaded RU-Net kept its hyper-parameters and its metrics are ours, not keras's.
    reloaded = keras.saving.load_model(paths[2])
    attention = reloaded.get_layer("roi_attention")
    assert (attention.dil, attention.shift) == (7, 0.6)
    assert isinstance(reloaded.loss["segmentation"], keras_runet.MultiClassDiceLoss)
