"""The three models of the RU-Net paper: U-Net 1, SHG and RU-Net (Keras 3 functional models).

Every model takes ``image`` ``(batch, H, W, 1)`` float32 in [0, 1] and returns a dict whose
``segmentation`` entry is the final softmax over the 4 CAMUS classes (0 background, 1 LV
cavity, 2 myocardium, 3 left atrium), so that training, evaluation, tuning and export treat
them alike. Intermediate outputs have their own keys: RU-Net's first U-Net under ``coarse``,
SHG's first two hourglasses under ``stage1`` and ``stage2``. Every output is a float32 softmax,
also under a mixed-precision policy.

Architectures:

- **U-Net 1** (Leclerc et al., IEEE TMI 2019): five encoder levels of two 3x3 conv + ReLU
  (32, 32, 64, 128, 128 filters) each followed by 2x2 max-pooling, a bottom level of 128 at
  1/32 of the input, five decoder levels (2x2 upsampling, skip concatenation, two 3x3 convs of
  128, 128, 64, 32, 16), 1x1 conv to the classes, softmax. 1.98 M parameters.
- **SHG**: three cascaded *light* U-Net 1 (the bottom level and the first two decoder levels
  narrowed from 128 to 96 filters: 1.52 M each) with deep supervision; stages 2 and 3 take the
  image concatenated with the previous stage's softmax. 4.58 M parameters (paper: 4.5 M).
- **RU-Net**: U-Net 1 -> :class:`~keras_runet.layers.RoiAttention` (foreground probability,
  parametric sigmoid at ``shift``, ``dil x dil`` box (or disk) dilation, parametric sigmoid at 0.01,
  times the image) -> a second U-Net 1 on the masked image. 3.95 M parameters (paper: 3.9 M).

Because U-Net 1 pools five times, H and W must be multiples of 32 (or None for a fully
convolutional model); anything else raises a ValueError naming the size.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras

from keras_runet.layers import RoiAttention
from keras_runet.losses import MultiClassDiceLoss
from keras_runet.metrics import training_metrics
from tfds_camus.vocabulary import MODELS

UNET1_ENCODER = (32, 32, 64, 128, 128)
UNET1_BOTTOM = 128
UNET1_DECODER = (128, 128, 64, 32, 16)
# SHG's light U-Net: the deepest 128-filter levels narrowed to 96 (see the module doc).
LIGHT_BOTTOM = 96
LIGHT_DECODER = (96, 96, 64, 32, 16)

MODEL_NAMES = MODELS  # "unet1", "shg", "runet" (tfds_camus.vocabulary.MODELS)
MIXED_POLICIES = ("mixed_bfloat16", "mixed_float16")


def _check_input_shape(input_shape, levels: int = 5):
    if len(input_shape) != 3:
        raise ValueError(f"input_shape must be (H, W, channels), got {tuple(input_shape)}")
    factor = 2**levels
    for axis, size in zip(("height", "width"), input_shape[:2], strict=True):
        if size is not None and (int(size) <= 0 or int(size) % factor):
            raise ValueError(
                f"input {axis} {size} is not a multiple of {factor} (U-Net 1 pools {levels} "
                f"times); input_shape was {tuple(input_shape)}; resize to e.g. 256 x 256"
            )


def _check_dtype(dtype):
    if dtype is None:
        return None
    name = dtype if isinstance(dtype, str) else getattr(dtype, "name", str(dtype))
    if name not in ("float32", *MIXED_POLICIES):
        raise ValueError(f"dtype must be float32, mixed_bfloat16 or mixed_float16, got {name!r}")
    return name


def _scaled(filters: Sequence[int], width: float) -> list[int]:
    return [max(4, int(round(f * width))) for f in filters]


def unet_block(
    x,
    *,
    num_classes: int,
    encoder_filters: Sequence[int],
    bottom_filters: int,
    decoder_filters: Sequence[int],
    prefix: str,
    output_name: str,
    dtype=None,
):
    """Append a U-Net (U-Net 1 topology) to tensor ``x``; return its float32 softmax."""

    def conv(t, filters, name):
        return keras.layers.Conv2D(
            filters,
            3,
            padding="same",
            activation="relu",
            # Keras's default (Glorot uniform): He-normal made SHG's third hourglass collapse
            # to all-background in overfitting tests; Glorot trains all three models.
            kernel_initializer="glorot_uniform",
            name=f"{prefix}_{name}",
            dtype=dtype,
        )(t)

    skips = []
    for i, filters in enumerate(encoder_filters, start=1):
        x = conv(x, filters, f"enc{i}_conv1")
        x = conv(x, filters, f"enc{i}_conv2")
        skips.append(x)
        x = keras.layers.MaxPooling2D(2, name=f"{prefix}_enc{i}_pool", dtype=dtype)(x)
    x = conv(x, bottom_filters, "bottom_conv1")
    x = conv(x, bottom_filters, "bottom_conv2")
    for i, (filters, skip) in enumerate(
        zip(decoder_filters, reversed(skips), strict=True), start=1
    ):
        x = keras.layers.UpSampling2D(2, name=f"{prefix}_dec{i}_up", dtype=dtype)(x)
        x = keras.layers.Concatenate(name=f"{prefix}_dec{i}_concat", dtype=dtype)([x, skip])
        x = conv(x, filters, f"dec{i}_conv1")
        x = conv(x, filters, f"dec{i}_conv2")
    logits = keras.layers.Conv2D(num_classes, 1, name=f"{prefix}_logits", dtype=dtype)(x)
    # The softmax stays in float32 under mixed precision (stable Dice, exportable outputs).
    return keras.layers.Activation("softmax", dtype="float32", name=output_name)(logits)


def _image_input(input_shape):
    input_shape = tuple(input_shape)
    _check_input_shape(input_shape)
    return keras.Input(shape=input_shape, name="image", dtype="float32")


def build_unet1(
    input_shape=(256, 256, 1),
    num_classes: int = 4,
    *,
    width: float = 1.0,
    dtype=None,
    name: str = "unet1",
) -> keras.Model:
    """U-Net 1 of the CAMUS paper (1.98 M parameters at the defaults).

    Args:
        input_shape: ``(H, W, channels)``; H and W multiples of 32 (or None).
        num_classes: classes of the softmax (CAMUS: 4).
        width: multiplies every filter count (e.g. 0.25 for a tiny test model).
        dtype: None / "float32", or a mixed-precision policy ("mixed_bfloat16",
            "mixed_float16"); outputs stay float32.
        name: model name.

    Returns:
        A ``keras.Model`` with input ``image`` and outputs ``{"segmentation": softmax}``.

    Example:
        >>> model = build_unet1()
        >>> model.count_params()
        1976644
    """
    dtype = _check_dtype(dtype)
    image = _image_input(input_shape)
    seg = unet_block(
        image,
        num_classes=num_classes,
        encoder_filters=_scaled(UNET1_ENCODER, width),
        bottom_filters=_scaled([UNET1_BOTTOM], width)[0],
        decoder_filters=_scaled(UNET1_DECODER, width),
        prefix="unet",
        output_name="segmentation",
        dtype=dtype,
    )
    return keras.Model(image, {"segmentation": seg}, name=name)


def build_shg(
    input_shape=(256, 256, 1),
    num_classes: int = 4,
    *,
    stages: int = 3,
    width: float = 1.0,
    dtype=None,
    name: str = "shg",
) -> keras.Model:
    """Stacked hourglass of light U-Nets with deep supervision (4.58 M parameters).

    Stage 1 sees the image; stage k > 1 sees the image concatenated with stage k-1's softmax.
    Every stage's softmax is an output (deep supervision): ``stage1``, ``stage2``, ...,
    and the last one is ``segmentation``.

    Args:
        input_shape, num_classes, width, dtype, name: as for :func:`build_unet1`.
        stages: number of hourglasses (paper: 3).

    Returns:
        A ``keras.Model`` with outputs ``{"stage1", "stage2", "segmentation"}`` (3 stages).
    """
    if stages < 2:
        raise ValueError(f"SHG needs at least 2 stages, got {stages}")
    dtype = _check_dtype(dtype)
    image = _image_input(input_shape)
    outputs = {}
    x = image
    previous = None
    for s in range(1, stages + 1):
        if previous is not None:
            x = keras.layers.Concatenate(name=f"stage{s}_input", dtype="float32")([image, previous])
        out_name = "segmentation" if s == stages else f"stage{s}"
        previous = unet_block(
            x,
            num_classes=num_classes,
            encoder_filters=_scaled(UNET1_ENCODER, width),
            bottom_filters=_scaled([LIGHT_BOTTOM], width)[0],
            decoder_filters=_scaled(LIGHT_DECODER, width),
            prefix=f"stage{s}",
            output_name=out_name,
            dtype=dtype,
        )
        outputs[out_name] = previous
    return keras.Model(image, outputs, name=name)


def build_runet(
    dil: int = 11,
    shift: float = 0.5,
    input_shape=(256, 256, 1),
    num_classes: int = 4,
    *,
    foreground_classes: Sequence[int] | None = None,
    slope: float = 100.0,
    kernel: str = "box",
    width: float = 1.0,
    dtype=None,
    name: str = "runet",
) -> keras.Model:
    """RU-Net: U-Net 1, ROI attention, a second U-Net 1 on the masked image (3.95 M parameters).

    Args:
        dil: side of the box that dilates the first segmentation (paper: 11, 30).
        shift: threshold of the first binarisation (paper: 0.5, 0.7).
        input_shape, num_classes, width, dtype, name: as for :func:`build_unet1`.
        foreground_classes: classes whose probability forms the region of interest
            (default: all but the background).
        slope: slope of both parametric sigmoids (paper: 100).
        kernel: shape of the dilation kernel, ``"box"`` (side ``dil``, the default) or
            ``"disk"`` (diameter ``dil``); see :class:`~keras_runet.layers.RoiAttention`.

    Returns:
        A ``keras.Model`` with outputs ``{"coarse": first softmax, "segmentation": final}``.
        The whole pipeline is differentiable: the loss on ``segmentation`` trains the
        first U-Net too.
    """
    dtype = _check_dtype(dtype)
    image = _image_input(input_shape)
    kwargs = dict(
        num_classes=num_classes,
        encoder_filters=_scaled(UNET1_ENCODER, width),
        bottom_filters=_scaled([UNET1_BOTTOM], width)[0],
        decoder_filters=_scaled(UNET1_DECODER, width),
        dtype=dtype,
    )
    coarse = unet_block(image, prefix="unet1", output_name="coarse", **kwargs)
    masked = RoiAttention(
        dil=dil,
        shift=shift,
        slope=slope,
        foreground_classes=foreground_classes,
        kernel=kernel,
        name="roi_attention",
    )([image, coarse])
    seg = unet_block(masked, prefix="unet2", output_name="segmentation", **kwargs)
    return keras.Model(image, {"coarse": coarse, "segmentation": seg}, name=name)


def roi_mask_means(model: keras.Model, images, coarse):
    """Per-image mean of RU-Net's ROI mask, or None for a model without the attention.

    Args:
        model: any model of this package; only a RU-Net (a ``roi_attention`` layer and a
            ``coarse`` output) has a mask.
        images: the batch the model was given, ``(B, H, W, 1)``.
        coarse: the model's ``coarse`` output for that batch.

    Returns:
        A float64 array ``(B,)``: 1.0 where the mask keeps the whole image (the first
        U-Net predicted no background), ``sig(-1) = 0.27`` where it keeps nothing.
    """
    if "coarse" not in model.output_names:
        return None
    try:
        roi = model.get_layer("roi_attention")
    except ValueError:
        return None
    _, mask = roi([images, coarse], return_mask=True)
    return keras.ops.convert_to_numpy(mask).astype("float64").mean(axis=(1, 2, 3))


_BUILDERS = dict(zip(MODEL_NAMES, (build_unet1, build_shg, build_runet), strict=True))
_UNET1, _SHG, _RUNET = MODEL_NAMES


def build_model(model_name: str, **kwargs) -> keras.Model:
    """Build one of :data:`MODEL_NAMES` (``"unet1"``, ``"shg"``, ``"runet"``) by name.

    The attention's options (``dil``, ``shift``, ``foreground_classes``, ``slope``,
    ``kernel``) are accepted (and ignored) for the models that have no attention, so that
    callers can pass one set of options to every model
    (:meth:`keras_runet.config.TrainConfig.build_kwargs`).
    """
    key = str(model_name).lower().replace("-", "").replace("_", "")
    if key not in _BUILDERS:
        raise ValueError(f"unknown model {model_name!r}; choose from {', '.join(MODEL_NAMES)}")
    if key != _RUNET:
        kwargs.pop("dil", None)
        kwargs.pop("shift", None)
        kwargs.pop("foreground_classes", None)
        kwargs.pop("slope", None)
        kwargs.pop("kernel", None)
    return _BUILDERS[key](**kwargs)


def model_compute_dtype(model: keras.Model) -> str:
    """The compute dtype of the model's convolutions ("float32", "bfloat16" or "float16")."""
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            return layer.compute_dtype
    return "float32"


def compile_model(
    model: keras.Model,
    *,
    learning_rate: float = 1e-3,
    loss_weights: dict[str, float] | None = None,
    include_background: bool = False,
    jit_compile="auto",
    steps_per_execution: int = 1,
) -> keras.Model:
    """Compile any of the three models the paper's way: Dice loss on every output, Adam 1e-3.

    Metrics: every output gets :func:`keras_runet.metrics.training_metrics`, logged as
    ``<output>_dice`` (mean over LV cavity, myocardium, atrium), ``<output>_dice_lv_endo``,
    ``<output>_dice_lv_myo``, ``<output>_dice_la``, with ``val_`` in front on validation data.
    The checkpoint and early-stopping monitor is ``val_segmentation_dice`` for every model.

    Args:
        model: a model from this module (dict outputs).
        learning_rate: Adam's learning rate (paper: 1e-3).
        loss_weights: optional weight per output name (default 1 for each).
        include_background: passed to :class:`~keras_runet.losses.MultiClassDiceLoss`.
        jit_compile: "auto" compiles with XLA except on the TensorFlow backend on CPU,
            where oneDNN's graph is faster than XLA (docs/design.md); or True / False.
        steps_per_execution: as for ``keras.Model.compile``.

    Mixed precision is chosen when building (``dtype="mixed_bfloat16"``); for a
    ``mixed_float16`` model the optimizer is wrapped in a ``LossScaleOptimizer``.
    """
    outputs = list(model.output_names)
    if loss_weights is not None:
        unknown = sorted(set(loss_weights) - set(outputs))
        if unknown:
            raise ValueError(f"loss_weights names {unknown} are not outputs of {outputs}")
        loss_weights = {o: float(loss_weights.get(o, 1.0)) for o in outputs}
    optimizer = keras.optimizers.Adam(learning_rate=learning_rate)
    if model_compute_dtype(model) == "float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    if jit_compile == "auto" and keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        jit_compile = bool(tf.config.list_physical_devices("GPU"))
    model.compile(
        optimizer=optimizer,
        loss={o: MultiClassDiceLoss(include_background=include_background) for o in outputs},
        loss_weights=loss_weights,
        metrics={o: _output_metrics(model, o, len(outputs)) for o in outputs},
        jit_compile=jit_compile,
        steps_per_execution=steps_per_execution,
    )
    return model


def _output_metrics(model: keras.Model, output: str, num_outputs: int):
    metrics = training_metrics(int(model.get_layer(output).output.shape[-1]))
    if num_outputs == 1:
        # Keras drops the output-name prefix when a model has a single output; name the
        # metrics with it so that every model logs `val_segmentation_dice`.
        for metric in metrics:
            metric.name = f"{output}_{metric.name}"
    return metrics
