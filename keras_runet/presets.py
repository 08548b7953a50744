"""Named starting points of a training run, every value with where it comes from.

A preset gives a value to every :class:`~keras_runet.config.TrainConfig` field that defines
what is trained (not how it is executed: ``distribute`` and ``run_eagerly`` change no
result), and for each value its **source** (the RU-Net paper, the CAMUS paper, or this
package's choice where the papers are silent) and the **reason**, as data
(:class:`Setting`). ``runet train / cv / tune --preset NAME`` start from it; flags given
explicitly override it (and then show up in :func:`deviations`).

- ``paper``: what the RU-Net paper (Leclerc et al., IEEE IUS 2019) and the CAMUS paper
  (Leclerc et al., IEEE TMI 2019) state for Table II (``dil`` 11, ``shift`` 0.5), and for
  what they leave open (epochs, batch size, augmentation, early stopping, the background in
  the Dice, the attention's classes and kernel) the plainest choice, stated.
- ``paper-table3``: the same with Table III's ``dil`` 30 and ``shift`` 0.7.
- ``default``: what this package does without a preset (the dataclass's defaults): the
  paper's model, loss and optimiser, trained with augmentation and early stopping.

:func:`deviations` lists, in words, where a configuration differs from a preset (by default
``paper``) and every choice made where the papers are silent. docs/presets.md has the tables.

>>> config = preset_config("paper")
>>> config.dil, config.shift, config.augment, config.patience, config.preset
(11, 0.5, False, 0, 'paper')
>>> PRESETS["paper"]["learning_rate"].source
'CAMUS paper'
>>> [line.split(":")[0] for line in deviations(preset_config("paper", dil=30, epochs=50))][:2]
['dil 30', 'epochs 50']
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

__all__ = [
    "CAMUS_PAPER",
    "DEFAULT_PRESET",
    "EXECUTION_FIELDS",
    "FIXED_CHOICES",
    "PACKAGE",
    "PRESETS",
    "PRESET_DESCRIPTIONS",
    "RUNET_PAPER",
    "SOURCES",
    "Setting",
    "deviations",
    "fields_off_the_paper",
    "preset_config",
    "preset_values",
    "provenance_table",
]

RUNET_PAPER = "RU-Net paper"  # Leclerc et al., IEEE IUS 2019 (../shared/paper)
CAMUS_PAPER = "CAMUS paper"  # Leclerc et al., IEEE TMI 2019, U-Net 1 as the RU-Net paper's [1]
PACKAGE = "this package"  # a choice where both papers are silent
SOURCES = (RUNET_PAPER, CAMUS_PAPER, PACKAGE)

DEFAULT_PRESET = "default"
# Fields that say how a run is executed, not what is trained: no preset sets them and they
# are never deviations.
EXECUTION_FIELDS = ("distribute", "run_eagerly")
# Not settings: the model is chosen per command, the preset is the name itself.
_NOT_SET = ("model", "preset", *EXECUTION_FIELDS)


@dataclasses.dataclass(frozen=True)
class Setting:
    """One field's value in a preset, with its ``source`` (one of :data:`SOURCES`) and the
    ``reason`` for it (for a paper value: where the paper says it)."""

    value: Any
    source: str
    reason: str

    def __post_init__(self):
        if self.source not in SOURCES:
            raise ValueError(f"source must be one of {SOURCES}, got {self.source!r}")


def _s(value, source, reason) -> Setting:
    return Setting(value, source, reason)


# What both papers state, shared by the paper presets and the default.
_STATED = {
    "dil": _s(11, RUNET_PAPER, "Table II: RU-Net with dil = 11"),
    "shift": _s(0.5, RUNET_PAPER, "Table II: RU-Net with shift = 0.5"),
    "roi_slope": _s(
        100.0, RUNET_PAPER, "Sec. II, eq. (1): the slope is set to 100, for both sigmoids"
    ),
    "width": _s(
        1.0,
        RUNET_PAPER,
        "Table II's Params: U-Net 1 2.0 M, SHG 4.5 M, RU-Net 3.9 M (here 1.98 / 4.58 / 3.95 M)",
    ),
    "image_size": _s((256, 256), CAMUS_PAPER, "U-Net 1 as in [1]: a 256 x 256 input"),
    "learning_rate": _s(1e-3, CAMUS_PAPER, "U-Net 1 as in [1]: Adam, learning rate 1e-3"),
    "loss_weights": _s(
        None,
        RUNET_PAPER,
        "Sec. II: both outputs optimised with the same multi-class Dice loss, equally "
        "weighted (Sec. IV: weighting the second output more did not help)",
    ),
}

# Where the papers are silent: the choices of the paper presets.
_PAPER_CHOICES = {
    "roi_classes": _s(
        "all",
        PACKAGE,
        "the paper dilates 'the segmentation of the first network' without naming its "
        "classes: all three structures (LV cavity, myocardium, left atrium) is the literal "
        "reading; lvepi (cavity + myocardium) is the other",
    ),
    "roi_kernel": _s(
        "box",
        PACKAGE,
        "the paper names a 'convolution-based dilation' of rate dil, not the kernel's "
        "shape: a uniform dil x dil box is the plainest reading",
    ),
    "epochs": _s(100, PACKAGE, "neither paper gives the number of epochs"),
    "batch_size": _s(8, PACKAGE, "neither paper gives the batch size"),
    "patience": _s(
        0,
        PACKAGE,
        "neither paper mentions early stopping: every epoch runs, and the best epoch on "
        "the fold's validation group is kept",
    ),
    "augment": _s(False, PACKAGE, "neither paper describes data augmentation"),
    "include_background": _s(
        False,
        PACKAGE,
        "'multi-class Dice' does not say whether the background counts: the mean over the "
        "three structures (with it, the networks can collapse to all background: "
        "benchmarks/dice_background.py)",
    ),
    "seed": _s(0, PACKAGE, "the papers give no seed; one fixed seed makes a run repeatable"),
    "dtype": _s(None, PACKAGE, "float32 (mixed precision is not mentioned)"),
    "steps_per_epoch": _s(None, PACKAGE, "an epoch is one pass over the training split"),
}

# The default preset: the paper presets' choices, except what this package does differently.
_DEFAULT_CHOICES = {
    **_PAPER_CHOICES,
    "patience": _s(
        20,
        PACKAGE,
        "early stopping after 20 epochs without a better val_segmentation_dice: a run "
        "stops when it stops improving (the best epoch is kept either way)",
    ),
    "augment": _s(
        True,
        PACKAGE,
        "random rotation, zoom, shift, gamma and contrast: 400 training patients per fold "
        "are few, and the images vary in quality",
    ),
}

PRESETS: dict[str, dict[str, Setting]] = {
    "paper": {**_STATED, **_PAPER_CHOICES},
    "paper-table3": {
        **_STATED,
        **_PAPER_CHOICES,
        "dil": _s(30, RUNET_PAPER, "Table III: RU-Net with dil = 30"),
        "shift": _s(0.7, RUNET_PAPER, "Table III: RU-Net with shift = 0.7"),
    },
    DEFAULT_PRESET: {**_STATED, **_DEFAULT_CHOICES},
}
PRESET_DESCRIPTIONS = {
    "paper": "the RU-Net and CAMUS papers (Table II: dil 11, shift 0.5); no augmentation, "
    "no early stopping",
    "paper-table3": "as paper, with Table III's dil 30 and shift 0.7",
    DEFAULT_PRESET: "the paper's model, loss and optimiser, with augmentation and early "
    "stopping (patience 20)",
}

# What this package always does where the papers are silent, whatever the preset (not
# fields of TrainConfig): listed by deviations().
FIXED_CHOICES = (
    "model selection: the epoch with the best val_segmentation_dice (model grid) on the "
    "fold's validation group is the fold's model (the papers do not say how the model was "
    "selected)",
    "the Dice loss is the soft Dice per image and class, averaged (the papers do not give "
    "its form; keras_runet.losses)",
    "Adam's other parameters are Keras's defaults (beta_1 0.9, beta_2 0.999, epsilon 1e-7)",
)


def preset_values(name: str) -> dict[str, Any]:
    """The field values of preset ``name`` (a ValueError naming it if unknown)."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}")
    return {field: setting.value for field, setting in PRESETS[name].items()}


def preset_config(name: str = DEFAULT_PRESET, **overrides):
    """The checked :class:`~keras_runet.config.TrainConfig` of preset ``name``, with
    ``overrides`` (field values) on top; its ``preset`` field records the name."""
    from keras_runet.config import train_config

    return train_config(**{**preset_values(name), **overrides, "preset": name})


def _fmt(name: str, value) -> str:
    if name == "image_size":
        return "x".join(str(v) for v in value)
    if isinstance(value, bool):
        return "on" if value else "off"
    if value is None:
        return {"dtype": "float32", "loss_weights": "equal"}.get(name, "none")
    if isinstance(value, Mapping):
        return ", ".join(f"{k} {v:g}" for k, v in value.items())
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def fields_off_the_paper(config, preset: str = "paper") -> list[str]:
    """The fields where ``config`` differs from a value the papers state (the first group
    of :func:`deviations`): empty when the run trains what the paper trained."""
    reference = PRESETS[preset] if preset in PRESETS else preset_values(preset)
    return [
        name
        for name, setting in reference.items()
        if setting.source != PACKAGE and getattr(config, name) != setting.value
    ]


def deviations(config, preset: str = "paper") -> list[str]:
    """Every way ``config`` is not the paper's protocol, in words.

    One line per field of preset ``preset`` where ``config`` differs from it (naming the
    preset's value and its source), one per field where the papers are silent and a choice
    was made (naming the choice and, from ``config.preset``, the reason), and the choices
    the package always makes (:data:`FIXED_CHOICES`).

    Args:
        config: a :class:`~keras_runet.config.TrainConfig`.
        preset: the reference (default ``paper``: Table II).

    Returns:
        The lines: the fields that differ from a paper's value, then those that differ
        from the preset's choice where the papers are silent, then the silent choices this
        run shares with the preset (each group in the preset's order), then the fixed ones.
    """
    reference = PRESETS[preset] if preset in PRESETS else preset_values(preset)
    own = PRESETS.get(getattr(config, "preset", DEFAULT_PRESET), {})
    differ, other_choice, same_choice = [], [], []
    for name, setting in reference.items():
        value = getattr(config, name)
        shown = f"{name} {_fmt(name, value)}"
        if value != setting.value and setting.source != PACKAGE:
            differ.append(
                f"{shown}: differs from the {setting.source}, "
                f"{_fmt(name, setting.value)} ({setting.reason})"
            )
        elif value != setting.value:
            why = own.get(name)
            because = f": {why.reason}" if why and why.value == value else ""
            other_choice.append(
                f"{shown}: the papers are silent; the {preset} preset would choose "
                f"{_fmt(name, setting.value)} (this run: preset {config.preset}{because})"
            )
        elif setting.source == PACKAGE:
            same_choice.append(
                f"{shown}: the papers are silent; this package's choice ({setting.reason})"
            )
    return differ + other_choice + same_choice + list(FIXED_CHOICES)


def provenance_table(name: str) -> list[str]:
    """Markdown lines of a preset's table: field, flag, value, source, reason."""
    from keras_runet.config import flag_of

    lines = ["| field | flag | value | source | reason |", "|---|---|---|---|---|"]
    for field, s in PRESETS[name].items():
        flag = "" if field == "loss_weights" else f"`{flag_of(field)}`"
        lines.append(f"| {field} | {flag} | {_fmt(field, s.value)} | {s.source} | {s.reason} |")
    return lines
