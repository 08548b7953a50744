"""From the TFDS ``camus`` dataset to training batches for any of the three models.

The pipeline (tf.data): decode -> image to float32 in [0, 1] -> resize to the model's size
if the config is not already there (image linearly, mask by nearest neighbour) -> optional
augmentation, applied identically to image and mask -> ``(image, {output: labels})`` ->
cache, shuffle, batch, prefetch. Targets are integer label maps ``(H, W)`` int32, which
:class:`~keras_runet.losses.MultiClassDiceLoss` and :class:`~keras_runet.metrics.DiceScore`
one-hot encode themselves (a quarter of the memory of one-hot targets).

Augmentation (training only): a random similarity transform (rotation, scaling, shift)
sampled per image, applied with bilinear interpolation to the image and nearest neighbour
to the mask (outside the image: 0), then random gamma and contrast / brightness on the
image only. Randomness is *stateless*, keyed on ``(seed, epoch, example index)``, so a run
is reproducible with a seed whatever the parallelism.

This module reads data only through TFDS and ``tfds_camus`` (docs/design.md).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from collections.abc import Sequence

import tensorflow as tf

log = logging.getLogger(__name__)

DEFAULT_IMAGE_SIZE = (256, 256)


@dataclasses.dataclass(frozen=True)
class Augmentation:
    """Ranges of the random augmentation (all uniform, symmetric around identity).

    Attributes:
        rotation_deg: maximal rotation in degrees.
        scale: maximal relative zoom (0.1: 0.9 .. 1.1).
        shift: maximal shift as a fraction of the image size.
        gamma: maximal log2 gamma (0.3: gamma in 2**-0.3 .. 2**0.3).
        contrast: maximal relative contrast change.
        brightness: maximal additive brightness change.
    """

    rotation_deg: float = 10.0
    scale: float = 0.1
    shift: float = 0.05
    gamma: float = 0.3
    contrast: float = 0.1
    brightness: float = 0.05


class DatasetSourceError(ValueError):
    """A prepared dataset was built from other files than the manual dir now given."""


def prepare_camus(
    manual_dir: str | os.PathLike,
    data_dir: str | os.PathLike,
    config: str = "256",
    *,
    force: bool = False,
    **builder_kwargs,
):
    """Build (once) the TFDS ``camus`` dataset from a CAMUS folder; return the builder.

    A dataset already prepared in ``data_dir`` is reused only if it was built from the same
    files (the fingerprint recorded in its metadata: names, sizes and modification times);
    otherwise :class:`DatasetSourceError`, unless ``force``, which rebuilds it. What a killed
    preparation left (TFDS's ``incomplete.*`` folders) is removed first.

    Args:
        manual_dir: the CAMUS download (either release, zipped as downloaded or extracted)
            or a synthetic CAMUS.
        data_dir: where TFDS writes the prepared TFRecords.
        config: builder config (``"256"``, ``"native"``, ``"half_sequence_256"``).
        force: rebuild even if a dataset is prepared there.
        **builder_kwargs: passed to the builder (``skip_invalid_patients=True``,
            ``release="nifti"``).

    Raises:
        DatasetSourceError: the prepared dataset was built from other files.
        tfds_camus.CamusFormatError: the download is not usable (all its problems listed).
    """
    import shutil

    import tensorflow_datasets as tfds

    import tfds_camus  # noqa: F401  (registers the builder)

    remove_incomplete(data_dir, config)
    builder = tfds.builder(f"camus/{config}", data_dir=str(data_dir), **builder_kwargs)
    if builder.is_prepared():
        if force:
            log.info("rebuilding %s (--force)", builder.data_path)
            shutil.rmtree(builder.data_path)
            builder = tfds.builder(f"camus/{config}", data_dir=str(data_dir), **builder_kwargs)
        else:
            check_source(builder, manual_dir)
            return builder
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir))
    )
    return builder


def remove_incomplete(data_dir: str | os.PathLike, config: str) -> list[str]:
    """Removes what a killed preparation of ``camus/<config>`` left in ``data_dir``: TFDS's
    ``incomplete.*`` dataset folders and half-done archive extractions. Returns their paths."""
    import shutil
    from pathlib import Path

    data_dir = Path(data_dir).expanduser()
    leftovers = [
        *(data_dir / "camus" / config).glob("incomplete.*"),
        *(data_dir / "downloads" / "extracted").glob("incomplete.*"),
    ]
    for path in leftovers:
        log.warning("removing %s, left by an interrupted preparation", path)
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    return [str(p) for p in leftovers]


def check_source(builder, manual_dir: str | os.PathLike) -> None:
    """Raises :class:`DatasetSourceError` if ``builder``'s dataset was not built from the
    files now in ``manual_dir`` (by the fingerprint in its metadata)."""
    from pathlib import Path

    from tfds_camus.archives import download_fingerprint

    source = dict(builder.info.metadata or {}).get("source") or {}
    recorded = source.get("fingerprint")
    where = f"{builder.info.full_name} in {builder.data_dir}"
    fix = (
        "rebuild it with `runet prepare --force` (prepare_camus(..., force=True)), or give "
        "another --data-dir"
    )
    if not recorded:
        raise DatasetSourceError(
            f"{where} does not record what it was built from (prepared by an older version); " + fix
        )
    extracted = Path(builder.data_dir).parents[2] / "downloads" / "extracted"
    current = download_fingerprint(Path(manual_dir).expanduser(), exclude=[extracted])
    if current != recorded:
        raise DatasetSourceError(
            f"{where} was built from {source.get('manual_dir')} (fingerprint {recorded}), but "
            f"{manual_dir} holds other files now (fingerprint {current}: a file was replaced, "
            f"added or removed); {fix}"
        )
    if Path(source.get("manual_dir", "")).resolve() != Path(manual_dir).expanduser().resolve():
        log.info("%s was built from %s, which holds the same files", where, source["manual_dir"])


def load_builder(data_dir: str | os.PathLike, config: str = "256"):
    """The prepared ``camus`` builder in ``data_dir`` (raises if it was never prepared)."""
    import tensorflow_datasets as tfds

    import tfds_camus  # noqa: F401

    builder = tfds.builder(f"camus/{config}", data_dir=str(data_dir))
    if not builder.is_prepared():
        raise FileNotFoundError(
            f"the camus/{config} dataset is not prepared in {data_dir}; run "
            f"`runet prepare --manual-dir CAMUS_DIR --data-dir {data_dir}` first"
        )
    return builder


def to_model_pair(example, outputs: Sequence[str], image_size=DEFAULT_IMAGE_SIZE):
    """``(image float32 [0, 1] (H, W, 1), {output: int32 labels (H, W)})`` from an example."""
    image = tf.cast(example["image"], tf.float32) / 255.0
    mask = tf.cast(example["mask"], tf.int32)
    if image_size is not None:
        image, mask = resize_pair(image, mask, image_size)
    labels = mask[..., 0]
    return image, {name: labels for name in outputs}


def resize_pair(image, mask, image_size):
    """Resize image (bilinear) and mask (nearest) to ``image_size`` if they differ."""
    size = tf.constant(image_size, tf.int32)
    same = tf.reduce_all(tf.equal(tf.shape(image)[:2], size))

    def resize():
        img = tf.image.resize(image, size, method="bilinear")
        msk = tf.image.resize(mask, size, method="nearest")
        return tf.clip_by_value(img, 0.0, 1.0), tf.cast(msk, tf.int32)

    image, mask = tf.cond(same, lambda: (image, mask), resize)
    image = tf.ensure_shape(image, (*image_size, 1))
    mask = tf.ensure_shape(mask, (*image_size, 1))
    return image, mask


def _similarity_matrix(seed, height, width, aug: Augmentation):
    """The 8 projective-transform parameters of a random rotation + zoom + shift."""
    u = tf.random.stateless_uniform((4,), seed=seed, minval=-1.0, maxval=1.0)
    angle = u[0] * aug.rotation_deg * math.pi / 180.0
    zoom = 1.0 + u[1] * aug.scale
    h = tf.cast(height, tf.float32)
    w = tf.cast(width, tf.float32)
    ty, tx = u[2] * aug.shift * h, u[3] * aug.shift * w
    cy, cx = (h - 1.0) / 2.0, (w - 1.0) / 2.0
    # The transform maps *output* pixel (x, y) to the *input* pixel it samples:
    # rotate and scale about the centre, then shift.
    cos, sin = tf.cos(angle) / zoom, tf.sin(angle) / zoom
    a0, a1 = cos, -sin
    b0, b1 = sin, cos
    a2 = cx - a0 * (cx + tx) - a1 * (cy + ty)
    b2 = cy - b0 * (cx + tx) - b1 * (cy + ty)
    return tf.stack([a0, a1, a2, b0, b1, b2, 0.0, 0.0])


def augment_pair(image, mask, seed, aug: Augmentation = Augmentation()):
    """Augment one ``(image (H, W, 1) float [0, 1], mask (H, W, 1) int)`` pair.

    The geometric transform is the same for both (image bilinear, mask nearest); the
    intensity changes touch the image only. ``seed`` is a stateless seed ``(2,)`` int.
    """
    shape = tf.shape(image)
    seeds = tf.random.experimental.stateless_split(seed, 2)
    transform = _similarity_matrix(seeds[0], shape[0], shape[1], aug)[None]
    out_shape = shape[:2]

    def warp(x, interpolation):
        return tf.raw_ops.ImageProjectiveTransformV3(
            images=x[None],
            transforms=transform,
            output_shape=out_shape,
            interpolation=interpolation,
            fill_mode="CONSTANT",
            fill_value=0.0,
        )[0]

    image = warp(image, "BILINEAR")
    mask = tf.cast(warp(tf.cast(mask, tf.float32), "NEAREST"), tf.int32)
    v = tf.random.stateless_uniform((3,), seed=seeds[1], minval=-1.0, maxval=1.0)
    gamma = tf.pow(2.0, v[0] * aug.gamma)
    image = tf.pow(tf.clip_by_value(image, 0.0, 1.0), gamma)
    image = (image - 0.5) * (1.0 + v[1] * aug.contrast) + 0.5 + v[2] * aug.brightness
    return tf.clip_by_value(image, 0.0, 1.0), mask


def make_dataset(
    ds: tf.data.Dataset,
    outputs: Sequence[str],
    *,
    batch_size: int = 8,
    training: bool = False,
    augmentation: Augmentation | None = None,
    seed: int = 0,
    image_size=DEFAULT_IMAGE_SIZE,
    cache: bool | str = True,
    shuffle_buffer: int = 2048,
    first_example: int = 0,
    drop_remainder: bool = False,
) -> tf.data.Dataset:
    """Batches of ``(image, {output: labels})`` from a TFDS camus split.

    A training dataset (``training=True``) is shuffled (seeded, reshuffled every pass),
    augmented and **repeated forever**: pass ``steps_per_epoch`` to ``fit`` (see
    :func:`steps_per_epoch`). Its augmentation is keyed on ``(seed, n)`` where ``n`` counts
    examples from the start of training, so every epoch draws new transforms and two runs
    with the same seed see the same batches. An evaluation dataset is one ordered pass.

    Args:
        ds: examples from ``builder.as_dataset(split=...)`` (dicts).
        outputs: the model's output names (``model.output_names``): every output gets the
            same target.
        batch_size: images per batch.
        training: shuffle, augment (when ``augmentation`` is given) and repeat.
        augmentation: :class:`Augmentation` ranges, or None for none.
        seed: seeds the shuffle and the augmentation.
        image_size: the model's input size; images of another size are resized.
        cache: cache the decoded, resized examples in memory (True) or in a file (a path).
        shuffle_buffer: shuffle buffer size (training only).
        first_example: index ``n`` of the first example (a resumed run passes
            ``initial_epoch * steps_per_epoch * batch_size`` to continue the sequence).
        drop_remainder: drop a last incomplete batch (e.g. for distribution strategies).
    """
    outputs = list(outputs)
    image_size = None if image_size is None else tuple(image_size)
    ds = ds.map(
        lambda ex: _decode(ex, image_size), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
    )
    if cache:
        ds = ds.cache(cache if isinstance(cache, str) else "")
    if training:
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True).repeat()
        if augmentation is not None:
            offset = tf.constant(first_example, tf.int64)
            key = tf.constant(seed, tf.int64)
            ds = ds.enumerate().map(
                lambda n, pair: augment_pair(
                    pair[0], pair[1], tf.stack([key, n + offset]), augmentation
                ),
                num_parallel_calls=tf.data.AUTOTUNE,
                deterministic=True,
            )
    ds = ds.map(
        lambda image, mask: (image, {name: mask[..., 0] for name in outputs}),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    return ds.prefetch(tf.data.AUTOTUNE)


def steps_per_epoch(num_examples: int, batch_size: int) -> int:
    """Batches in one pass over ``num_examples`` (at least 1)."""
    return max(1, math.ceil(num_examples / batch_size))


def _decode(example, image_size):
    image = tf.cast(example["image"], tf.float32) / 255.0
    mask = tf.cast(example["mask"], tf.int32)
    if image_size is not None:
        image, mask = resize_pair(image, mask, image_size)
    return image, mask


def dataset_size(ds: tf.data.Dataset) -> int:
    """Number of elements (uses the cardinality when known, else counts)."""
    n = int(ds.cardinality())
    if n >= 0:
        return n
    return int(ds.reduce(0, lambda c, _: c + 1))


def as_numpy_examples(ds: tf.data.Dataset, keys: Sequence[str]) -> list[dict]:
    """Materialise some features of a (small) split as numpy dicts, for evaluation."""
    out = []
    for ex in ds.as_numpy_iterator():
        item = {}
        for k in keys:
            v = ex[k]
            item[k] = v.decode() if isinstance(v, bytes) else v
        out.append(item)
    return out


__all__ = [
    "Augmentation",
    "DEFAULT_IMAGE_SIZE",
    "as_numpy_examples",
    "augment_pair",
    "dataset_size",
    "load_builder",
    "make_dataset",
    "prepare_camus",
    "resize_pair",
    "steps_per_epoch",
    "to_model_pair",
]
