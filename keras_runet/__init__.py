"""keras-runet: RU-Net (Refining U-Net) for robust 2D echocardiography segmentation.

Importing the package registers every custom layer, loss and metric with Keras
(``package="keras_runet"``), so that ``.keras`` files written by this package reload
with the right objects (an unregistered metric named ``dice`` would silently reload as
``keras.losses.dice``, see DESIGN.md).
"""

from keras_runet import layers, losses, metrics, models  # noqa: F401  (registration)
from keras_runet.layers import BoxDilation, ForegroundProbability, ParametricSigmoid, RoiAttention
from keras_runet.losses import MultiClassDiceLoss
from keras_runet.metrics import DiceScore
from keras_runet.models import build_model, build_runet, build_shg, build_unet1, compile_model
from keras_runet.version import __version__

__all__ = [
    "BoxDilation",
    "DiceScore",
    "ForegroundProbability",
    "MultiClassDiceLoss",
    "ParametricSigmoid",
    "RoiAttention",
    "__version__",
    "build_model",
    "build_runet",
    "build_shg",
    "build_unet1",
    "compile_model",
]
