"""The CAMUS post-processing: largest connected component and hole filling, per structure.

Applied (as an option) to predicted label maps before evaluation; the RU-Net paper counts
anatomical outliers, which this post-processing hides, so reports use raw predictions by
default.

For each label (1 LV, 2 myocardium, 3 LA) in turn: keep the largest 8-connected component
of that label (the other components become background), then fill the holes of the label's
mask, using only background pixels (a hole that holds another structure, such as the LV
inside a closed myocardium ring, is left alone).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from keras_runet.evaluation._validation import as_label_map

__all__ = ["largest_component", "postprocess_label_map"]

_EIGHT = np.ones((3, 3), dtype=bool)


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
