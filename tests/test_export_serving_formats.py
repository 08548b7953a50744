"""TF Serving's REST and gRPC formats around an exported SavedModel (keras_runet.serving).

No server runs here: a REST body or a PredictRequest is turned into one call of the loaded
signature and the outputs into the server's reply format, as TF Serving does.
"""

import base64
import io
import json

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import keras_runet
from keras_runet import export as ex
from keras_runet import serving

SIZE = 32


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    base = tmp_path_factory.mktemp("serving")
    model = keras_runet.build_model("runet", input_shape=(SIZE, SIZE, 1), width=0.125, dil=3)
    version_dir = ex.export_model(model, base)
    loaded = tf.saved_model.load(str(version_dir))
    return model, loaded


def _images(n=2, h=20, w=24, seed=0):
    return np.random.default_rng(seed).random((n, h, w, 1), dtype=np.float32)


def _direct(loaded, x):
    return {k: v.numpy() for k, v in loaded.signatures["serving_default"](image=x).items()}


def test_rest_row_format(exported):
    _, loaded = exported
    x = _images()
    body = json.dumps({"signature_name": "serving_default", "instances": x.tolist()})
    sig_name, inputs, fmt = serving.rest_request_to_inputs(body, input_names=["image"])
    assert (sig_name, fmt) == ("serving_default", "row")
    outputs = serving.call_signature(loaded.signatures[sig_name], inputs)
    reply = json.loads(json.dumps(serving.rest_response(outputs, fmt)))
    preds = reply["predictions"]
    assert len(preds) == 2
    assert set(preds[0]) == {"segmentation", "probabilities", "coarse"}
    direct = _direct(loaded, x)
    assert np.array_equal(np.array([p["segmentation"] for p in preds]), direct["segmentation"])
    np.testing.assert_allclose(
        np.array([p["probabilities"] for p in preds]), direct["probabilities"], atol=1e-6
    )
    assert np.array(preds[1]["segmentation"]).shape == (20, 24)

    # Instances as objects naming the input give the same call.
    named = {"instances": [{"image": img} for img in x.tolist()]}
    _, inputs2, _ = serving.rest_request_to_inputs(named)
    np.testing.assert_array_equal(inputs2["image"], inputs["image"])


def test_rest_columnar_format(exported):
    _, loaded = exported
    x = _images(n=1, h=40, w=36, seed=2)
    body = {"signature_name": "serving_default", "inputs": {"image": x.tolist()}}
    sig_name, inputs, fmt = serving.rest_request_to_inputs(body)
    assert fmt == "columnar"
    outputs = serving.call_signature(loaded.signatures[sig_name], inputs)
    reply = json.loads(json.dumps(serving.rest_response(outputs, fmt)))
    assert set(reply["outputs"]) == {"segmentation", "probabilities", "coarse"}
    seg = np.array(reply["outputs"]["segmentation"])
    assert seg.shape == (1, 40, 36)
    assert np.array_equal(seg, _direct(loaded, x)["segmentation"])
    # A bare value is allowed for a one-input signature.
    _, bare, _ = serving.rest_request_to_inputs({"inputs": x.tolist()}, input_names=["image"])
    np.testing.assert_array_equal(bare["image"], inputs["image"])


def test_rest_b64_png_to_bytes_signature(exported):
    _, loaded = exported
    pixels = (np.random.default_rng(3).random((30, 26)) * 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    b64 = base64.b64encode(buf.getvalue()).decode("ascii")
    body = json.dumps({"signature_name": "serving_bytes", "instances": [{"b64": b64}]})
    sig_name, inputs, fmt = serving.rest_request_to_inputs(body, input_names=["image_bytes"])
    assert inputs["image_bytes"][0] == buf.getvalue()
    outputs = serving.call_signature(loaded.signatures[sig_name], inputs)
    reply = serving.rest_response(outputs, fmt)
    seg = np.array(reply["predictions"][0]["segmentation"])
    direct = _direct(loaded, pixels[None, ..., None].astype(np.float32) / 255.0)
    assert np.array_equal(seg, direct["segmentation"][0])

    # JPEG (colour, converted to grayscale by the signature) in a columnar request.
    rgb = np.stack([pixels, pixels // 2, pixels // 3], axis=-1)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=95)
    body = {
        "signature_name": "serving_bytes",
        "inputs": {"image_bytes": [{"b64": base64.b64encode(buf.getvalue()).decode()}]},
    }
    sig_name, inputs, fmt = serving.rest_request_to_inputs(body)
    reply = serving.rest_response(serving.call_signature(loaded.signatures[sig_name], inputs), fmt)
    gray = tf.io.decode_image(buf.getvalue(), channels=1, dtype=tf.float32)[None].numpy()
    assert np.array_equal(
        np.array(reply["outputs"]["segmentation"]), _direct(loaded, gray)["segmentation"]
    )


def test_rest_errors_are_the_servers(exported):
    _, loaded = exported
    with pytest.raises(serving.ServingRequestError, match="exactly one of"):
        serving.rest_request_to_inputs({"instances": [1], "inputs": [1]})
    with pytest.raises(serving.ServingRequestError, match="not JSON"):
        serving.rest_request_to_inputs("{nope")
    with pytest.raises(serving.ServingRequestError, match="base64"):
        serving.rest_request_to_inputs({"instances": [{"b64": "***"}]})
    with pytest.raises(serving.ServingRequestError, match="rectangular"):
        serving.rest_request_to_inputs({"inputs": {"image": [[1, 2], [3]]}})
    sig = loaded.signatures["serving_default"]
    with pytest.raises(serving.ServingRequestError, match="unknown \\['img'\\]"):
        serving.call_signature(sig, {"img": _images()})
    with pytest.raises(serving.ServingRequestError, match="shape"):
        serving.call_signature(sig, {"image": np.zeros((1, 8, 8, 3), np.float32)})
    bad = _images(n=1)
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(serving.ServingRequestError, match="NaN"):
        serving.call_signature(sig, {"image": bad})


def test_grpc_predict_request_round_trip(exported):
    pytest.importorskip("tensorflow_serving.apis.predict_pb2")
    from tensorflow_serving.apis import predict_pb2

    _, loaded = exported
    x = _images(n=1, h=SIZE, w=SIZE, seed=5)
    request = serving.make_predict_request({"image": x}, model_name="runet", version=1)
    request.output_filter.extend(["segmentation", "coarse"])
    # Through the wire format, as a server receives it.
    received = predict_pb2.PredictRequest.FromString(request.SerializeToString())
    sig_name, inputs = serving.predict_request_to_inputs(received)
    assert sig_name == "serving_default"
    np.testing.assert_array_equal(inputs["image"], x)
    outputs = serving.call_signature(loaded.signatures[sig_name], inputs)
    response = serving.predict_response(outputs, received)
    reply = predict_pb2.PredictResponse.FromString(response.SerializeToString())
    assert reply.model_spec.name == "runet" and reply.model_spec.version.value == 1
    assert reply.model_spec.signature_name == "serving_default"
    assert sorted(reply.outputs) == ["coarse", "segmentation"]
    seg = tf.make_ndarray(reply.outputs["segmentation"])
    assert seg.dtype == np.int32 and seg.shape == (1, SIZE, SIZE)
    assert np.array_equal(seg, _direct(loaded, x)["segmentation"])

    # The encoded-image signature over gRPC: a DT_STRING tensor of PNG bytes.
    buf = io.BytesIO()
    Image.fromarray((x[0, ..., 0] * 255).astype(np.uint8)).save(buf, format="PNG")
    req2 = serving.make_predict_request(
        {"image_bytes": np.array([buf.getvalue()], dtype=object)}, signature_name="serving_bytes"
    )
    sig2, inputs2 = serving.predict_request_to_inputs(req2)
    out2 = serving.call_signature(loaded.signatures[sig2], inputs2)
    assert out2["segmentation"].shape == (1, SIZE, SIZE)


def test_binary_inputs_keep_every_byte(tmp_path):
    """Encoded images are binary: a payload ending in NUL bytes must arrive unchanged."""
    module = tf.Module()
    module.f = tf.function(
        lambda data: {"length": tf.strings.length(data), "echo_bytes": data},
        input_signature=[tf.TensorSpec([None], tf.string, name="data")],
    )
    tf.saved_model.save(module, str(tmp_path / "m"), signatures={"serving_default": module.f})
    sig = tf.saved_model.load(str(tmp_path / "m")).signatures["serving_default"]
    payload = b"\x89PNG\x00\x01\x00\x00"
    body = {"instances": [{"b64": base64.b64encode(payload).decode()}]}
    name, inputs, fmt = serving.rest_request_to_inputs(body, input_names=["data"])
    outputs = serving.call_signature(sig, inputs)
    assert outputs["length"].tolist() == [len(payload)]
    reply = serving.rest_response(outputs, fmt)
    # Outputs named *_bytes go back base64-encoded, as TF Serving does.
    assert base64.b64decode(reply["predictions"][0]["echo_bytes"]["b64"]) == payload


def test_round_trip_helpers(exported):
    _, loaded = exported
    x = _images(n=2, h=24, w=20, seed=7)
    direct = _direct(loaded, x)
    # Bare instances: the signature's only input, found from the signature itself.
    reply = serving.rest_predict(loaded, json.dumps({"instances": x.tolist()}))
    assert np.array_equal(
        np.array([p["segmentation"] for p in reply["predictions"]]), direct["segmentation"]
    )
    with pytest.raises(serving.ServingRequestError, match="'nope' not found"):
        serving.rest_predict(loaded, {"signature_name": "nope", "instances": x.tolist()})
    pytest.importorskip("tensorflow_serving.apis.predict_pb2")
    response = serving.grpc_predict(loaded, serving.make_predict_request({"image": x}))
    assert np.array_equal(tf.make_ndarray(response.outputs["segmentation"]), direct["segmentation"])
    assert sorted(response.outputs) == ["coarse", "probabilities", "segmentation"]


def test_client_side_resize_to_the_model_size_is_the_same_answer(exported):
    """docs/serving.md's advice for batching mixed sizes: resize to the model's size on the
    client, send that, resize the probabilities back: exactly what the graph computes."""
    _, loaded = exported
    x = _images(n=1, h=83, w=101, seed=8)
    small = tf.image.resize(x, (SIZE, SIZE), "bilinear")
    probs = _direct(loaded, small)["probabilities"]
    back = tf.image.resize(probs, (83, 101), "bilinear").numpy()
    np.testing.assert_allclose(back, _direct(loaded, x)["probabilities"], atol=1e-6)


def test_server_side_padding_changes_the_answer(exported):
    """What TF Serving's batching with pad_variable_length_inputs does to a smaller image of
    a merged batch (tensorflow_serving/batching/batching_util.h AddPadding: pad after each
    dimension with the tensor's first element): the signature resizes the padded frame, so
    the image's own pixels get other probabilities, and the reply has the padded size."""
    _, loaded = exported
    x = _images(n=1, h=83, w=101, seed=9)
    padded = np.pad(x, ((0, 0), (0, 17), (0, 19), (0, 0)), constant_values=x[0, 0, 0, 0])
    alone = _direct(loaded, x)["probabilities"]
    merged = _direct(loaded, padded)
    assert merged["segmentation"].shape == (1, 100, 120)
    assert np.abs(merged["probabilities"][:, :83, :101] - alone).max() > 1e-3
