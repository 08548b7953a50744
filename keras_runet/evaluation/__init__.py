"""Evaluation of CAMUS segmentations as CAMUS work computes it (docs/metrics.md).

numpy / scipy / scikit-image / matplotlib only: nothing here imports Keras or TensorFlow.
Masks are boolean 2D arrays, label maps integer 2D arrays (0 background, 1 LV, 2
myocardium, 3 LA), spacing is ``(row_mm, col_mm)``. Structures
(``tfds_camus.vocabulary.STRUCTURES``): LVendo = {1}, LVepi = {1, 2}, LA = {3}. Empty masks
give NaN, never an exception or inf.

Metrics (one pair of masks):
    :func:`dice`, :func:`hausdorff_distance`, :func:`mean_absolute_distance` (``pooled``
    option), :func:`distance_metrics`, :func:`contour_distances`, :func:`contour`;
    :func:`convexity`, :func:`simplicity` (paper, eqs. 2-3); :func:`simpson_biplane_volume`,
    :func:`lv_disks`, :func:`biplane_volume_from_disks`, :func:`ejection_fraction`.

Images and datasets:
    :func:`to_native_grid` (resize probabilities, then argmax), :func:`postprocess_label_map`
    (CAMUS post-processing; the modes raw / post / both: :data:`POSTPROCESS_MODES`,
    :func:`postprocess_mode`, :func:`postprocess_passes`), :func:`evaluate_pair` (one row),
    :func:`evaluate_label_maps` (many rows, parallel workers), :func:`evaluate_items` (rows
    carrying the items' ``roi_fraction``), :func:`evaluate_modes` (raw and post-processed rows
    of the same predictions), :class:`OutlierThresholds`.

Reports:
    tables (:mod:`~keras_runet.evaluation.tables`): :func:`summarize`,
    :func:`patient_volumes`, :func:`ejection_fraction_table`; Markdown
    (:mod:`~keras_runet.evaluation.markdown`): :func:`format_markdown`; files
    (:mod:`~keras_runet.evaluation.reports`): :func:`write_report`,
    :func:`write_per_image_csv`, :func:`read_per_image_csv`, :func:`load_summary`,
    :func:`evaluate_and_report`, :func:`add_comparisons`, :func:`add_postprocessed`
    (with :func:`postprocessing_effect`: raw against post-processed); figures in
    :mod:`keras_runet.evaluation.figures`.

Comparisons and the failure detector:
    paired comparisons of models on the same images (:mod:`~keras_runet.evaluation.compare`):
    :func:`compare_models`, :func:`pair_rows`, :func:`mcnemar_test`,
    :func:`paired_difference`; the anatomical criteria as a detector of geometric outliers
    (:mod:`~keras_runet.evaluation.detector`): :func:`quality_score`,
    :func:`failure_detector`, :func:`detection_counts`, :func:`auroc`, :func:`roc_curve`.

Example (``items``: dicts with ``pred``, ``ref``, ``spacing``, ``instant`` and metadata, see
:mod:`keras_runet.evaluation.records`; a prediction equal to its reference here):

    >>> import tempfile
    >>> import numpy as np
    >>> from keras_runet import evaluation as ev
    >>> ref = np.zeros((64, 48), np.uint8)
    >>> ref[10:50, 12:36] = 2  # myocardium
    >>> ref[14:46, 16:32] = 1  # LV cavity
    >>> ref[50:60, 14:34] = 3  # left atrium
    >>> items = [{"pred": ref.copy(), "ref": ref, "spacing": (0.3, 0.3), "instant": "ED"}]
    >>> rows = ev.evaluate_label_maps(items, workers=0)
    >>> rows[0]["LVendo_dice"], rows[0]["LVendo_hd_mm"], rows[0]["geometric_outlier"]
    (1.0, 0.0, False)
    >>> paths = ev.write_report(rows, tempfile.mkdtemp(), figures=False)
    >>> sorted(p.name for p in paths.values())
    ['per_image.csv', 'per_patient_volumes.csv', 'report.json', 'report.md']
"""

from keras_runet.evaluation.compare import (
    compare_models,
    mcnemar_test,
    pair_rows,
    paired_difference,
)
from keras_runet.evaluation.detector import (
    auroc,
    detection_counts,
    failure_detector,
    quality_score,
    roc_curve,
)
from keras_runet.evaluation.distances import (
    contour,
    contour_distances,
    dice,
    distance_metrics,
    hausdorff_distance,
    mean_absolute_distance,
)
from keras_runet.evaluation.markdown import format_markdown
from keras_runet.evaluation.outliers import (
    OutlierThresholds,
    anatomical_outlier,
    geometric_outlier,
)
from keras_runet.evaluation.postprocess import (
    POSTPROCESS_MODES,
    largest_component,
    postprocess_label_map,
    postprocess_mode,
    postprocess_passes,
)
from keras_runet.evaluation.records import (
    evaluate_label_maps,
    evaluate_pair,
    to_native_grid,
)
from keras_runet.evaluation.reports import (
    add_comparisons,
    add_postprocessed,
    evaluate_and_report,
    evaluate_items,
    evaluate_modes,
    load_summary,
    read_per_image_csv,
    write_per_image_csv,
    write_report,
)
from keras_runet.evaluation.shapes import (
    CONVENTIONS,
    DEFAULT_CONVENTION,
    ShapeConvention,
    convexity,
    perimeter4,
    shape_convention,
    shape_metrics,
    simplicity,
)
from keras_runet.evaluation.tables import (
    ejection_fraction_table,
    patient_volumes,
    postprocessing_effect,
    summarize,
)
from keras_runet.evaluation.volumes import (
    biplane_volume_from_disks,
    ejection_fraction,
    lv_disks,
    simpson_biplane_volume,
)

__all__ = [
    "POSTPROCESS_MODES",
    "OutlierThresholds",
    "add_comparisons",
    "add_postprocessed",
    "anatomical_outlier",
    "auroc",
    "biplane_volume_from_disks",
    "compare_models",
    "contour",
    "contour_distances",
    "CONVENTIONS",
    "DEFAULT_CONVENTION",
    "ShapeConvention",
    "convexity",
    "shape_convention",
    "shape_metrics",
    "detection_counts",
    "dice",
    "distance_metrics",
    "ejection_fraction",
    "ejection_fraction_table",
    "evaluate_and_report",
    "evaluate_items",
    "evaluate_label_maps",
    "evaluate_modes",
    "evaluate_pair",
    "failure_detector",
    "format_markdown",
    "geometric_outlier",
    "hausdorff_distance",
    "largest_component",
    "load_summary",
    "lv_disks",
    "mcnemar_test",
    "mean_absolute_distance",
    "pair_rows",
    "paired_difference",
    "patient_volumes",
    "perimeter4",
    "postprocess_label_map",
    "postprocess_mode",
    "postprocess_passes",
    "postprocessing_effect",
    "quality_score",
    "read_per_image_csv",
    "roc_curve",
    "simplicity",
    "simpson_biplane_volume",
    "summarize",
    "to_native_grid",
    "write_per_image_csv",
    "write_report",
]
