"""Predict a TFDS camus split and evaluate it on the native grid: the one implementation.

Cross-validation (:mod:`keras_runet.cross_validation`), the tuning trials
(:mod:`keras_runet.tuning`) and ``runet evaluate`` all go through this module:

- :func:`predict_examples`: ONE forward pass over a split. Each image's probabilities are
  brought back to its native grid (resize, then argmax) and paired with the native
  reference mask and the example's metadata (an evaluation item of
  :func:`keras_runet.evaluation.evaluate_label_maps`). For RU-Net the same batch outputs
  also give each image's ROI-mask fraction (``roi_fraction``, see
  :func:`keras_runet.models.roi_mask_means`): no second pass is needed for it.
- :func:`evaluate_model_on_split`: predict a prepared split and write the full report
  (``report.md``, ``report.json``, ``per_image.csv``, figures).
- :func:`evaluate_model`: the validation metrics a tuning trial reports (outlier rates,
  native-grid Dice and the ROI fraction), from :func:`outlier_rates`.
- :func:`saved_items`, :func:`references_from_items`, :func:`evaluate_items` (and
  :func:`evaluate_modes`, both from :mod:`keras_runet.evaluation.reports`): rebuild and
  evaluate the items of a finished cross-validation fold from its saved predictions.

The metric definitions are in docs/metrics.md.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np

# One evaluation pass of items (rows carrying roi_fraction), and the passes of a
# postprocess mode: declared with the reports, importable from here.
from keras_runet.evaluation.reports import evaluate_items, evaluate_modes  # noqa: F401

# The ClassLabel names of the camus builder's features, by index.
from tfds_camus.camus.camus_dataset_builder import INSTANTS, QUALITIES, VIEWS
from tfds_camus.vocabulary import STRUCTURES


def _decode_str(v):
    return v.decode() if isinstance(v, bytes) else str(v)


def example_item(ex) -> dict:
    """The evaluation item of a camus example (numpy), without a prediction: the reference on
    the native grid, its spacing and the example's metadata."""
    return {
        "patient_id": _decode_str(ex["patient_id"]),
        "view": VIEWS[int(ex["view"])],
        "instant": INSTANTS[int(ex["instant"])],
        "frame_index": int(ex["frame_index"]),
        "image_quality": QUALITIES[int(ex["image_quality"])],
        "ref": ex["native_mask"][..., 0].astype(np.uint8),
        "spacing": tuple(float(s) for s in ex["spacing"]),
        "ef": float(ex["ef"]),
        "edv": float(ex["edv"]),
        "esv": float(ex["esv"]),
    }


def reference_items(builder, split: str) -> Iterator[dict]:
    """The native reference masks of a prepared camus split (a TFDS split string), as
    :func:`example_item`'s items (``ref``, ``spacing``, ``instant``, ``patient_id``, ...):
    what ``runet thresholds`` calibrates on."""
    dataset = builder.as_dataset(split=split, shuffle_files=False)
    for ex in dataset.as_numpy_iterator():
        yield example_item(ex)


def _predicted_batches(model, examples, image_size, batch_size) -> Iterator[tuple]:
    """The one forward pass: ``(images, examples, probabilities, roi_fractions)`` per batch.

    ``roi_fractions`` is the per-image mean of RU-Net's ROI mask, computed from the same
    batch's ``coarse`` output (None for a model without the attention).
    """
    import tensorflow as tf

    from keras_runet.data import resize_pair
    from keras_runet.models import roi_mask_means

    def prepare(ex):
        image = tf.cast(ex["image"], tf.float32) / 255.0
        mask = tf.cast(ex["mask"], tf.int32)
        image, _ = resize_pair(image, mask, tuple(image_size))
        return image, ex

    def predict(images, exs):
        batch = np.stack(images)
        probs = model.predict_on_batch(batch)
        return images, exs, probs, roi_mask_means(model, batch, probs.get("coarse"))

    images, exs = [], []
    for image, ex in examples.map(prepare).as_numpy_iterator():
        images.append(image)
        exs.append(ex)
        if len(images) == batch_size:
            yield predict(images, exs)
            images, exs = [], []
    if images:
        yield predict(images, exs)


def predict_examples(
    model,
    examples,
    *,
    image_size=(256, 256),
    batch_size: int = 8,
    outputs: Sequence[str] | None = None,
    keep_image: bool = False,
) -> dict[str, list[dict]]:
    """Predict a TFDS camus split and bring each output back to the native grid.

    Args:
        model: a trained model (dict outputs).
        examples: a ``tf.data.Dataset`` of camus examples (not batched), in order.
        image_size: the model's input size (images of another size are resized).
        batch_size: images per forward pass.
        outputs: which outputs to return (default: all of the model's).
        keep_image: also return the image resized to the native grid (for figures).

    Returns:
        ``{output: [item, ...]}``; each item is an evaluation item of
        :func:`keras_runet.evaluation.evaluate_label_maps` (``pred``, ``ref``,
        ``spacing``, ``instant``, ``patient_id``, ``view``, ``image_quality``, plus
        ``ef``, ``edv``, ``esv`` from the cfg, ``image`` when asked). For RU-Net each
        item also has ``roi_fraction``: the mean of the image's ROI mask from the same
        forward pass (1.0: the attention passes the whole image, see :func:`roi_fraction`).
    """
    from keras_runet.evaluation import to_native_grid

    outputs = list(outputs or model.output_names)
    results: dict[str, list[dict]] = {o: [] for o in outputs}
    for images, exs, probs, roi_fractions in _predicted_batches(
        model, examples, image_size, batch_size
    ):
        for i, ex in enumerate(exs):
            meta = example_item(ex)
            native_shape = tuple(int(s) for s in ex["native_shape"])
            for o in outputs:
                pred = to_native_grid(np.asarray(probs[o][i]), native_shape)
                item = dict(meta, pred=pred, output=o)
                if roi_fractions is not None:
                    item["roi_fraction"] = float(roi_fractions[i])
                if keep_image:
                    from skimage.transform import resize

                    item["image"] = resize(images[i][..., 0], native_shape, order=1)
                results[o].append(item)
    return results


def roi_fraction(model, examples, *, image_size=(256, 256), batch_size: int = 8) -> float:
    """Mean fraction of the image that RU-Net's ROI mask keeps (1.0: the whole image).

    Near 1 the first U-Net predicts foreground everywhere (e.g. early in training: the
    Dice loss ignores the background class), the mask is all ones, and ``dil`` and
    ``shift`` change nothing. :func:`predict_examples` and :func:`evaluate_model` give the
    same value from their own forward pass; this is for when only the fraction is wanted.

    Args:
        model: a RU-Net (a ``roi_attention`` layer and a ``coarse`` output).
        examples: a TFDS camus split (unbatched).
        image_size: the model's input size.
        batch_size: images per forward pass.

    Returns:
        The mean of the mask over every pixel of every image.
    """
    model.get_layer("roi_attention")  # a clear error for a model without the attention
    means = []  # every image has the same size: the mean of the means is the pixel mean
    for *_, roi_fractions in _predicted_batches(model, examples, image_size, batch_size):
        if roi_fractions is None:
            raise ValueError(f"model {model.name!r} has no ROI mask (no 'coarse' output)")
        means.extend(roi_fractions)
    if not means:
        raise ValueError("the validation split has no images")
    return float(np.mean(means))


def prediction_key(item: Mapping) -> str:
    """The key of an item's prediction in a fold's ``predictions.npz``."""
    return f"{item['output']}/{item['patient_id']}_{item['view']}_{item['instant']}"


def saved_items(builder, split: str, fold_dir: Path, rows: Sequence[Mapping]) -> list[dict]:
    """Evaluation items of a finished fold rebuilt from its ``predictions.npz`` and the test
    split's references (no model): to evaluate again with other evaluation settings.

    Raises:
        FileNotFoundError: if the fold kept no predictions.
    """
    path = Path(fold_dir) / "predictions.npz"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: the fold cannot be evaluated again")
    refs = {}
    for ex in builder.as_dataset(split=split, shuffle_files=False).as_numpy_iterator():
        item = example_item(ex)
        refs[(item["patient_id"], item["view"], item["instant"])] = item
    items = []
    with np.load(path) as saved:
        for row in rows:
            key = (row["patient_id"], row["view"], row["instant"])
            item = dict(refs[key], model=row["model"], fold=row["fold"], output=row["output"])
            item["pred"] = saved[prediction_key(item)]
            if row.get("roi_fraction") is not None:
                item["roi_fraction"] = row["roi_fraction"]
            items.append(item)
    return items


def references_from_items(items: Sequence[dict]) -> dict[str, dict]:
    """Per-patient reference volumes from the cfg values carried by the items."""
    refs: dict[str, dict] = {}
    for it in items:
        refs.setdefault(it["patient_id"], {"EF": it["ef"], "EDV": it["edv"], "ESV": it["esv"]})
    return refs


def evaluate_model_on_split(
    model,
    builder,
    split: str,
    out_dir: str | os.PathLike,
    *,
    model_name: str | None = None,
    batch_size: int = 8,
    workers: int = 0,
    thresholds=None,
    postprocess="raw",
    distance_method: str = "edt",
    figures: bool = True,
):
    """Predict a prepared split with ``model`` and write the evaluation report.

    Every output of the model is evaluated on each image's native grid; the EF table uses
    the ``Info_*.cfg`` values carried by the dataset; RU-Net's rows carry ``roi_fraction``
    from the same forward pass. ``postprocess`` is "raw", "post" or "both" (the same
    predictions evaluated twice, ``per_image_postprocessed.csv`` beside ``per_image.csv``).

    Args:
        model: a ``keras.Model`` of this package (dict outputs).
        builder: the prepared TFDS camus builder.
        split: a TFDS split string, e.g. ``"group1"`` or ``fold_split_strings(b, 1)["test"]``.
        out_dir: where ``report.md``, ``report.json``, ``per_image.csv`` and figures go.
        model_name: the ``model`` column (default: ``model.name``).
        batch_size, workers, thresholds, postprocess, distance_method, figures: as for
            :func:`keras_runet.evaluation.evaluate_and_report`.

    Returns:
        ``(rows, paths)``.
    """
    from keras_runet.evaluation import evaluate_and_report

    image_size = tuple(int(s) for s in model.input_shape[1:3])
    predictions = predict_examples(
        model,
        builder.as_dataset(split=split, shuffle_files=False),
        image_size=image_size,
        batch_size=batch_size,
        keep_image=figures,
    )
    name = model_name or model.name
    items = [dict(it, model=name) for out in predictions.values() for it in out]
    return evaluate_and_report(
        items,
        out_dir,
        workers=workers,
        thresholds=thresholds,
        postprocess=postprocess,
        references=references_from_items(items),
        figures=figures,
        distance_method=distance_method,
    )


def outlier_rates(rows: Sequence[dict]) -> dict[str, float]:
    """Validation metrics of evaluation rows (:func:`~keras_runet.evaluation.evaluate_label_maps`).

    Args:
        rows: one row per image, with ``geometric_outlier``, ``anatomical_outlier`` and
            the ``LVendo_dice``, ``LVepi_dice``, ``LA_dice`` columns.

    Returns:
        ``val_outlier_rate`` (fraction of images that are either kind of outlier),
        ``val_geometric_outlier_rate``, ``val_anatomical_outlier_rate``,
        ``val_native_dice`` (mean over images of the mean of the three Dice, a structure
        missing from the prediction counting 0) and ``val_images``.

    Example:
        >>> rates = outlier_rates([{"geometric_outlier": True, "anatomical_outlier": False,
        ...                         "LVendo_dice": 0.9, "LVepi_dice": 0.9, "LA_dice": 0.9}])
        >>> rates["val_outlier_rate"], rates["val_images"]
        (1.0, 1)
    """
    if not rows:
        raise ValueError("no evaluation rows: the validation split has no images")
    geo = np.array([bool(r["geometric_outlier"]) for r in rows])
    ana = np.array([bool(r["anatomical_outlier"]) for r in rows])
    dices = np.array([[r[f"{s}_dice"] for s in STRUCTURES] for r in rows], dtype=float)
    per_image = np.nan_to_num(dices, nan=0.0).mean(axis=1)
    return {
        "val_outlier_rate": float(np.mean(geo | ana)),
        "val_geometric_outlier_rate": float(np.mean(geo)),
        "val_anatomical_outlier_rate": float(np.mean(ana)),
        "val_native_dice": float(per_image.mean()),
        "val_images": len(rows),
    }


def evaluate_model(
    model,
    examples,
    *,
    image_size=(256, 256),
    batch_size: int = 8,
    thresholds=None,
    workers: int = 0,
    output: str = "segmentation",
) -> dict[str, float]:
    """Outlier rates, native-grid Dice and ROI fraction of ``model`` on a camus split.

    One forward pass (:func:`predict_examples`); the predictions are brought back to each
    image's native grid (resize the probabilities, then argmax) and evaluated in mm by
    :func:`keras_runet.evaluation.evaluate_label_maps`.

    Args:
        model: a model with dict outputs (``segmentation``).
        examples: a TFDS camus split (``tf.data.Dataset`` of examples, unbatched).
        image_size: the model's input size.
        batch_size: images per forward pass.
        thresholds: :class:`~keras_runet.evaluation.OutlierThresholds` (default: Table I).
        workers: evaluation worker processes (0: in this process).
        output: the model output to evaluate.

    Returns:
        :func:`outlier_rates` (``val_outlier_rate``, ``val_geometric_outlier_rate``,
        ``val_anatomical_outlier_rate``, ``val_native_dice``, ``val_images``; an outlier
        is either kind for ``val_outlier_rate``), plus ``val_roi_fraction`` (the mean of
        RU-Net's ROI mask over the split, as :func:`roi_fraction`) for a RU-Net.
    """
    from keras_runet.evaluation import evaluate_label_maps

    items = predict_examples(
        model, examples, image_size=image_size, batch_size=batch_size, outputs=[output]
    )[output]
    if not items:
        raise ValueError("the validation split has no images to evaluate")
    rows = evaluate_label_maps(  # a tuning trial logs its own line: no progress here
        items,
        workers=workers,
        thresholds=thresholds,
        reference_shapes=False,
        volumes=False,
        progress=False,
    )
    metrics = outlier_rates(rows)
    if "roi_fraction" in items[0]:
        metrics["val_roi_fraction"] = float(np.mean([it["roi_fraction"] for it in items]))
    return metrics
