"""The multi-class Dice loss that trains every output of the three models.

The loss is ``1 - mean_c Dice_c`` with the soft Dice of each class ``c`` computed per image
(``2 sum(p * g) + eps) / (sum(p) + sum(g) + eps)``) and averaged over classes and images.

Background: **excluded by default.** In apical echocardiography the background covers most
of the image and its Dice is near 1 from the first epoch, so counting it dilutes the gradient
of the three structures we care about (LV cavity, myocardium, left atrium) by a quarter and
rewards nothing. ``include_background=True`` restores the plain mean over all classes (what
some CAMUS ports do).

What the choice does in training (measured in benchmarks/RESULTS.md, "The Dice loss and the
background"; ``python benchmarks/dice_background.py`` and ``runet demo`` reproduce it):

- Background counted: the networks can collapse to "all background" (the mean over four
  classes rises that way) and stay there: the softmax saturates and the Dice of an absent
  class has no gradient left.
- Background excluded: the background probability is learnt only indirectly (every
  foreground class is pushed down outside its structure), so early in training the first
  U-Net of RU-Net may label the background as some structure, its ROI mask then keeps the
  whole image, and ``dil`` / ``shift`` change nothing until it learns the background, as it
  does on the demo's synthetic CAMUS. ``keras_runet.split_evaluation.roi_fraction``
  measures it (the mean of the ROI mask; ``runet demo`` prints it in RU-Net's fold line).

Targets may be one-hot ``(B, H, W, C)`` or integer labels ``(B, H, W)`` / ``(B, H, W, 1)``:
the loss one-hot encodes labels itself, so the data pipeline can stay compact.
"""

from __future__ import annotations

import keras
from keras import ops

_PACKAGE = "keras_runet"


def to_one_hot(y_true, num_classes: int):
    """One-hot float32 targets from one-hot or integer label targets (see the module doc)."""
    rank = len(y_true.shape)
    if rank == 4 and y_true.shape[-1] == num_classes and num_classes > 1:
        return ops.cast(y_true, "float32")
    if rank == 4 and y_true.shape[-1] == 1:
        y_true = ops.squeeze(y_true, axis=-1)
    elif rank != 3:
        raise ValueError(
            f"Dice: targets must be (B, H, W), (B, H, W, 1) or one-hot (B, H, W, {num_classes}); "
            f"got shape {tuple(y_true.shape)}"
        )
    return ops.one_hot(ops.cast(y_true, "int32"), num_classes, dtype="float32")


def soft_dice_per_class(y_true, y_pred, smooth: float = 1e-5):
    """Soft Dice of each class of each image: ``(B, C)``; ``y_pred`` are probabilities."""
    y_pred = ops.cast(y_pred, "float32")
    y_true = to_one_hot(y_true, y_pred.shape[-1])
    axes = (1, 2)
    intersection = ops.sum(y_true * y_pred, axis=axes)
    total = ops.sum(y_true, axis=axes) + ops.sum(y_pred, axis=axes)
    return (2.0 * intersection + smooth) / (total + smooth)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class MultiClassDiceLoss(keras.losses.Loss):
    """``1 - mean Dice`` over classes (background excluded by default) and images.

    Args:
        include_background: count class 0 in the mean (default False, see module doc).
        smooth: added to numerator and denominator; keeps classes absent from both the
            target and the prediction at Dice 1 instead of 0 / 0.
        name, reduction, dtype: as for ``keras.losses.Loss``.
    """

    def __init__(
        self,
        include_background: bool = False,
        smooth: float = 1e-5,
        name: str = "multiclass_dice_loss",
        reduction: str = "sum_over_batch_size",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.include_background = bool(include_background)
        self.smooth = float(smooth)

    def call(self, y_true, y_pred):
        dice = soft_dice_per_class(y_true, y_pred, self.smooth)
        if not self.include_background:
            dice = dice[:, 1:]
        # One value per image; Keras reduces over the batch.
        return 1.0 - ops.mean(dice, axis=-1)

    def get_config(self):
        config = super().get_config()
        config.update({"include_background": self.include_background, "smooth": self.smooth})
        return config
