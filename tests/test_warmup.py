"""TF Serving's warmup file (assets.extra/tf_serving_warmup_requests) in every export.

The file is read back the way TF Serving reads it (a TFRecord file of
tensorflow.serving.PredictionLog protos) and every request is replayed against the loaded
SavedModel's signature: a record the signature refuses would make the server fail to load
the version.
"""

import json
import logging
import sys

import numpy as np
import pytest
import tensorflow as tf

import keras_runet
from keras_runet import export as ex
from keras_runet import serving
from keras_runet.cli import main as cli_main

SIZE = 32


@pytest.fixture(scope="module")
def prediction_log_pb2():
    return pytest.importorskip("tensorflow_serving.apis.prediction_log_pb2")


@pytest.fixture(scope="module")
def exported(tmp_path_factory, prediction_log_pb2):
    base = tmp_path_factory.mktemp("warmup")
    model = keras_runet.build_model("runet", input_shape=(SIZE, SIZE, 1), width=0.125, dil=3)
    version_dir = ex.export_model(model, base)
    return version_dir, tf.saved_model.load(str(version_dir))


def _records(path):
    from tensorflow_serving.apis import prediction_log_pb2

    return [
        prediction_log_pb2.PredictionLog.FromString(r)
        for r in tf.data.TFRecordDataset(str(path)).as_numpy_iterator()
    ]


def test_one_request_per_signature_that_the_signature_answers(exported):
    version_dir, loaded = exported
    warmup = version_dir / "assets.extra" / "tf_serving_warmup_requests"
    assert warmup.is_file() and ex.stale_temporaries(version_dir.parent) == []
    records = _records(warmup)
    meta = json.loads((version_dir / "assets.extra" / ex.METADATA_NAME).read_text())
    names = [r.predict_log.request.model_spec.signature_name for r in records]
    assert sorted(names) == sorted(loaded.signatures) == ["serving_bytes", "serving_default"]
    expected_shapes = {"image": (1, SIZE, SIZE, 1), "image_bytes": (1,)}
    for record in records:
        assert record.WhichOneof("log_type") == "predict_log"
        request = record.predict_log.request
        signature = loaded.signatures[request.model_spec.signature_name]
        specs = signature.structured_input_signature[1]
        assert sorted(request.inputs) == sorted(specs)
        inputs = {}
        for key, proto in request.inputs.items():
            assert proto.dtype == specs[key].dtype.as_datatype_enum
            value = tf.make_ndarray(proto)
            assert value.shape == expected_shapes[key]
            inputs[key] = tf.constant(value, dtype=specs[key].dtype)
        outputs = signature(**inputs)
        documented = meta["signatures"][request.model_spec.signature_name]["outputs"]
        assert sorted(outputs) == sorted(documented) == ["coarse", "probabilities", "segmentation"]
        if "image" in inputs:
            height, width = SIZE, SIZE
            assert 0.0 <= float(tf.reduce_min(inputs["image"]))
            assert float(tf.reduce_max(inputs["image"])) <= 1.0
        else:  # a PNG, of another size than the model's: both resizes of the graph run
            decoded = tf.io.decode_png(inputs["image_bytes"][0]).numpy()
            assert decoded.dtype == np.uint8 and decoded.shape[-1] == 1
            height, width = decoded.shape[:2]
            assert (height, width) != (SIZE, SIZE)
        assert outputs["segmentation"].shape == (1, height, width)
        assert outputs["segmentation"].dtype == tf.int32
        assert outputs["coarse"].shape == (1, height, width)
        assert outputs["probabilities"].shape == (1, height, width, 4)
        np.testing.assert_allclose(outputs["probabilities"].numpy().sum(-1), 1.0, atol=1e-4)


def test_read_warmup_requests_round_trip(exported, tmp_path, prediction_log_pb2):
    version_dir, loaded = exported
    pairs = serving.read_warmup_requests(version_dir / "assets.extra" / ex.WARMUP_NAME)
    direct = _records(version_dir / "assets.extra" / ex.WARMUP_NAME)
    assert [name for name, _ in pairs] == [
        r.predict_log.request.model_spec.signature_name for r in direct
    ]
    for (name, inputs), record in zip(pairs, direct, strict=True):
        for key, proto in record.predict_log.request.inputs.items():
            np.testing.assert_array_equal(inputs[key], tf.make_ndarray(proto))
        # As the server replays them: through keras_runet.serving's checked call.
        out = serving.call_signature(loaded.signatures[name], inputs)
        assert out["segmentation"].shape[0] == 1
    # A record that is not a predict log (TF Serving also replays classify logs; we write none).
    other = tmp_path / "classify"
    with tf.io.TFRecordWriter(str(other)) as writer:
        log = prediction_log_pb2.PredictionLog(classify_log=prediction_log_pb2.ClassifyLog())
        writer.write(log.SerializeToString())
    with pytest.raises(serving.ServingRequestError, match="record 0 is a classify_log"):
        serving.read_warmup_requests(other)


def test_without_tensorflow_serving_api_the_export_skips_only_the_warmup(
    tmp_path, monkeypatch, caplog, capsys
):
    model = keras_runet.build_model("unet1", input_shape=(SIZE, SIZE, 1), width=0.125)
    model.save(tmp_path / "unet1.keras")
    # As if tensorflow-serving-api were not installed: importing it raises ImportError.
    for name in [m for m in sys.modules if m.split(".")[0] == "tensorflow_serving"]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "tensorflow_serving", None)
    with caplog.at_level(logging.WARNING, logger="keras_runet.export"):
        assert cli_main(["export", str(tmp_path / "unet1.keras"), str(tmp_path / "serving")]) == 0
    version_dir = tmp_path / "serving" / "1"
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "tensorflow-serving-api" in warnings[0].getMessage()
    assert ex.WARMUP_NAME in warnings[0].getMessage()
    assert "note: no assets.extra/tf_serving_warmup_requests" in capsys.readouterr().out
    assert sorted(p.name for p in (version_dir / "assets.extra").iterdir()) == [
        ex.KERAS_NAME,
        ex.METADATA_NAME,
    ]
    signatures = tf.saved_model.load(str(version_dir)).signatures
    assert sorted(signatures) == ["serving_bytes", "serving_default"]
