"""Export a trained model as a SavedModel for TF Serving, plus its ``.keras`` file and metadata.

Layout written by :func:`export_model` (TF Serving's: numbered version folders)::

    EXPORT_BASE/
      1/
        saved_model.pb  variables/  fingerprint.pb     the SavedModel TF Serving loads
        assets.extra/model.keras                       the Keras model (reload with Keras)
        assets.extra/runet_export.json                 metadata (see :func:`export_metadata`)
        assets.extra/tf_serving_warmup_requests        one warmup request per signature
                                                       (see :func:`write_warmup_requests`)

A version is written into ``EXPORT_BASE/.tmp-<version>-<random>`` and renamed into place
only when complete, so a server watching ``EXPORT_BASE`` never sees half a version (TF
Serving only loads folders whose name is a number). An existing version is replaced only
with ``overwrite=True``.

Signatures (see docs/serving.md):

``serving_default``
    input ``image`` float32 ``(batch, H, W, 1)`` in [0, 1], any H and W (one size per
    request). The image is resized (bilinear) to the model's input size, the class
    probabilities are resized back to H x W (bilinear), then argmax. Outputs:
    ``segmentation`` int32 ``(batch, H, W)`` label map (0 background, 1 LV cavity,
    2 myocardium, 3 left atrium), ``probabilities`` float32 ``(batch, H, W, 4)`` and, for
    RU-Net, ``coarse`` int32 ``(batch, H, W)``, the first U-Net's label map.
    A NaN or infinite pixel makes the call fail with InvalidArgument.
``serving_bytes``
    input ``image_bytes`` string ``(batch,)``: encoded PNG / JPEG / BMP / GIF images (REST
    clients send ``{"b64": "..."}``), decoded to grayscale and scaled to [0, 1]; every image of
    one request must have the same size. Same outputs as ``serving_default``.

The warmup file is TF Serving's "SavedModel Warmup": a TFRecord file of
``tensorflow.serving.PredictionLog`` records that the server replays when it loads a version,
before it marks the version available, so that the first client request does not pay the
runtime's lazy initialisation. Its protos come from ``tensorflow-serving-api``, which is not a
dependency of keras-runet: without it the export is the same minus that file, and says so in
one log warning.

Backends: the export runs on TensorFlow and on JAX (through Keras's own JAX -> SavedModel
path, ``keras.export.ExportArchive`` with ``jax2tf``), with the same signatures, resizes and
outputs; the resizes, checks and argmax are TensorFlow ops on both. See ``_forward_pass``.

Models are always loaded in Keras's safe mode: a ``.keras`` file that would run arbitrary
Python code (a ``Lambda`` layer, ...) is refused.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import shutil
from collections.abc import Mapping
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

import keras_runet.models  # noqa: F401  (registers the custom layers before any load)
from keras_runet.config import GRAPH_BACKENDS, graph_backend_error
from keras_runet.version import __version__
from tfds_camus.vocabulary import LABELS, MODELS

__all__ = [
    "BYTES_SIGNATURE",
    "DEFAULT_SIGNATURE",
    "LABEL_NAMES",
    "METADATA_NAME",
    "KERAS_NAME",
    "WARMUP_NAME",
    "ExportError",
    "export_metadata",
    "export_model",
    "load_model",
    "make_serving_functions",
    "model_info",
    "next_version",
    "stale_temporaries",
    "warmup_inputs",
    "write_warmup_requests",
]

logger = logging.getLogger(__name__)

DEFAULT_SIGNATURE = "serving_default"
BYTES_SIGNATURE = "serving_bytes"
# The metadata's label_names: the dataset's names (tfds_camus.vocabulary.LABELS).
LABEL_NAMES = LABELS
_UNET1, _SHG, _RUNET = MODELS
EXTRA_DIR = "assets.extra"
KERAS_NAME = "model.keras"
METADATA_NAME = "runet_export.json"
# TF Serving's fixed name and folder for warmup requests ("SavedModel Warmup").
WARMUP_NAME = "tf_serving_warmup_requests"
# The encoded image of the serving_bytes warmup request: small (the file stays small), not
# square, and not the model's size, so that both resizes of the graph really run.
_WARMUP_PNG_SIZE = (48, 64)
_TMP_PREFIX = ".tmp-"
# On JAX: the saved function of the model's forward pass (see _forward_pass), and the
# platforms its StableHLO is lowered for (TF Serving's CPU and GPU images).
_FORWARD_ENDPOINT = "keras_forward"
_JAX_PLATFORMS = ("cpu", "cuda")


class ExportError(ValueError):
    """A model that cannot be loaded or exported, or an export folder in the way."""


def load_model(path, *, model_kind: str | None = None, **build_kwargs) -> keras.Model:
    """Load a trained model for export or prediction, in Keras's safe mode.

    Args:
        path: a ``.keras`` file (architecture and weights), or a weights checkpoint
            (``.weights.h5``) together with ``model_kind`` and the ``build_kwargs`` of
            :func:`keras_runet.build_model` (``dil``, ``shift``, ``input_shape``, ``width``).
        model_kind: one of ``tfds_camus.vocabulary.MODELS`` ("unet1", "shg", "runet");
            only for a weights checkpoint.
        **build_kwargs: passed to :func:`keras_runet.build_model` for a weights checkpoint.

    Returns:
        The model, not compiled.

    Raises:
        ExportError: missing file, unknown format, or a model that needs unsafe
            deserialization (arbitrary code) or does not match the model contract.
    """
    path = Path(path)
    if not path.is_file():
        raise ExportError(f"model file {str(path)!r} does not exist")
    name = path.name.lower()
    if name.endswith(".weights.h5"):
        if not model_kind:
            raise ExportError(
                f"{str(path)!r} holds weights only: give the model kind ({', '.join(MODELS)}) "
                "and its options (dil, shift, input size, width) to rebuild the architecture"
            )
        try:
            model = keras_runet.build_model(model_kind, **build_kwargs)
        except ValueError as err:
            raise ExportError(f"cannot build {model_kind}: {err}") from err
        check_weights_match(model, path, model_kind)
        try:
            model.load_weights(path)
        except ValueError as err:
            first = str(err).strip().splitlines()[0][:300]
            raise ExportError(
                f"cannot load weights {str(path)!r} into {model_kind}: {first}"
            ) from err
    elif name.endswith(".keras"):
        import zipfile

        if not zipfile.is_zipfile(path):  # Keras itself would say "File not found"
            raise ExportError(f"{str(path)!r} is not a Keras model file (not a .keras zip archive)")
        with zipfile.ZipFile(path) as archive:
            if "config.json" not in archive.namelist():
                raise ExportError(
                    f"{str(path)!r} is a zip archive but not a Keras model (no config.json in it)"
                )
        try:
            model = keras.saving.load_model(path, compile=False, safe_mode=True)
        except ValueError as err:
            if "safe_mode" in str(err) or "unsafe" in str(err).lower():
                raise ExportError(
                    f"{str(path)!r} needs unsafe deserialization (it contains Python code, "
                    "e.g. a Lambda layer); keras-runet loads models in safe mode only"
                ) from err
            raise ExportError(f"cannot load model {str(path)!r}: {err}") from err
        except (OSError, KeyError, TypeError) as err:  # not a zip, missing config, ...
            raise ExportError(f"cannot load model {str(path)!r}: {err}") from err
    else:
        raise ExportError(f"{str(path)!r} is neither a .keras file nor a .weights.h5 checkpoint")
    _check_contract(model, path)
    return model


def _h5_variables(path) -> dict[str, tuple[int, ...]]:
    import h5py

    found = {}

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset):
            found[name] = tuple(obj.shape)

    with h5py.File(path, "r") as f:
        f.visititems(visit)
    return found


def check_weights_match(model: keras.Model, path, model_kind: str = "the model") -> None:
    """Raises :class:`ExportError` (one line) unless the ``.weights.h5`` file holds exactly
    the variables of ``model``, by name and shape: Keras would otherwise load what fits and
    leave the rest as initialized, or fail with a message as long as the model."""
    import tempfile

    try:
        saved = _h5_variables(path)
    except OSError as err:
        raise ExportError(f"{str(path)!r} is not a readable weights file ({err})") from err
    with tempfile.TemporaryDirectory() as tmp:
        reference = Path(tmp) / "expected.weights.h5"
        model.save_weights(reference)
        expected = _h5_variables(reference)
    extra = sorted(set(saved) - set(expected))
    missing = sorted(set(expected) - set(saved))
    differ = sorted(k for k in set(saved) & set(expected) if saved[k] != expected[k])
    if not (extra or missing or differ):
        return
    parts = []
    if differ:
        k = differ[0]
        parts.append(f"{len(differ)} differ in shape (e.g. {k}: {saved[k]} in the file, "
                     f"{expected[k]} in the model)")  # fmt: skip
    if missing:
        parts.append(f"{len(missing)} of the model's are not in the file (e.g. {missing[0]})")
    if extra:
        parts.append(f"{len(extra)} of the file's have no place in the model (e.g. {extra[0]})")
    raise ExportError(
        f"{str(path)!r} does not hold the weights of this {model_kind}: "
        + "; ".join(parts)
        + ". Check --model-kind and the options that shape it (--width, --image-size)."
    )


def _check_contract(model: keras.Model, path) -> None:
    outputs = model.output
    if not isinstance(outputs, Mapping) or "segmentation" not in outputs:
        raise ExportError(
            f"model {str(path)!r} must return a dict with a 'segmentation' output "
            f"(keras-runet's contract), got {type(outputs).__name__}"
        )
    shape = tuple(model.input.shape) if not isinstance(model.input, list | dict) else None
    if shape is None or len(shape) != 4 or shape[-1] != 1:
        raise ExportError(
            f"model {str(path)!r} must take one image (batch, H, W, 1), got input {shape}"
        )
    if shape[1] is None or shape[2] is None:
        raise ExportError(
            f"model {str(path)!r} has no fixed input size {shape[1:3]}; build it with one "
            "(e.g. 256 x 256) so that the serving graph knows what to resize to"
        )


def model_info(model: keras.Model) -> dict:
    """What a model is: kind, RU-Net's ``dil`` and ``shift``, input size, outputs.

    The kind comes from the model's outputs and layers (``coarse`` and a ``RoiAttention``
    layer: runet; ``stage1``: shg; else unet1), not from its (user-chosen) name.
    """
    outputs = sorted(model.output)
    attention = [
        layer for layer in model.layers if isinstance(layer, keras_runet.layers.RoiAttention)
    ]
    if attention:
        kind = _RUNET
    elif any(o.startswith("stage") for o in outputs):
        kind = _SHG
    else:
        kind = _UNET1
    info = {
        "model_kind": kind,
        "model_name": model.name,
        "dil": None,
        "shift": None,
        "input_size": [int(model.input.shape[1]), int(model.input.shape[2])],
        "num_classes": int(model.output["segmentation"].shape[-1]),
        "model_outputs": outputs,
        "parameters": int(model.count_params()),
    }
    if attention:
        cfg = attention[0].get_config()
        info["dil"] = int(cfg["dil"])
        info["shift"] = float(cfg["shift"])
    return info


def export_metadata(model: keras.Model, *, training_data=None, source=None) -> dict:
    """The metadata JSON written next to an export (``assets.extra/runet_export.json``).

    Args:
        model: the exported model.
        training_data: free text or a dict describing the training data (dataset, folds,
            split...); None records "unknown".
        source: the file the model was loaded from.

    Returns:
        A JSON-ready dict: model kind, dil, shift, input size, label names, package
        version, training data, and the serving signatures with their outputs.
    """
    info = model_info(model)
    outputs = ["segmentation", "probabilities"] + (["coarse"] if "coarse" in model.output else [])
    return {
        **info,
        "label_names": list(LABEL_NAMES[: info["num_classes"]])
        if info["num_classes"] == len(LABEL_NAMES)
        else [f"class_{i}" for i in range(info["num_classes"])],
        "keras_runet_version": __version__,
        "keras_version": keras.__version__,
        "tensorflow_version": tf.__version__,
        # The backend the SavedModel was written on (jax: the model is one XlaCallModule op).
        "keras_backend": keras.config.backend(),
        "training_data": training_data if training_data is not None else "unknown",
        "source_model": str(source) if source is not None else None,
        "signatures": {
            DEFAULT_SIGNATURE: {
                "inputs": {"image": "float32 (batch, H, W, 1)"},
                "outputs": outputs,
            },
            BYTES_SIGNATURE: {"inputs": {"image_bytes": "string (batch,)"}, "outputs": outputs},
        },
    }


def _forward_pass(model: keras.Model, archive) -> object:
    """The model's inference forward pass as a TensorFlow-callable, on Keras's backend.

    TensorFlow: the model itself (``model(x, training=False)``), traced into the serving graph.
    JAX: Keras's own JAX -> SavedModel path: ``archive`` (a ``keras.export.ExportArchive``)
    tracks the model, which turns its variables into ``tf.Variable`` s, and converts the
    forward pass with ``jax2tf`` (native serialization: one ``XlaCallModule`` op holding the
    StableHLO, lowered for CPU and CUDA so that one export serves on either TF Serving image).
    The result is a ``tf.function`` over a fixed-size batch that the serving graph calls
    between its TensorFlow resizes, so that both backends export the same signatures.
    The helper endpoint is saved as a function of the SavedModel, not as a signature.

    Raises:
        ExportError: another backend (PyTorch), in one line.
    """
    backend = keras.config.backend()
    if backend not in GRAPH_BACKENDS:
        raise ExportError(graph_backend_error("the SavedModel export", backend))
    if backend == "tensorflow":
        return lambda x: model(x, training=False)
    height, width = int(model.input.shape[1]), int(model.input.shape[2])
    spec = tf.TensorSpec([None, height, width, 1], tf.float32, name="image")
    archive.track(model)
    forward = archive.add_endpoint(
        _FORWARD_ENDPOINT,
        lambda image: model(image, training=False),
        input_signature=[spec],
        jax2tf_kwargs={"native_serialization_platforms": _JAX_PLATFORMS},
    )
    # ExportArchive.write_out makes every endpoint a signature; this one is the model alone,
    # without the checks and resizes of the contract, so it stays a plain saved function.
    # (Keras 3.13 to 3.15 keep the endpoint names in this list; the tests check the result.)
    archive._endpoint_names.remove(_FORWARD_ENDPOINT)
    return forward


def make_serving_functions(model: keras.Model, *, archive=None) -> dict:
    """The two serving ``tf.function`` s of a model, keyed by signature name.

    Both are also usable directly (``runet predict`` runs ``serving_default``'s function, so
    that a prediction on the command line and one from TF Serving are the same numbers).
    They work on the TensorFlow and the JAX backend (see :func:`_forward_pass`).

    Args:
        model: the model (keras-runet's contract).
        archive: the ``keras.export.ExportArchive`` the functions will be added to, on JAX
            (it then holds the converted variables); None: a new one, kept alive by the
            functions.
    """
    height, width = int(model.input.shape[1]), int(model.input.shape[2])
    has_coarse = "coarse" in model.output
    if archive is None:
        archive = keras.export.ExportArchive()
    forward = _forward_pass(model, archive)

    def predict_native(image):
        # Use the checked tensor, so that the check cannot be pruned from the graph.
        image = tf.debugging.assert_all_finite(image, "image contains NaN or infinite values")
        shape = tf.shape(image)
        checks = [
            tf.debugging.assert_positive(
                shape[:3], message="image must be a non-empty batch (N >= 1, H >= 1, W >= 1)"
            ),
            tf.debugging.assert_greater_equal(
                tf.reduce_min(image), -1e-3, message="image values must be in [0, 1]"
            ),
            tf.debugging.assert_less_equal(
                tf.reduce_max(image),
                1.0 + 1e-3,
                message="image values must be in [0, 1]: divide 8-bit pixels by 255",
            ),
        ]
        with tf.control_dependencies(checks):
            image = tf.identity(image)
        native = tf.shape(image)[1:3]
        x = tf.image.resize(image, (height, width), method="bilinear")
        out = forward(x)
        probs = tf.image.resize(tf.cast(out["segmentation"], tf.float32), native, "bilinear")
        result = {
            "segmentation": tf.argmax(probs, axis=-1, output_type=tf.int32),
            "probabilities": probs,
        }
        if has_coarse:
            coarse = tf.image.resize(tf.cast(out["coarse"], tf.float32), native, "bilinear")
            result["coarse"] = tf.argmax(coarse, axis=-1, output_type=tf.int32)
        return result

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 1], tf.float32, name="image")])
    def serving_default(image):
        return predict_native(image)

    def decode(data):
        img = tf.io.decode_image(data, channels=1, dtype=tf.float32, expand_animations=False)
        img.set_shape([None, None, 1])
        return img

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
    def serving_bytes(image_bytes):
        images = tf.map_fn(
            decode,
            image_bytes,
            fn_output_signature=tf.TensorSpec([None, None, 1], tf.float32),
        )
        return predict_native(images)

    return {DEFAULT_SIGNATURE: serving_default, BYTES_SIGNATURE: serving_bytes}


def warmup_inputs(model: keras.Model) -> dict[str, dict[str, np.ndarray]]:
    """The inputs of the warmup request of each serving signature, keyed by signature name.

    ``serving_default``: one image of the model's input size (256 x 256 by default),
    float32 ``(1, H, W, 1)`` in [0, 1]; ``serving_bytes``: one small 8-bit grayscale PNG
    (48 x 64), a string ``(1,)``. Both are seeded noise, so that an export is reproducible:
    the runtime's cost does not depend on the pixel values.
    """
    height, width = int(model.input.shape[1]), int(model.input.shape[2])
    rng = np.random.default_rng(0)
    image = rng.random((1, height, width, 1), dtype=np.float32)
    pixels = rng.integers(0, 256, size=(*_WARMUP_PNG_SIZE, 1), dtype=np.uint8)
    png = tf.io.encode_png(pixels).numpy()
    return {
        DEFAULT_SIGNATURE: {"image": image},
        BYTES_SIGNATURE: {"image_bytes": np.array([png], dtype=object)},
    }


def write_warmup_requests(model: keras.Model, path) -> list[str]:
    """Write TF Serving's warmup file for ``model``'s export: one record per signature.

    Each record is a ``tensorflow.serving.PredictionLog`` holding a ``predict_log`` whose
    ``PredictRequest`` names the signature (``model_spec.signature_name``) and carries the
    inputs of :func:`warmup_inputs`. ``model_spec.name`` is left empty: the server, not the
    export, chooses the model's name, and warmup does not use it.

    Args:
        model: the exported model.
        path: the file to write (``<version>/assets.extra/tf_serving_warmup_requests``).

    Returns:
        The signature names, in the file's order.

    Raises:
        ModuleNotFoundError: ``tensorflow-serving-api`` (the PredictionLog proto) is not
            installed.
    """
    from keras_runet import serving

    records = [
        serving.make_prediction_log(
            serving.make_predict_request(inputs, model_name="", signature_name=name)
        )
        for name, inputs in warmup_inputs(model).items()
    ]
    with tf.io.TFRecordWriter(str(path)) as writer:
        for record in records:
            writer.write(record.SerializeToString())
    return [r.predict_log.request.model_spec.signature_name for r in records]


def _write_warmup(model: keras.Model, extra: Path) -> None:
    try:
        names = write_warmup_requests(model, extra / WARMUP_NAME)
    except ModuleNotFoundError as err:
        if not (err.name or "").startswith("tensorflow_serving"):
            raise
        logger.warning(
            "no %s/%s written: TF Serving's PredictionLog proto needs tensorflow-serving-api "
            "(%s); the version serves the same, but its first request pays the runtime's lazy "
            "initialisation (pip install tensorflow-serving-api, then export again)",
            EXTRA_DIR,
            WARMUP_NAME,
            err,
        )
        return
    logger.info("warmup requests for %s in %s/%s", ", ".join(names), EXTRA_DIR, WARMUP_NAME)


def next_version(export_base) -> int:
    """One more than the highest numbered version folder in ``export_base`` (1 if none)."""
    base = Path(export_base)
    versions = (
        [int(p.name) for p in base.iterdir() if p.is_dir() and p.name.isdigit()]
        if (base.is_dir())
        else []
    )
    return max(versions, default=0) + 1


def _write_savedmodel(model: keras.Model, path: Path) -> None:
    archive = keras.export.ExportArchive()
    # No archive.track(model) on TensorFlow: the archive already saves every variable the
    # endpoints use, and tracking the model as well stores each weight twice (Keras 3.15: the
    # Keras variables and their tf.Variables under two names), doubling variables/. On JAX
    # the archive must track it (_forward_pass), and holds each weight once.
    for name, fn in make_serving_functions(model, archive=archive).items():
        archive.add_endpoint(name, fn)
    archive.write_out(str(path), verbose=False)


def export_model(
    model,
    export_base,
    *,
    version: int | None = None,
    overwrite: bool = False,
    training_data=None,
    source=None,
) -> Path:
    """Export ``model`` to ``export_base/<version>/`` for TF Serving, atomically.

    The version folder holds the SavedModel, ``assets.extra/model.keras``, the metadata
    (``assets.extra/runet_export.json``) and TF Serving's warmup requests
    (``assets.extra/tf_serving_warmup_requests``, :func:`write_warmup_requests`; left out,
    with one log warning, when ``tensorflow-serving-api`` is not installed), all written
    before the folder is renamed into place.

    Args:
        model: a ``keras.Model`` following the keras-runet contract, or the path of a
            ``.keras`` file (loaded in safe mode, copied byte for byte into the export).
        export_base: the model base path TF Serving watches (created if missing).
        version: the version number (a positive integer); None: the next free one.
        overwrite: replace an existing version (the old one is moved aside first and
            deleted once the new one is in place).
        training_data: recorded in the metadata (see :func:`export_metadata`).
        source: for an already loaded ``model``, the ``.keras`` file it came from (copied
            into the export instead of saving the model again).

    Returns:
        The version folder.

    Raises:
        ExportError: a bad version, an existing version without ``overwrite``, or a model
            that cannot be loaded or does not follow the contract.
    """
    if not isinstance(model, keras.Model):
        source = Path(model)
        model = load_model(source)
    else:
        source = Path(source) if source is not None else None
        _check_contract(model, model.name)
    base = Path(export_base)
    if base.exists() and not base.is_dir():
        raise ExportError(f"export base {str(base)!r} exists and is not a folder")
    if version is None:
        version = next_version(base)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ExportError(f"version must be a positive integer, got {version!r}")
    final = base / str(version)
    if final.exists() and not overwrite:
        raise ExportError(
            f"version {version} already exists in {str(base)!r}; choose another version or "
            "pass overwrite=True (--overwrite)"
        )
    base.mkdir(parents=True, exist_ok=True)
    tmp = base / f"{_TMP_PREFIX}{version}-{secrets.token_hex(4)}"
    try:
        logger.info("exporting %s to %s (via %s)", model.name, final, tmp.name)
        _write_savedmodel(model, tmp)
        extra = tmp / EXTRA_DIR
        extra.mkdir(exist_ok=True)
        if source is not None and source.name.lower().endswith(".keras"):
            shutil.copyfile(source, extra / KERAS_NAME)
        else:
            model.save(extra / KERAS_NAME)
        metadata = export_metadata(model, training_data=training_data, source=source)
        metadata["version"] = version
        (extra / METADATA_NAME).write_text(json.dumps(metadata, indent=2) + "\n")
        _write_warmup(model, extra)
        _move_into_place(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.info("exported version %d: %s", version, final)
    return final


def _move_into_place(tmp: Path, final: Path) -> None:
    old = None
    if final.exists():
        old = final.with_name(f"{_TMP_PREFIX}old-{final.name}-{secrets.token_hex(4)}")
        os.rename(final, old)
    try:
        os.rename(tmp, final)
    except BaseException:
        if old is not None:
            os.rename(old, final)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def stale_temporaries(export_base) -> list[Path]:
    """Temporary folders of interrupted exports (``.tmp-*``) left in ``export_base``."""
    base = Path(export_base)
    if not base.is_dir():
        return []
    return sorted(p for p in base.iterdir() if re.match(re.escape(_TMP_PREFIX), p.name))
