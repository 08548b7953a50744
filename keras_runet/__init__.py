"""keras-runet: RU-Net (Refining U-Net) for robust 2D echocardiography segmentation.

The names below (``keras_runet.build_model``, ``keras_runet.RoiAttention``, ...) are loaded
on first use (PEP 562), so that ``import keras_runet`` and the command line
(``runet --help``, ``runet synth``) do not import TensorFlow.

Custom objects: every custom layer, loss and metric is registered with Keras
(``package="keras_runet"``) when :mod:`keras_runet.models` is imported, so that ``.keras``
files written by this package reload with the right objects (an unregistered metric named
``dice`` would silently reload as ``keras.losses.dice``, see docs/design.md). Every module
of this package that builds or loads a model imports it, and so does using any of the names
below; ``import keras_runet`` registers them at once when Keras is already imported (the
usual ``import keras`` first). Before a bare ``keras.saving.load_model``, import
``keras_runet.models`` (or touch ``keras_runet.build_model``).
"""

from __future__ import annotations

import importlib
import sys

from keras_runet.config import TrainConfig, train_config
from keras_runet.version import __version__

# name -> module that defines it, imported on first access.
_LAZY = {
    "BoxDilation": "keras_runet.layers",
    "ForegroundProbability": "keras_runet.layers",
    "ParametricSigmoid": "keras_runet.layers",
    "RoiAttention": "keras_runet.layers",
    "MultiClassDiceLoss": "keras_runet.losses",
    "DiceScore": "keras_runet.metrics",
    "build_model": "keras_runet.models",
    "build_runet": "keras_runet.models",
    "build_shg": "keras_runet.models",
    "build_unet1": "keras_runet.models",
    "compile_model": "keras_runet.models",
}
# Submodules reachable as attributes (``keras_runet.layers.RoiAttention``) without an
# explicit import, as when this package imported them eagerly.
_SUBMODULES = ("layers", "losses", "metrics", "models")

__all__ = [
    "BoxDilation",
    "DiceScore",
    "ForegroundProbability",
    "MultiClassDiceLoss",
    "ParametricSigmoid",
    "RoiAttention",
    "TrainConfig",
    "__version__",
    "build_model",
    "build_runet",
    "build_shg",
    "build_unet1",
    "compile_model",
    "train_config",
]


def __getattr__(name: str):
    if name in _LAZY:
        importlib.import_module("keras_runet.models")  # registration first, always
        value = getattr(importlib.import_module(_LAZY[name]), name)
    elif name in _SUBMODULES:
        importlib.import_module("keras_runet.models")
        value = importlib.import_module(f"keras_runet.{name}")
    else:
        raise AttributeError(f"module 'keras_runet' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY) | set(_SUBMODULES))


if "keras" in sys.modules:  # Keras is loaded anyway: register now, as before (cheap)
    importlib.import_module("keras_runet.models")
