"""Dice scores for the training logs.

:class:`DiceScore` is a *hard* Dice (argmax of the prediction) accumulated over the whole
epoch: intersections and sizes are summed over every image seen, then divided, so the
logged number is the Dice of the dataset (not a mean of noisy batch values). With
``class_id`` set it scores one class; otherwise the mean over ``class_ids`` (default: the
foreground classes 1..C-1).

Registered under ``keras_runet>DiceScore``: an unregistered metric named ``dice`` would
reload from a ``.keras`` file as ``keras.losses.dice`` (1 - Dice), silently (docs/design.md).
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import ops

from keras_runet.losses import to_one_hot
from tfds_camus.vocabulary import LABEL_METRIC_NAMES

_PACKAGE = "keras_runet"

#: Short names of the CAMUS labels in the logged metric names, index = label value
#: (``tfds_camus.vocabulary.LABEL_METRIC_NAMES``).
LABEL_NAMES = LABEL_METRIC_NAMES


@keras.saving.register_keras_serializable(package=_PACKAGE)
class DiceScore(keras.metrics.Metric):
    """Epoch-level hard Dice of one class or the mean over several.

    Args:
        num_classes: number of classes of the softmax (4 for CAMUS).
        class_id: score this class only. Mutually exclusive with ``class_ids``.
        class_ids: classes averaged (default: ``1 .. num_classes - 1``).
        name: metric name; under a model output ``segmentation`` Keras logs it as
            ``segmentation_<name>`` and ``val_segmentation_<name>``.
    """

    def __init__(
        self,
        num_classes: int = 4,
        class_id: int | None = None,
        class_ids: Sequence[int] | None = None,
        name: str = "dice",
        dtype=None,
    ):
        super().__init__(name=name, dtype=dtype)
        if class_id is not None and class_ids is not None:
            raise ValueError("DiceScore: give class_id or class_ids, not both")
        self.num_classes = int(num_classes)
        self.class_id = None if class_id is None else int(class_id)
        if class_id is not None:
            ids = [self.class_id]
        elif class_ids is not None:
            ids = [int(c) for c in class_ids]
        else:
            ids = list(range(1, self.num_classes))
        bad = [c for c in ids if not 0 <= c < self.num_classes]
        if bad or not ids:
            raise ValueError(f"DiceScore: bad class ids {ids} for {num_classes} classes")
        self.class_ids = None if class_ids is None else [int(c) for c in class_ids]
        self._ids = ids
        self.intersection = self.add_variable(
            shape=(self.num_classes,), initializer="zeros", name="intersection", dtype="float32"
        )
        self.total = self.add_variable(
            shape=(self.num_classes,), initializer="zeros", name="total", dtype="float32"
        )

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = to_one_hot(y_true, self.num_classes)
        y_pred = ops.one_hot(ops.argmax(y_pred, axis=-1), self.num_classes, dtype="float32")
        if sample_weight is not None:
            w = ops.reshape(ops.cast(sample_weight, "float32"), (-1, 1, 1, 1))
            y_true = y_true * w
            y_pred = y_pred * w
        axes = (0, 1, 2)
        self.intersection.assign_add(ops.sum(y_true * y_pred, axis=axes))
        self.total.assign_add(ops.sum(y_true, axis=axes) + ops.sum(y_pred, axis=axes))

    def result(self):
        inter = ops.take(self.intersection, self._ids)
        total = ops.take(self.total, self._ids)
        # A class absent from both targets and predictions scores 1 (perfect agreement).
        dice = ops.where(total > 0, 2.0 * inter / ops.maximum(total, 1.0), 1.0)
        return ops.mean(dice)

    def reset_state(self):
        self.intersection.assign(ops.zeros((self.num_classes,), dtype="float32"))
        self.total.assign(ops.zeros((self.num_classes,), dtype="float32"))

    def get_config(self):
        return {
            "name": self.name,
            "dtype": self.dtype,
            "num_classes": self.num_classes,
            "class_id": self.class_id,
            "class_ids": self.class_ids,
        }


def training_metrics(num_classes: int = 4) -> list[DiceScore]:
    """The metrics the compile helper attaches to every output.

    ``dice`` (mean over foreground classes) and, for CAMUS's four classes, one Dice per
    structure: ``dice_lv_endo``, ``dice_lv_myo``, ``dice_la``.
    """
    metrics = [DiceScore(num_classes, name="dice")]
    if num_classes == len(LABEL_NAMES):
        metrics += [
            DiceScore(num_classes, class_id=c, name=f"dice_{LABEL_NAMES[c]}")
            for c in range(1, num_classes)
        ]
    return metrics
