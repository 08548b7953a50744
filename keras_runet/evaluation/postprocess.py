"""The CAMUS post-processing: largest connected component and hole filling, per structure.

Applied (as an option) to predicted label maps before evaluation; the RU-Net paper counts
anatomical outliers, which this post-processing hides, so reports use raw predictions by
default. The evaluation modes (:data:`POSTPROCESS_MODES`, read by :func:`postprocess_mode`):
"raw" evaluates the predictions as they are, "post" post-processed, "both" evaluates the same
predictions twice, raw for the report's tables and post-processed beside them
(docs/metrics.md, "Raw and post-processed").

For each label (1 LV, 2 myocardium, 3 LA) in turn: keep the largest 8-connected component
of that label (the other components become background), then fill the holes of the label's
mask, using only background pixels (a hole that holds another structure, such as the LV
inside a closed myocardium ring, is left alone).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from keras_runet.evaluation._validation import as_label_map

__all__ = [
    "POSTPROCESS_MODES",
    "largest_component",
    "postprocess_label_map",
    "postprocess_mode",
    "postprocess_passes",
]

_EIGHT = np.ones((3, 3), dtype=bool)

# The evaluation modes of the predictions: as they are, post-processed, or both (the same
# predictions evaluated twice; the raw rows are the primary ones).
POSTPROCESS_MODES = ("raw", "post", "both")


def postprocess_mode(value) -> str:
    """The evaluation mode of a ``postprocess`` setting: "raw", "post" or "both".

    The boolean setting of earlier versions (and of ``evaluation.json`` / ``cv_config.json``
    files they wrote) still reads: False is "raw", True is "post".

    Args:
        value: a name of :data:`POSTPROCESS_MODES` or a bool.

    Raises:
        ValueError: anything else (the message names the value).

    >>> postprocess_mode(True), postprocess_mode("both")
    ('post', 'both')
    """
    if isinstance(value, bool | np.bool_):
        return "post" if value else "raw"
    if isinstance(value, str) and value in POSTPROCESS_MODES:
        return value
    raise ValueError(
        f"postprocess must be one of {', '.join(map(repr, POSTPROCESS_MODES))} "
        f"(or a bool), got {value!r}"
    )


def postprocess_passes(value) -> tuple[bool, ...]:
    """The ``postprocess`` flag of each evaluation pass of a mode, the primary pass first.

    "raw": ``(False,)``; "post": ``(True,)``; "both": ``(False, True)`` (the raw rows are
    the report's primary rows). ``value`` as for :func:`postprocess_mode`.
    """
    mode = postprocess_mode(value)
    return {"raw": (False,), "post": (True,), "both": (False, True)}[mode]


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 8-connected component of a boolean mask (all False if empty).

    Args:
        mask: 2D boolean mask.

    Returns:
        A boolean mask of the same shape.
    """
    labels, n = ndi.label(mask, structure=_EIGHT)
    if n <= 1:
        return labels > 0
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return labels == int(np.argmax(sizes))


def postprocess_label_map(label_map, labels=(1, 2, 3)) -> np.ndarray:
    """CAMUS post-processing of a label map (see the module docstring).

    Args:
        label_map: 2D integer label map (0 background, 1 LV, 2 myocardium, 3 LA).
        labels: the labels to clean, in order.

    Returns:
        A new uint8 label map of the same shape.
    """
    lm = as_label_map(label_map).astype(np.uint8, copy=True)
    for label in labels:
        mask = lm == label
        if not mask.any():
            continue
        keep = largest_component(mask)
        lm[mask & ~keep] = 0
        holes = ndi.binary_fill_holes(keep) & ~keep & (lm == 0)
        lm[holes] = label
    return lm
