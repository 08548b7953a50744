"""Floating-point operations per image, counted from a model's layers (not assumed).

The count is the usual one for convolutional networks (and the published 8.0 GFLOP for
U-Net 1 at 256 x 256, docs/design.md): **2 x multiply-adds** of every convolution and dense
layer, per image.

- Keras (:func:`keras_flops_per_image`): ``Conv2D`` ``2 * H_out * W_out * kh * kw * C_in / groups
  * C_out``; ``Conv2DTranspose`` ``2 * H_in * W_in * kh * kw * C_in * C_out``; ``Dense``
  ``2 * C_in * C_out`` per output position. Shapes come from the functional graph, so the
  model must be built with a fixed input size; nested models are walked recursively.
- PyTorch (:func:`torch_flops_per_image`): the same formulas, from forward hooks on every
  ``Conv*d`` / ``ConvTranspose*d`` / ``Linear`` module during one forward pass (for the MONAI
  peer).
- TensorFlow's own profiler (:func:`tf_profiler_flops_per_image`) on the frozen inference graph
  is an independent cross-check (its ``Conv2D`` statistic is the same 2 x multiply-adds).

Biases, activations, pooling, upsampling, concatenation, softmax and RU-Net's ROI attention
(a separable box filter and two sigmoids: ~3 MFLOP per image for ``dil`` 11) are left out:
together they are below 0.5 % of the convolutions for these models.

This module imports Keras (and TensorFlow / PyTorch) only inside the functions that need
them, so that ``benchmarks/gpu_jax.py`` can use :func:`keras_flops_per_image` on the JAX
backend without TensorFlow.
"""

from __future__ import annotations

import math


def _conv_flops(out_hw, kernel, c_in, c_out, groups=1) -> int:
    return 2 * math.prod(out_hw) * math.prod(kernel) * (c_in // groups) * c_out


def keras_flops_per_image(model) -> int:
    """2 x multiply-adds of one image through a Keras functional model.

    Args:
        model: a built functional ``keras.Model`` with a fixed input size (e.g. from
            :func:`keras_runet.build_model`); any batch size.

    Returns:
        FLOPs per image (an int).

    Raises:
        ValueError: a convolution whose spatial output size is unknown (None).

    Example:
        >>> from keras_runet import build_unet1
        >>> round(keras_flops_per_image(build_unet1()) / 1e9, 2)
        8.01
    """
    import keras

    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            total += keras_flops_per_image(layer)
        elif isinstance(layer, keras.layers.Conv2DTranspose):
            in_shape = layer.input.shape
            _require_known(layer, in_shape[1:3])
            c_out = layer.output.shape[-1]
            total += _conv_flops(in_shape[1:3], layer.kernel_size, in_shape[-1], c_out)
        elif isinstance(layer, keras.layers.Conv2D):
            out_shape = layer.output.shape
            _require_known(layer, out_shape[1:3])
            c_in = layer.input.shape[-1]
            groups = getattr(layer, "groups", 1)
            total += _conv_flops(out_shape[1:3], layer.kernel_size, c_in, out_shape[-1], groups)
        elif isinstance(layer, keras.layers.Dense):
            in_shape = layer.input.shape
            positions = math.prod(d for d in in_shape[1:-1]) if len(in_shape) > 2 else 1
            total += 2 * positions * in_shape[-1] * layer.units
    return int(total)


def _require_known(layer, spatial) -> None:
    if any(d is None for d in spatial):
        raise ValueError(
            f"layer {layer.name!r} has an unknown spatial size {tuple(spatial)}: build the model "
            "with a fixed input size (e.g. input_shape=(256, 256, 1)) to count its FLOPs"
        )


def tf_profiler_flops_per_image(model, input_shape) -> int:
    """TensorFlow's profiler count (``float_ops``) of the frozen inference graph, batch 1.

    An independent cross-check of :func:`keras_flops_per_image` (TensorFlow backend only).

    Args:
        model: a Keras model.
        input_shape: ``(H, W, C)`` of one image.
    """
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    fn = tf.function(lambda x: model(x, training=False))
    concrete = fn.get_concrete_function(tf.TensorSpec([1, *input_shape], tf.float32))
    frozen = convert_variables_to_constants_v2(concrete)
    builder = tf.compat.v1.profiler.ProfileOptionBuilder
    options = builder(builder.float_operation()).with_empty_output().build()
    profile = tf.compat.v1.profiler.profile(
        graph=frozen.graph, run_meta=tf.compat.v1.RunMetadata(), cmd="op", options=options
    )
    return int(profile.total_float_ops)


def torch_flops_per_image(module, input_shape) -> int:
    """2 x multiply-adds of one image through a PyTorch module, from forward hooks.

    Args:
        module: a ``torch.nn.Module`` (e.g. MONAI's ``BasicUNet``).
        input_shape: ``(C, H, W)`` of one image (channels first, as PyTorch takes it).
    """
    import torch

    total = 0

    def hook(mod, inputs, output):
        nonlocal total
        x = inputs[0]
        if isinstance(mod, torch.nn.Linear):
            total += 2 * (x.numel() // x.shape[0]) * mod.out_features
        elif isinstance(mod, torch.nn.modules.conv._ConvTransposeNd):
            # Every input pixel scatters a kh x kw x C_out patch per input channel.
            total += _conv_flops(
                x.shape[2:], mod.kernel_size, mod.in_channels, mod.out_channels, mod.groups
            )
        else:
            total += _conv_flops(
                output.shape[2:], mod.kernel_size, mod.in_channels, mod.out_channels, mod.groups
            )

    kinds = (torch.nn.modules.conv._ConvNd, torch.nn.Linear)
    handles = [m.register_forward_hook(hook) for m in module.modules() if isinstance(m, kinds)]
    try:
        was_training = module.training
        module.eval()
        with torch.inference_mode():
            module(torch.zeros((1, *input_shape)))
        module.train(was_training)
    finally:
        for h in handles:
            h.remove()
    return int(total)
