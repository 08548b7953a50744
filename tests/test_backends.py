"""The layers and a small RU-Net give the same numbers on the JAX backend.

Runs when jax is installed (CI installs it through the `test` extra); skipped otherwise.
The JAX side runs in a subprocess because Keras fixes its backend at import.
"""

import importlib.util
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from keras_runet.layers import BoxDilation, ParametricSigmoid, RoiAttention
from keras_runet.models import build_runet

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("jax") is None, reason="jax is not installed"
)

JAX_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import keras
    assert keras.backend.backend() == "jax", keras.backend.backend()
    import keras_runet
    from keras_runet.layers import BoxDilation, ParametricSigmoid, RoiAttention
    folder = sys.argv[1]
    x = np.load(folder + "/x.npy")
    probs = np.load(folder + "/probs.npy")
    out = {
        "sigmoid": keras.ops.convert_to_numpy(ParametricSigmoid(100.0, 0.5)(probs)),
        "box11": keras.ops.convert_to_numpy(BoxDilation(11)(probs)),
        "box30": keras.ops.convert_to_numpy(BoxDilation(30)(probs)),
        "attention": keras.ops.convert_to_numpy(RoiAttention(dil=9, shift=0.6)([x, probs])),
    }
    model = keras.saving.load_model(folder + "/runet.keras")
    for key, value in model.predict_on_batch(x).items():
        out["runet_" + key] = np.asarray(value)
    np.savez(folder + "/jax.npz", **out)
    print(json.dumps(sorted(out)))
    """
)


def test_layers_and_runet_match_on_jax(tmp_path):
    import keras

    rng = np.random.default_rng(0)
    x = rng.random((2, 64, 64, 1), "float32")
    probs = rng.random((2, 64, 64, 4), "float32")
    probs /= probs.sum(-1, keepdims=True)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "probs.npy", probs)
    expected = {
        "sigmoid": ParametricSigmoid(100.0, 0.5)(probs),
        "box11": BoxDilation(11)(probs),
        "box30": BoxDilation(30)(probs),
        "attention": RoiAttention(dil=9, shift=0.6)([x, probs]),
    }
    expected = {k: keras.ops.convert_to_numpy(v) for k, v in expected.items()}
    model = build_runet(input_shape=(64, 64, 1), width=0.25, dil=9, shift=0.6)
    model.save(tmp_path / "runet.keras")
    for key, value in model.predict_on_batch(x).items():
        expected["runet_" + key] = value
    script = tmp_path / "jax_side.py"
    script.write_text(JAX_SCRIPT)
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="3")
    env["JAX_THREEFRY_PARTITIONABLE"] = "0"  # compiles fast on CPU; the weights are loaded
    proc = subprocess.run(
        [sys.executable, str(script), str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == sorted(expected)
    got = np.load(tmp_path / "jax.npz")
    for key, value in expected.items():
        np.testing.assert_allclose(got[key], value, rtol=1e-4, atol=2e-5, err_msg=key)
