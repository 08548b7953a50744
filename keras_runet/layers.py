"""The ROI-attention layers of RU-Net (Refining U-Net, IEEE IUS 2019).

RU-Net turns the first U-Net's segmentation into a region of interest, differentiably:

1. :class:`ForegroundProbability` sums the softmax probabilities of the foreground classes.
2. :class:`ParametricSigmoid` (eq. 1 of the paper, slope 100, shift a hyper-parameter)
   binarises it, with a gradient.
3. :class:`BoxDilation` convolves it with a fixed, normalised ``dil x dil`` box kernel:
   every pixel within the box of a mask pixel receives a share of its energy
   (:class:`DiskDilation`: a disk of diameter ``dil`` instead, ``kernel="disk"``).
4. A second :class:`ParametricSigmoid` with shift 0.01 binarises it again, recovering
   the energy the averaging spread thin: the result is the mask dilated by the box.

:class:`RoiAttention` chains the four and multiplies the image by the dilated mask.

All layers use ``keras.ops`` only (TensorFlow, JAX and PyTorch backends), have no
trainable weights, are registered with Keras (``package="keras_runet"``) and round-trip
through ``get_config``. They compute in float32 even under a mixed-precision policy:
a 0.01 threshold on box averages (1 / dil**2 is 0.0011 for dil = 30) is below bfloat16's
resolution near 1 and must not be rounded away.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
from keras import ops

_PACKAGE = "keras_runet"


def _float32_policy(kwargs):
    # Attention layers always compute in float32 (see the module docstring); the caller's
    # mixed-precision policy applies to the U-Nets around them.
    kwargs = dict(kwargs)
    kwargs["dtype"] = "float32"
    return kwargs


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ParametricSigmoid(keras.layers.Layer):
    """The parameterised sigmoid of the RU-Net paper, eq. (1).

    ``sig(x) = 1 / (1 + exp(-slope * (x - shift)))``. With the paper's slope of 100 it is a
    differentiable binarisation at ``shift``.

    Args:
        slope: steepness (paper: 100).
        shift: the threshold, where the output is 0.5 (paper: 0.5 or 0.7 for the first
            binarisation, 0.01 after the dilation).
        **kwargs: passed to ``keras.layers.Layer``.

    Example:
        >>> layer = ParametricSigmoid(slope=100.0, shift=0.5)
        >>> float(layer(keras.ops.convert_to_tensor([[0.5]]))[0, 0])
        0.5
    """

    def __init__(self, slope: float = 100.0, shift: float = 0.5, **kwargs):
        super().__init__(**_float32_policy(kwargs))
        self.slope = float(slope)
        self.shift = float(shift)
        self.supports_masking = True

    def call(self, inputs):
        x = ops.cast(inputs, "float32")
        return ops.sigmoid(self.slope * (x - self.shift))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"slope": self.slope, "shift": self.shift})
        return config


class _FixedKernelDilation(keras.layers.Layer):
    """What the dilation layers share: ``dil`` checked, float32, each channel dilated on its
    own (channels folded into the batch, so that one single-channel kernel serves any
    number of channels), ``dil = 1`` the identity. A subclass gives :meth:`_convolve`."""

    def __init__(self, dil: int = 11, **kwargs):
        super().__init__(**_float32_policy(kwargs))
        if int(dil) != dil or int(dil) < 1:
            raise ValueError(f"{type(self).__name__}: dil must be a positive integer, got {dil!r}")
        self.dil = int(dil)

    def _convolve(self, x):
        """``x``: ``(batch, H, W, 1)`` float32 -> the same, convolved ('same' padding)."""
        raise NotImplementedError

    def call(self, inputs):
        x = ops.cast(inputs, "float32")
        if self.dil == 1:
            return x
        channels = x.shape[-1]
        if channels is None:
            raise ValueError(f"{type(self).__name__}: the number of channels must be known")
        if channels != 1:
            shape = ops.shape(x)
            x = ops.transpose(x, (0, 3, 1, 2))
            x = ops.reshape(x, (-1, shape[1], shape[2], 1))
        x = self._convolve(x)
        if channels != 1:
            x = ops.reshape(x, (shape[0], channels, shape[1], shape[2]))
            x = ops.transpose(x, (0, 2, 3, 1))
        return x

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"dil": self.dil})
        return config


@keras.saving.register_keras_serializable(package=_PACKAGE)
class BoxDilation(_FixedKernelDilation):
    """Fixed-kernel dilation: convolution with a normalised ``dil x dil`` box, 'same' padding.

    Each output pixel is the mean of the input over the ``dil x dil`` window around it,
    so the support of the output is the input's support dilated by that window (the
    paper's "dilation rate" ``dil``). Followed by ``ParametricSigmoid(shift=0.01)`` this
    is a differentiable binary dilation. For an even ``dil`` the window follows the
    'same' convention of TensorFlow and Keras: ``(dil - 1) // 2`` pixels before the
    centre, ``dil // 2`` after.

    The box kernel is separable, so the layer runs two 1-D convolutions (``2 * dil``
    multiply-adds per pixel instead of ``dil ** 2``) with exactly the result of the 2-D
    convolution (to float rounding). The kernel is a constant, not a weight: the layer has
    no trainable (or non-trainable) variables.

    Args:
        dil: side of the box in pixels (paper: 11 and 30). ``dil = 1`` is the identity.
        **kwargs: passed to ``keras.layers.Layer``.

    Input shape:
        ``(batch, H, W, C)``; each channel is dilated on its own.
    """

    def _convolve(self, x):
        taps = ops.ones((self.dil,), dtype="float32") / float(self.dil)
        x = ops.conv(x, ops.reshape(taps, (self.dil, 1, 1, 1)), padding="same")
        return ops.conv(x, ops.reshape(taps, (1, self.dil, 1, 1)), padding="same")


def disk_kernel(dil: int) -> np.ndarray:
    """The ``dil x dil`` 0/1 footprint of a disk of diameter ``dil``: the pixels whose
    centres lie within ``dil / 2`` of the kernel's centre (``(dil - 1) / 2`` in both axes).

    It spans ``dil`` pixels along the rows and the columns, as the box does, and is the box
    for ``dil <= 3``; the same footprint as ``skimage.draw.disk`` of that centre and radius.

    >>> disk_kernel(5).astype(int)
    array([[0, 1, 1, 1, 0],
           [1, 1, 1, 1, 1],
           [1, 1, 1, 1, 1],
           [1, 1, 1, 1, 1],
           [0, 1, 1, 1, 0]])
    """
    dil = int(dil)
    offsets = np.arange(dil) - (dil - 1) / 2
    return (offsets[:, None] ** 2 + offsets[None, :] ** 2) <= (dil / 2) ** 2


@keras.saving.register_keras_serializable(package=_PACKAGE)
class DiskDilation(_FixedKernelDilation):
    """Fixed-kernel dilation by a disk: convolution with the normalised footprint of
    :func:`disk_kernel` (diameter ``dil``), 'same' padding.

    As :class:`BoxDilation`, with a disk instead of the box: the support of the output is
    the input's support dilated by the disk, so the reach beyond a boundary is the same in
    every direction (the box reaches ``sqrt(2)`` times further along its diagonals). The
    kernel is a constant (``dil ** 2`` multiply-adds per pixel: not separable); the layer
    has no variables. An even ``dil`` follows the 'same' convention of :class:`BoxDilation`.

    Args:
        dil: diameter of the disk in pixels. ``dil = 1`` is the identity.
        **kwargs: passed to ``keras.layers.Layer``.

    Input shape:
        ``(batch, H, W, C)``; each channel is dilated on its own.
    """

    def __init__(self, dil: int = 11, **kwargs):
        super().__init__(dil, **kwargs)
        footprint = disk_kernel(self.dil).astype("float32")
        self._kernel = (footprint / footprint.sum()).reshape(self.dil, self.dil, 1, 1)

    def _convolve(self, x):
        return ops.conv(x, ops.convert_to_tensor(self._kernel), padding="same")


#: The dilation layer of each kernel shape (``TrainConfig.roi_kernel``).
DILATION_LAYERS = {"box": BoxDilation, "disk": DiskDilation}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ForegroundProbability(keras.layers.Layer):
    """Sum of the softmax probabilities of the foreground classes: ``(B, H, W, C) -> (B, H, W, 1)``.

    Args:
        foreground_classes: indices of the classes that form the region of interest.
            ``None`` (default) means every class but 0 (the background).
        **kwargs: passed to ``keras.layers.Layer``.
    """

    def __init__(self, foreground_classes: Sequence[int] | None = None, **kwargs):
        super().__init__(**_float32_policy(kwargs))
        self.foreground_classes = (
            None if foreground_classes is None else [int(c) for c in foreground_classes]
        )
        if self.foreground_classes is not None and not self.foreground_classes:
            raise ValueError("ForegroundProbability: foreground_classes must not be empty")

    def build(self, input_shape):
        channels = input_shape[-1]
        classes = self.foreground_classes
        if classes is None:
            classes = list(range(1, channels))
        bad = [c for c in classes if not 0 <= c < channels]
        if bad:
            raise ValueError(
                f"ForegroundProbability: classes {bad} out of range for {channels} channels"
            )
        self._classes = classes

    def call(self, inputs):
        probs = ops.cast(inputs, "float32")
        selected = ops.take(probs, self._classes, axis=-1)
        return ops.sum(selected, axis=-1, keepdims=True)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], 1)

    def get_config(self):
        config = super().get_config()
        config.update({"foreground_classes": self.foreground_classes})
        return config


@keras.saving.register_keras_serializable(package=_PACKAGE)
class RoiAttention(keras.layers.Layer):
    """RU-Net's differentiable hard attention: the image masked by the dilated first segmentation.

    ``image * sig_0.01(dilate_dil(sig_shift(foreground(probabilities))))``, with the slope of
    both sigmoids at ``slope`` and ``dilate`` the box (or disk) dilation of ``kernel``.

    Note what eq. (1) implies with the paper's values (slope 100, second shift 0.01): far
    from the region of interest the box mean is 0 and the mask is ``sig(-1) = 0.27``, so
    the background of the image is attenuated to 27 %, not zeroed; inside the dilated ROI
    the mask is 1 (to 1e-4) except on its outermost ring, where the box sees few ROI pixels.
    Raise ``slope`` for a harder mask.

    Args:
        dil: side of the dilation box (paper: 11, 30).
        shift: threshold of the first binarisation (paper: 0.5, 0.7).
        slope: steepness of both sigmoids (paper: 100).
        dilated_shift: threshold of the second binarisation (paper: 0.01).
        foreground_classes: classes forming the region of interest (default: all but 0).
        kernel: the dilation kernel, ``"box"`` (side ``dil``; the default, what models
            saved before this option had) or ``"disk"`` (diameter ``dil``).
        **kwargs: passed to ``keras.layers.Layer``.

    Call arguments:
        inputs: a list ``[image, probabilities]``: the image ``(B, H, W, Ci)`` and the first
            U-Net's softmax ``(B, H, W, C)``.
        return_mask: also return the dilated mask ``(B, H, W, 1)``.
    """

    def __init__(
        self,
        dil: int = 11,
        shift: float = 0.5,
        slope: float = 100.0,
        dilated_shift: float = 0.01,
        foreground_classes: Sequence[int] | None = None,
        kernel: str = "box",
        **kwargs,
    ):
        super().__init__(**_float32_policy(kwargs))
        if kernel not in DILATION_LAYERS:
            raise ValueError(
                f"RoiAttention: kernel must be {' or '.join(DILATION_LAYERS)}, got {kernel!r}"
            )
        self.kernel = kernel
        self.dil = int(dil)
        self.shift = float(shift)
        self.slope = float(slope)
        self.dilated_shift = float(dilated_shift)
        self.foreground_classes = (
            None if foreground_classes is None else [int(c) for c in foreground_classes]
        )
        self.foreground = ForegroundProbability(self.foreground_classes, name="foreground")
        self.binarise = ParametricSigmoid(self.slope, self.shift, name="binarise")
        self.dilate = DILATION_LAYERS[kernel](self.dil, name="dilate")
        self.rebinarise = ParametricSigmoid(self.slope, self.dilated_shift, name="rebinarise")

    def build(self, input_shape):
        image_shape, probs_shape = input_shape
        self.foreground.build(probs_shape)
        mask_shape = (*probs_shape[:-1], 1)
        self.binarise.build(mask_shape)
        self.dilate.build(mask_shape)
        self.rebinarise.build(mask_shape)

    def call(self, inputs, return_mask=False):
        image, probabilities = inputs
        mask = self.rebinarise(self.dilate(self.binarise(self.foreground(probabilities))))
        masked = ops.cast(image, "float32") * mask
        if return_mask:
            return masked, mask
        return masked

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "dil": self.dil,
                "shift": self.shift,
                "slope": self.slope,
                "dilated_shift": self.dilated_shift,
                "foreground_classes": self.foreground_classes,
                "kernel": self.kernel,
            }
        )
        return config
