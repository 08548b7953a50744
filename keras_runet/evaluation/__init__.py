"""Evaluation of CAMUS segmentations as CAMUS work computes it (REFERENCE.md, "Metrics").

numpy / scipy / scikit-image / matplotlib only: nothing here imports Keras or TensorFlow.
Masks are boolean 2D arrays, label maps integer 2D arrays (0 background, 1 LV, 2
myocardium, 3 LA), spacing is ``(row_mm, col_mm)``. Structures: LVendo = {1},
LVepi = {1, 2}, LA = {3}. Empty masks give NaN, never an exception or inf.

Metrics (one pair of masks):
    :func:`dice`, :func:`hausdorff_distance`, :func:`mean_absolute_distance` (``pooled``
    option), :func:`distance_metrics`, :func:`contour_distances`, :func:`contour`;
    :func:`convexity`, :func:`simplicity` (paper, eqs. 2-3); :func:`simpson_biplane_volume`,
    :func:`lv_disks`, :func:`biplane_volume_from_disks`, :func:`ejection_fraction`.

Images and datasets:
    :func:`to_native_grid` (resize probabilities, then argmax), :func:`postprocess_label_map`
    (CAMUS post-processing), :func:`evaluate_pair` (one row),
    :func:`evaluate_label_maps` (many rows, parallel workers), :class:`OutlierThresholds`.

Reports:
    :func:`summarize`, :func:`format_markdown`, :func:`write_report`,
    :func:`write_per_image_csv`, :func:`read_per_image_csv`, :func:`load_summary`,
    :func:`patient_volumes`, :func:`ejection_fraction_table`, :func:`evaluate_and_report`;
    figures in :mod:`keras_runet.evaluation.figures`.

Example:
    >>> from keras_runet import evaluation as ev
    >>> rows = ev.evaluate_label_maps(items, workers=2)  # doctest: +SKIP
    >>> paths = ev.write_report(rows, "runs/eval")  # doctest: +SKIP

    (``items``: dicts with ``pred``, ``ref``, ``spacing``, ``instant`` and metadata, see
    :mod:`keras_runet.evaluation.records`; ``write_report`` writes ``report.md``,
    ``report.json`` and ``per_image.csv``.)
"""

from keras_runet.evaluation.distances import (
    contour,
    contour_distances,
    dice,
    distance_metrics,
    hausdorff_distance,
    mean_absolute_distance,
)
from keras_runet.evaluation.outliers import (
    OutlierThresholds,
    anatomical_outlier,
    geometric_outlier,
)
from keras_runet.evaluation.postprocess import largest_component, postprocess_label_map
from keras_runet.evaluation.records import (
    evaluate_label_maps,
    evaluate_pair,
    to_native_grid,
)
from keras_runet.evaluation.reports import (
    ejection_fraction_table,
    evaluate_and_report,
    format_markdown,
    load_summary,
    patient_volumes,
    read_per_image_csv,
    summarize,
    write_per_image_csv,
    write_report,
)
from keras_runet.evaluation.shapes import convexity, perimeter4, simplicity
from keras_runet.evaluation.volumes import (
    biplane_volume_from_disks,
    ejection_fraction,
    lv_disks,
    simpson_biplane_volume,
)

__all__ = [
    "OutlierThresholds",
    "anatomical_outlier",
    "biplane_volume_from_disks",
    "contour",
    "contour_distances",
    "convexity",
    "dice",
    "distance_metrics",
    "ejection_fraction",
    "ejection_fraction_table",
    "evaluate_and_report",
    "evaluate_label_maps",
    "evaluate_pair",
    "format_markdown",
    "geometric_outlier",
    "hausdorff_distance",
    "largest_component",
    "load_summary",
    "lv_disks",
    "mean_absolute_distance",
    "patient_volumes",
    "perimeter4",
    "postprocess_label_map",
    "read_per_image_csv",
    "simplicity",
    "simpson_biplane_volume",
    "summarize",
    "to_native_grid",
    "write_per_image_csv",
    "write_report",
]
