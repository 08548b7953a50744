"""TF Serving's request and reply formats, without a server.

TF Serving turns a REST body or a gRPC ``PredictRequest`` into one call of a SavedModel
signature and the signature's outputs into a reply. This module does the same, so that an
export can be checked the way the server uses it (tests, docs/serving.md) and clients can
build requests and read replies:

- REST (``POST /v1/models/<name>[/versions/<v>]:predict``):
  :func:`rest_request_to_inputs` reads a body in the row format
  (``{"signature_name": ..., "instances": [...]}``) or the columnar format
  (``{"inputs": {...}}``), decoding ``{"b64": ...}`` values to bytes;
  :func:`rest_response` builds the reply (``{"predictions": [...]}`` for a row request,
  ``{"outputs": {...}}`` for a columnar one), base64-encoding outputs whose name ends with
  ``_bytes`` as the server does.
- gRPC: :func:`predict_request_to_inputs` and :func:`predict_response` convert
  ``tensorflow_serving.apis.predict_pb2`` messages (install ``tensorflow-serving-api``).
- :func:`rest_predict` and :func:`grpc_predict` do the whole round trip on a loaded
  SavedModel (``tf.saved_model.load(version_dir)``): request in, reply out.
- Warmup (TF Serving's "SavedModel Warmup"): :func:`make_prediction_log` wraps a
  ``PredictRequest`` in the ``PredictionLog`` record that
  ``assets.extra/tf_serving_warmup_requests`` holds (written by
  :func:`keras_runet.export.write_warmup_requests`), :func:`read_warmup_requests` reads
  such a file back as ``(signature_name, inputs)`` pairs.
- :func:`call_signature` calls a loaded signature (``tf.saved_model.load(path)
  .signatures[name]``) with numpy / list inputs, checking names, dtypes and ranks the way
  the server does, and returns numpy outputs.

The REST helpers are plain Python and numpy; TensorFlow is imported only by the gRPC and
signature helpers.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Mapping, Sequence

import numpy as np

__all__ = [
    "ServingRequestError",
    "call_signature",
    "make_predict_request",
    "make_prediction_log",
    "predict_request_to_inputs",
    "predict_response",
    "grpc_predict",
    "read_warmup_requests",
    "rest_predict",
    "rest_request_to_inputs",
    "rest_response",
]

logger = logging.getLogger(__name__)

DEFAULT_SIGNATURE = "serving_default"


class ServingRequestError(ValueError):
    """A request TF Serving would reject (HTTP 400 / INVALID_ARGUMENT), with the reason."""


def _decode_b64(value):
    """Replace every ``{"b64": "..."}`` in a nested JSON value by its bytes."""
    if isinstance(value, Mapping):
        if set(value) == {"b64"}:
            try:
                return base64.b64decode(value["b64"], validate=True)
            except (ValueError, TypeError) as err:
                raise ServingRequestError(f"invalid base64 in {{'b64': ...}}: {err}") from err
        raise ServingRequestError(
            f"an object inside a tensor value must be {{'b64': ...}}, got keys {sorted(value)}"
        )
    if isinstance(value, list):
        return [_decode_b64(v) for v in value]
    return value


def _to_array(name: str, value) -> np.ndarray:
    value = _decode_b64(value)
    try:
        arr = np.asarray(value, dtype=object if _contains_bytes(value) else None)
    except ValueError as err:  # ragged nesting
        raise ServingRequestError(f"input {name!r} is not a rectangular tensor: {err}") from err
    if arr.dtype == object and not _contains_bytes(value):
        raise ServingRequestError(f"input {name!r} is not a rectangular tensor of numbers")
    return arr


def _contains_bytes(value) -> bool:
    while isinstance(value, list) and value:
        value = value[0]
    return isinstance(value, bytes)


def rest_request_to_inputs(body, input_names: Sequence[str] | None = None):
    """Turn a TF Serving REST predict body into signature inputs.

    Args:
        body: the JSON body (``str`` / ``bytes``) or its parsed ``dict``.
        input_names: the signature's input names; needed to read a row-format request
            whose instances are bare values (allowed when the signature has one input) or a
            columnar request whose ``inputs`` is a bare value.

    Returns:
        ``(signature_name, inputs, request_format)``: the signature to call
        (``serving_default`` unless the body names one), a dict of numpy arrays (strings
        as an object array of ``bytes``), and ``"row"`` or ``"columnar"``.

    Raises:
        ServingRequestError: a body TF Serving would answer with HTTP 400.
    """
    if isinstance(body, bytes | str):
        try:
            body = json.loads(body)
        except json.JSONDecodeError as err:
            raise ServingRequestError(f"request body is not JSON: {err}") from err
    if not isinstance(body, Mapping):
        raise ServingRequestError(f"request body must be a JSON object, got {type(body).__name__}")
    signature = body.get("signature_name", DEFAULT_SIGNATURE)
    has_rows, has_cols = "instances" in body, "inputs" in body
    if has_rows == has_cols:
        raise ServingRequestError(
            "request body must have exactly one of 'instances' (row format) or 'inputs' "
            "(columnar format)"
        )
    names = list(input_names) if input_names is not None else None
    if has_rows:
        instances = body["instances"]
        if not isinstance(instances, list) or not instances:
            raise ServingRequestError("'instances' must be a non-empty list")
        named = [isinstance(i, Mapping) and set(i) != {"b64"} for i in instances]
        if all(named):
            keys = set(instances[0])
            for i, inst in enumerate(instances):
                if set(inst) != keys:
                    raise ServingRequestError(
                        f"instance {i} has inputs {sorted(inst)}, instance 0 has {sorted(keys)}"
                    )
            columns = {k: [inst[k] for inst in instances] for k in sorted(keys)}
        elif not any(named):
            if names is not None and len(names) != 1:
                raise ServingRequestError(
                    f"instances must be objects naming the inputs {names}; bare values are "
                    "only allowed for a signature with one input"
                )
            columns = {names[0] if names else "inputs": list(instances)}
        else:
            raise ServingRequestError("instances mix named objects and bare values")
        fmt = "row"
    else:
        inputs = body["inputs"]
        if isinstance(inputs, Mapping) and set(inputs) != {"b64"}:
            columns = dict(inputs)
        else:
            if names is not None and len(names) != 1:
                raise ServingRequestError(f"'inputs' must be an object naming the inputs {names}")
            columns = {names[0] if names else "inputs": inputs}
        fmt = "columnar"
    arrays = {name: _to_array(name, value) for name, value in columns.items()}
    if fmt == "row":
        sizes = {name: a.shape[0] for name, a in arrays.items()}
        if len(set(sizes.values())) > 1:
            raise ServingRequestError(f"inputs have different batch sizes: {sizes}")
    return signature, arrays, fmt


def _json_value(name: str, array: np.ndarray):
    array = np.asarray(array)
    if array.dtype == object or array.dtype.kind == "S":
        flat = [
            {"b64": base64.b64encode(v).decode("ascii")}
            if name.endswith("_bytes")
            else (v.decode("utf-8") if isinstance(v, bytes) else v)
            for v in array.reshape(-1)
        ]
        return np.array(flat, dtype=object).reshape(array.shape).tolist()
    if array.dtype.kind == "f":
        return array.astype(np.float64).tolist()
    return array.tolist()


def rest_response(outputs: Mapping[str, np.ndarray], request_format: str = "row") -> dict:
    """Build TF Serving's REST reply from a signature's outputs.

    Args:
        outputs: output name -> array (batch first).
        request_format: ``"row"`` (reply ``{"predictions": [...]}``: one entry per
            instance, an object of named outputs, or the bare value when there is one
            output) or ``"columnar"`` (reply ``{"outputs": {...}}``, or the bare value for
            one output).

    Returns:
        The reply as a dict (``json.dumps`` it to send).
    """
    arrays = {k: np.asarray(v) for k, v in outputs.items()}
    if request_format == "columnar":
        values = {k: _json_value(k, a) for k, a in arrays.items()}
        return {"outputs": next(iter(values.values())) if len(values) == 1 else values}
    if request_format != "row":
        raise ValueError(f"request_format must be 'row' or 'columnar', got {request_format!r}")
    batch = {k: (a.shape[0] if a.ndim else None) for k, a in arrays.items()}
    if None in batch.values() or len(set(batch.values())) != 1:
        raise ServingRequestError(
            f"outputs need one batch size to be returned as rows, got {batch}; use the "
            "columnar format"
        )
    values = {k: _json_value(k, a) for k, a in arrays.items()}
    n = next(iter(batch.values()))
    if len(values) == 1:
        return {"predictions": next(iter(values.values()))}
    return {"predictions": [{k: v[i] for k, v in values.items()} for i in range(n)]}


def call_signature(signature, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Call a loaded SavedModel signature with numpy inputs, as TF Serving would.

    Args:
        signature: ``tf.saved_model.load(path).signatures[name]``.
        inputs: input name -> array or nested list (strings as ``bytes``).

    Returns:
        Output name -> numpy array.

    Raises:
        ServingRequestError: missing or unknown input names, or an input whose rank or
            dtype does not fit the signature.
    """
    import tensorflow as tf

    specs = signature.structured_input_signature[1]
    missing = sorted(set(specs) - set(inputs))
    unknown = sorted(set(inputs) - set(specs))
    if missing or unknown:
        raise ServingRequestError(
            f"signature inputs are {sorted(specs)}; missing {missing}, unknown {unknown}"
        )
    tensors = {}
    for name, spec in specs.items():
        value = inputs[name]
        try:
            if spec.dtype == tf.string:
                # Not .astype(bytes): numpy's fixed-width bytes drop trailing NUL bytes,
                # which corrupts binary payloads such as encoded images.
                tensor = tf.constant(np.asarray(value, dtype=object), dtype=tf.string)
            else:
                arr = np.asarray(value)
                if arr.dtype == object or arr.dtype.kind in "SU":
                    raise ServingRequestError(
                        f"input {name!r} must be numbers ({spec.dtype.name}), got strings"
                    )
                tensor = tf.constant(arr.astype(spec.dtype.as_numpy_dtype))
        except (TypeError, ValueError) as err:
            if isinstance(err, ServingRequestError):
                raise
            raise ServingRequestError(f"input {name!r}: {err}") from err
        if not spec.shape.is_compatible_with(tensor.shape):
            raise ServingRequestError(
                f"input {name!r} has shape {tuple(tensor.shape)}, the signature expects "
                f"{spec.shape.as_list()} (None: any size)"
            )
        tensors[name] = tensor
    try:
        outputs = signature(**tensors)
    except tf.errors.InvalidArgumentError as err:
        raise ServingRequestError(_error_reason(err.message)) from err
    return {k: v.numpy() for k, v in outputs.items()}


def _error_reason(message: str) -> str:
    # TF wraps the op's message in "Graph execution error: Detected at node ... <reason>
    # [[{{node ...}}]]": keep the reason, as TF Serving's reply does.
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    noise = ("Graph execution error", "Detected at node", "<stack traces", "[[", "File ")
    reasons = [line for line in lines if not line.startswith(noise)]
    return reasons[-1] if reasons else (lines[0] if lines else "invalid argument")


def make_predict_request(
    inputs: Mapping[str, np.ndarray],
    model_name: str = "runet",
    signature_name: str = DEFAULT_SIGNATURE,
    version: int | None = None,
):
    """A gRPC ``PredictRequest`` (tensorflow-serving-api's proto) for ``inputs``."""
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature_name
    if version is not None:
        request.model_spec.version.value = int(version)
    for name, value in inputs.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
    return request


def make_prediction_log(request):
    """The ``PredictionLog`` record (tensorflow-serving-api's proto) of a ``PredictRequest``:
    one record of TF Serving's warmup file, a ``predict_log`` without a response."""
    from tensorflow_serving.apis import prediction_log_pb2

    return prediction_log_pb2.PredictionLog(
        predict_log=prediction_log_pb2.PredictLog(request=request)
    )


def read_warmup_requests(path) -> list[tuple[str, dict[str, np.ndarray]]]:
    """Read a TF Serving warmup file (TFRecord of ``PredictionLog``): one
    ``(signature_name, inputs)`` pair per record, in the file's order, as the server replays
    them. Records that are not predict logs raise :class:`ServingRequestError`."""
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    requests = []
    for i, record in enumerate(tf.data.TFRecordDataset(str(path)).as_numpy_iterator()):
        log = prediction_log_pb2.PredictionLog.FromString(record)
        if log.WhichOneof("log_type") != "predict_log":
            raise ServingRequestError(
                f"{str(path)!r}: record {i} is a {log.WhichOneof('log_type')}, not a predict_log"
            )
        requests.append(predict_request_to_inputs(log.predict_log.request))
    return requests


def predict_request_to_inputs(request) -> tuple[str, dict[str, np.ndarray]]:
    """Read a gRPC ``PredictRequest``: ``(signature_name, inputs as numpy arrays)``.

    An empty ``signature_name`` means ``serving_default``, as for the server.
    ``output_filter``, when set, is honoured by :func:`predict_response`.
    """
    import tensorflow as tf

    signature = request.model_spec.signature_name or DEFAULT_SIGNATURE
    inputs = {name: tf.make_ndarray(proto) for name, proto in request.inputs.items()}
    return signature, inputs


def predict_response(
    outputs: Mapping[str, np.ndarray],
    request=None,
    *,
    model_name: str | None = None,
    version: int | None = None,
):
    """Build a gRPC ``PredictResponse`` from a signature's outputs.

    Args:
        outputs: output name -> array.
        request: the ``PredictRequest`` answered: its model spec is echoed and its
            ``output_filter`` (if any) selects the outputs; unknown names raise
            :class:`ServingRequestError`.
        model_name, version: model spec of the reply (default: the request's).

    Returns:
        A ``tensorflow_serving.apis.predict_pb2.PredictResponse``.
    """
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    response = predict_pb2.PredictResponse()
    names = list(outputs)
    if request is not None:
        response.model_spec.CopyFrom(request.model_spec)
        if not response.model_spec.signature_name:
            response.model_spec.signature_name = DEFAULT_SIGNATURE
        if request.output_filter:
            unknown = sorted(set(request.output_filter) - set(outputs))
            if unknown:
                raise ServingRequestError(
                    f"output_filter names {unknown}, outputs are {sorted(outputs)}"
                )
            names = list(request.output_filter)
    if model_name is not None:
        response.model_spec.name = model_name
    if version is not None:
        response.model_spec.version.value = int(version)
    for name in names:
        response.outputs[name].CopyFrom(tf.make_tensor_proto(np.asarray(outputs[name])))
    return response


def _signature(loaded, name: str):
    try:
        return loaded.signatures[name]
    except KeyError:
        raise ServingRequestError(
            f"serving signature {name!r} not found; the model has {sorted(loaded.signatures)}"
        ) from None


def rest_predict(loaded, body) -> dict:
    """Answer a REST predict body with a loaded SavedModel, as TF Serving does.

    Args:
        loaded: ``tf.saved_model.load(version_dir)``.
        body: the JSON body (``str`` / ``bytes`` / ``dict``), row or columnar format.

    Returns:
        The reply as a dict: ``{"predictions": [...]}`` or ``{"outputs": {...}}``.

    Raises:
        ServingRequestError: what the server answers with HTTP 400 (unknown signature,
            wrong input names, shapes or dtypes, NaN pixels...).
    """
    if isinstance(body, bytes | str):
        try:
            body = json.loads(body)
        except json.JSONDecodeError as err:
            raise ServingRequestError(f"request body is not JSON: {err}") from err
    name = body.get("signature_name", DEFAULT_SIGNATURE) if isinstance(body, Mapping) else None
    signature = _signature(loaded, name or DEFAULT_SIGNATURE)
    input_names = list(signature.structured_input_signature[1])
    _, inputs, request_format = rest_request_to_inputs(body, input_names)
    return rest_response(call_signature(signature, inputs), request_format)


def grpc_predict(loaded, request):
    """Answer a gRPC ``PredictRequest`` with a loaded SavedModel: a ``PredictResponse``."""
    name, inputs = predict_request_to_inputs(request)
    outputs = call_signature(_signature(loaded, name), inputs)
    return predict_response(outputs, request)
