"""The search space of a study: RU-Net's ``dil`` and ``shift``, optionally its attention's
open choices (ROI classes, dilation kernel, sigmoid slope), the learning rate and the
``coarse`` loss weight, and the one mapping of their values to a training config.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import keras_tuner

    from keras_runet.config import TrainConfig

#: Hyper-parameter names in the KerasTuner space (the ``roi_*`` ones are TrainConfig fields).
HP_NAMES = (
    "dil",
    "shift",
    "roi_classes",
    "roi_kernel",
    "roi_slope",
    "learning_rate",
    "coarse_loss_weight",
)
#: The attention's choices a study may search (fixed at the base config's value by default).
ROI_HP_NAMES = ("roi_classes", "roi_kernel", "roi_slope")


def _check_range(name, value, kind, low_limit, high_limit=None):
    try:
        low, high = (kind(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be two numbers (low, high), got {value!r}") from None
    if not low_limit <= low <= high or (high_limit is not None and high > high_limit):
        upper = f" <= {high_limit}" if high_limit is not None else ""
        raise ValueError(f"{name} must satisfy {low_limit} <= low <= high{upper}, got {value!r}")
    return low, high


@dataclasses.dataclass
class SearchSpace:
    """The hyper-parameters a search explores.

    ``dil`` and ``shift`` are always tuned; give either a range (with an optional step) or
    explicit values (the paper's sweep: ``dil_values=(11, 30), shift_values=(0.5, 0.7)``).
    The grid oracle needs a finite grid: a ``shift_step`` or ``shift_values`` (``dil`` is an
    integer range with ``dil_step``, 1 by default).

    Attributes:
        dil_range: ``(low, high)`` of the dilation box side, integers >= 1 (default 3..40).
        dil_step: step of ``dil`` within its range.
        dil_values: explicit ``dil`` values instead of the range.
        shift_range: ``(low, high)`` of the first binarisation threshold, within (0, 1).
        shift_step: step of ``shift`` within its range (None: continuous).
        shift_values: explicit ``shift`` values instead of the range.
        roi_classes_values: search these ROI classes (``keras_runet.config.ROI_CLASSES``
            names, e.g. ``("all", "lvepi")``); None: the base config's, not searched.
        roi_kernel_values: search these dilation kernels (``("box", "disk")``); None: fixed.
        roi_slope_values: search these slopes of the two sigmoids; None: fixed.
        tune_learning_rate: also tune Adam's learning rate (log scale).
        learning_rate_range: its ``(low, high)``.
        tune_loss_weights: also tune the weight of the ``coarse`` output's loss (the
            ``segmentation`` output's weight stays 1).
        coarse_loss_weight_range: its ``(low, high)``.

    Example:
        >>> space = SearchSpace(dil_values=(11, 30), shift_values=(0.5, 0.7))
        >>> space.grid_size()
        4
    """

    dil_range: tuple[int, int] = (3, 40)
    dil_step: int = 1
    dil_values: tuple[int, ...] | None = None
    shift_range: tuple[float, float] = (0.1, 0.9)
    shift_step: float | None = None
    shift_values: tuple[float, ...] | None = None
    roi_classes_values: tuple[str, ...] | None = None
    roi_kernel_values: tuple[str, ...] | None = None
    roi_slope_values: tuple[float, ...] | None = None
    tune_learning_rate: bool = False
    learning_rate_range: tuple[float, float] = (1e-4, 1e-2)
    tune_loss_weights: bool = False
    coarse_loss_weight_range: tuple[float, float] = (0.1, 2.0)

    def __post_init__(self):
        self.dil_range = _check_range("dil_range", self.dil_range, int, 1)
        self.shift_range = _check_range("shift_range", self.shift_range, float, 0.0, 1.0)
        self.learning_rate_range = _check_range(
            "learning_rate_range", self.learning_rate_range, float, 1e-12
        )
        self.coarse_loss_weight_range = _check_range(
            "coarse_loss_weight_range", self.coarse_loss_weight_range, float, 0.0
        )
        if int(self.dil_step) < 1:
            raise ValueError(f"dil_step must be at least 1, got {self.dil_step!r}")
        self.dil_step = int(self.dil_step)
        if self.shift_step is not None:
            if not 0 < float(self.shift_step) <= 1:
                raise ValueError(f"shift_step must be within (0, 1], got {self.shift_step!r}")
            self.shift_step = float(self.shift_step)
        if self.dil_values is not None:
            values = tuple(sorted({int(v) for v in self.dil_values}))
            if not values or values[0] < 1:
                raise ValueError(f"dil_values must be integers >= 1, got {self.dil_values!r}")
            self.dil_values = values
        if self.shift_values is not None:
            values = tuple(sorted({float(v) for v in self.shift_values}))
            if not values or not all(0 < v < 1 for v in values):
                raise ValueError(f"shift_values must be within (0, 1), got {self.shift_values!r}")
            self.shift_values = values
        from keras_runet.config import ROI_CLASSES, ROI_KERNELS

        for name, allowed in (
            ("roi_classes_values", tuple(ROI_CLASSES)),
            ("roi_kernel_values", ROI_KERNELS),
        ):
            given = getattr(self, name)
            if given is not None:
                # In the declared order (a grid runs the first value first), duplicates out.
                values = tuple(dict.fromkeys(str(v) for v in given))
                bad = [v for v in values if v not in allowed]
                if bad or not values:
                    raise ValueError(f"{name} must be some of {', '.join(allowed)}, got {given!r}")
                setattr(self, name, values)
        if self.roi_slope_values is not None:
            values = tuple(sorted({float(v) for v in self.roi_slope_values}))
            if not values or not all(math.isfinite(v) and v > 0 for v in values):
                raise ValueError(
                    f"roi_slope_values must be positive numbers, got {self.roi_slope_values!r}"
                )
            self.roi_slope_values = values

    def _roi_choices(self) -> dict[str, tuple]:
        """The attention's searched choices: name -> values (only those given)."""
        given = {
            "roi_classes": self.roi_classes_values,
            "roi_kernel": self.roi_kernel_values,
            "roi_slope": self.roi_slope_values,
        }
        return {k: v for k, v in given.items() if v is not None}

    def is_finite(self) -> bool:
        """Whether every tuned hyper-parameter takes finitely many values (grid search)."""
        shift_ok = self.shift_values is not None or self.shift_step is not None
        return shift_ok and not self.tune_learning_rate and not self.tune_loss_weights

    def grid_size(self) -> int | None:
        """Number of points of the grid (None when the space is not finite)."""
        if not self.is_finite():
            return None
        if self.dil_values is not None:
            n_dil = len(self.dil_values)
        else:
            n_dil = (self.dil_range[1] - self.dil_range[0]) // self.dil_step + 1
        if self.shift_values is not None:
            n_shift = len(self.shift_values)
        else:
            low, high = self.shift_range
            n_shift = int(math.floor((high - low) / self.shift_step + 1e-9)) + 1
        return math.prod([n_dil, n_shift, *(len(v) for v in self._roi_choices().values())])

    def declare(self, hp: keras_tuner.HyperParameters) -> dict:
        """Declare the space on ``hp``; return the current values by name."""
        if self.dil_values is not None:
            dil = hp.Choice("dil", list(self.dil_values), ordered=True)
        else:
            dil = hp.Int("dil", *self.dil_range, step=self.dil_step)
        if self.shift_values is not None:
            shift = hp.Choice("shift", list(self.shift_values), ordered=True)
        else:
            shift = hp.Float("shift", *self.shift_range, step=self.shift_step)
        values = {"dil": int(dil), "shift": float(shift)}
        for name, choices in self._roi_choices().items():
            values[name] = hp.Choice(name, list(choices), ordered=name == "roi_slope")
        if self.tune_learning_rate:
            values["learning_rate"] = hp.Float(
                "learning_rate", *self.learning_rate_range, sampling="log"
            )
        if self.tune_loss_weights:
            values["coarse_loss_weight"] = hp.Float(
                "coarse_loss_weight", *self.coarse_loss_weight_range
            )
        return values

    def to_json(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(self).items()}


def train_config_for(
    values: Mapping, base_config: TrainConfig, *, epochs: int | None = None
) -> TrainConfig:
    """The :class:`~keras_runet.config.TrainConfig` of a point of the search space.

    The one mapping hyper-parameters -> training config, used for a trial
    (:meth:`RunetHyperModel.train_config <keras_runet.tuning.RunetHyperModel.train_config>`)
    and for retraining the best one (:func:`keras_runet.tuning.best_train_config`).

    Args:
        values: ``dil`` and ``shift``, and optionally ``roi_classes``, ``roi_kernel``,
            ``roi_slope``, ``learning_rate`` and ``coarse_loss_weight`` (:data:`HP_NAMES`;
            absent or None: not tuned, the base config's value stays). Other keys are
            ignored.
        base_config: the config every trial starts from.
        epochs: replaces the base config's epochs when given (Hyperband's budget).

    Returns:
        ``base_config`` with those fields replaced; the ``coarse`` loss weight sets
        ``loss_weights`` to ``{"coarse": w, "segmentation": 1.0}``.

    Example:
        >>> from keras_runet.config import TrainConfig
        >>> base = TrainConfig()
        >>> config = train_config_for({"dil": 11, "shift": 0.7, "learning_rate": None}, base,
        ...                           epochs=3)
        >>> config.dil, config.shift, config.epochs, config.learning_rate == base.learning_rate
        (11, 0.7, 3, True)
    """
    changes = {"dil": int(values["dil"]), "shift": float(values["shift"])}
    for name in ROI_HP_NAMES:
        if values.get(name) is not None:
            changes[name] = float(values[name]) if name == "roi_slope" else str(values[name])
    if values.get("learning_rate") is not None:
        changes["learning_rate"] = float(values["learning_rate"])
    if values.get("coarse_loss_weight") is not None:
        changes["loss_weights"] = {
            "coarse": float(values["coarse_loss_weight"]),
            "segmentation": 1.0,
        }
    if epochs is not None:
        changes["epochs"] = int(epochs)
    return dataclasses.replace(base_config, **changes)
