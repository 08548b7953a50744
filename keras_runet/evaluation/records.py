"""Per-image evaluation of predicted label maps against reference label maps.

:func:`evaluate_pair` turns one (prediction, reference) pair of CAMUS label maps on the
native grid into a flat row (a dict); :func:`evaluate_label_maps` does it for many pairs,
in parallel worker processes. The rows feed :mod:`keras_runet.evaluation.tables` and
:mod:`keras_runet.evaluation.reports`.

Item (input of :func:`evaluate_label_maps`): a mapping with

- ``pred``, ``ref``: 2D integer label maps (0 background, 1 LV, 2 myocardium, 3 LA), same
  shape, on the native grid (see :func:`to_native_grid` to bring a prediction back);
- ``spacing``: ``(row_mm, col_mm)``;
- ``instant``: "ED" or "ES" (required: the geometric thresholds depend on it);
- optional metadata, copied into the row: ``model`` (default ""), ``output``
  (default "segmentation"), ``patient_id``, ``view`` ("2CH"/"4CH"), ``image_quality``
  ("Good"/"Medium"/"Poor"), ``fold``. Other keys (e.g. ``image``) are ignored.

Row (output), in this order:

- metadata: ``model, output, patient_id, view, instant, image_quality, fold, height,
  width, spacing_row_mm, spacing_col_mm, postprocessed``;
- for each structure ``S`` in ``LVendo`` ({1}), ``LVepi`` ({1, 2}), ``LA`` ({3}):
  ``S_dice, S_mad_mm, S_hd_mm, S_mad_pooled_mm`` (prediction vs reference),
  ``S_convexity, S_simplicity`` (prediction), ``S_ref_convexity, S_ref_simplicity``
  (reference), ``S_pred_area_mm2, S_ref_area_mm2``;
- ``geometric_outlier, geometric_reasons, anatomical_outlier, anatomical_reasons,
  ref_anatomical_outlier`` (reasons: ";"-joined metric names, "" if none);
- ``lv_length_mm, lv_diameters_mm, ref_lv_length_mm, ref_lv_diameters_mm``: the long
  axis and the 20 disk diameters of the LV (prediction, reference) for Simpson's biplane
  volumes (:func:`keras_runet.evaluation.tables.patient_volumes` pairs the 2CH and 4CH
  rows of a patient).

Missing metrics are NaN (an empty structure), never an exception.

Progress (:class:`Progress`, also used by :func:`keras_runet.predict.predict_files`): a long
:func:`evaluate_label_maps` shows a tqdm bar when stderr is a terminal, else logs one INFO
line (``logging``, this module's logger) every 10 % of the items (at most every 50) with the
count, the elapsed time and an estimate of the time left; ``progress=False`` silences it.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import sys
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sized
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from keras_runet.evaluation._validation import (
    LVENDO,
    STRUCTURES,
    as_label_map,
    as_spacing,
    bbox,
    check_instant,
    crop_padded,
)
from keras_runet.evaluation.distances import (
    _check_method,
    _contour_padded,
    _directed,
    _summarise,
)
from keras_runet.evaluation.outliers import (
    OutlierThresholds,
    anatomical_outlier,
    geometric_outlier,
)
from keras_runet.evaluation.postprocess import postprocess_label_map, postprocess_passes
from keras_runet.evaluation.shapes import (
    DEFAULT_CONVENTION,
    _convexity_cropped,
    _simplicity_cropped,
    resample_isotropic,
    shape_metrics,
)
from keras_runet.evaluation.volumes import N_DISKS, _lv_disks_box

__all__ = ["META_KEYS", "Progress", "evaluate_label_maps", "evaluate_pair", "to_native_grid"]

logger = logging.getLogger(__name__)

PROGRESS_MODES = ("auto", "bar", "log")


def _duration(seconds: float) -> str:
    """12.3 s, 4 min 05 s, 1 h 02 min."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


class Progress:
    """Progress of a long loop over items: a tqdm bar on a terminal, else log lines.

    Args:
        total: the number of items, or None when unknown (a generator).
        desc: what is done, e.g. ``"evaluating"``; starts each log line.
        mode: ``"auto"`` (or True): a bar when ``stream`` is a terminal (and tqdm is
            installed), else log lines; ``"bar"`` or ``"log"`` to choose; False or None:
            nothing.
        unit: the items' name in the log lines (plural with an "s").
        stream: where the bar goes (default: ``sys.stderr`` at construction).
        log: the logger of the lines (default: this module's); level INFO.
        every: log every this many items (default: 10 % of ``total``, at most 50; 50 when
            ``total`` is unknown); the last item is always logged.

    Use as a context manager; call :meth:`update` after each item (or ``n`` items).

    Raises:
        ValueError: an unknown ``mode``.
    """

    def __init__(
        self,
        total: int | None,
        desc: str,
        mode="auto",
        *,
        unit: str = "image",
        stream=None,
        log: logging.Logger | None = None,
        every: int | None = None,
    ):
        if mode is True:
            mode = "auto"
        if mode not in (False, None, *PROGRESS_MODES):
            raise ValueError(
                f"progress must be one of {PROGRESS_MODES}, True, False or None, got {mode!r}"
            )
        self.total = None if total is None else int(total)
        self.desc, self.unit, self.count = desc, unit, 0
        self.log = log or logger
        self.stream = sys.stderr if stream is None else stream
        if every is None:
            every = 50 if not self.total else min(50, math.ceil(self.total / 10))
        self.every = max(1, int(every))
        self._start = time.monotonic()
        self._bar = None
        if mode == "auto":
            isatty = getattr(self.stream, "isatty", None)
            mode = "bar" if isatty is not None and isatty() else "log"
        if mode == "bar":
            try:
                from tqdm.auto import tqdm
            except ImportError:  # tqdm comes with TFDS; without it, log lines
                mode = "log"
            else:
                self._bar = tqdm(
                    total=self.total, desc=desc, unit=unit, file=self.stream, dynamic_ncols=True
                )
        self.mode = mode or None

    def update(self, n: int = 1) -> None:
        """``n`` more items done."""
        before, self.count = self.count, self.count + n
        if self._bar is not None:
            self._bar.update(n)
        elif self.mode == "log" and (
            self.count // self.every > before // self.every or self.count == self.total
        ):
            self.log.info("%s", self.line())

    def line(self) -> str:
        """``evaluating: 20/200 images (10 %), 3.1 s elapsed, ~27.9 s left``."""
        elapsed = time.monotonic() - self._start
        units = f"{self.unit}s"
        if not self.total:
            return f"{self.desc}: {self.count} {units}, {_duration(elapsed)} elapsed"
        text = (
            f"{self.desc}: {self.count}/{self.total} {units} "
            f"({100 * self.count / self.total:.0f} %), {_duration(elapsed)} elapsed"
        )
        if 0 < self.count < self.total:
            text += f", ~{_duration(elapsed * (self.total - self.count) / self.count)} left"
        return text

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


META_KEYS = ("model", "output", "patient_id", "view", "instant", "image_quality", "fold")
_META_DEFAULTS = {"model": "", "output": "segmentation"}


def to_native_grid(probabilities, native_shape) -> np.ndarray:
    """Bring a prediction back to the native grid: resize the probabilities, then argmax.

    Args:
        probabilities: (H, W, C) class probabilities (or scores) of one image.
        native_shape: ``(rows, cols)`` of the native image.

    Returns:
        A uint8 label map of shape ``native_shape``.

    Raises:
        ValueError: wrong shape or dtype, or a NaN / infinite value.
    """
    from skimage.transform import resize

    p = np.asarray(probabilities)
    if p.ndim != 3 or p.shape[-1] < 2:
        raise ValueError(f"probabilities must have shape (H, W, C) with C >= 2, got {p.shape}")
    if not np.issubdtype(p.dtype, np.floating):
        raise ValueError(f"probabilities must be floating point, got dtype {p.dtype}")
    bad = int(np.count_nonzero(~np.isfinite(p)))
    if bad:  # argmax would silently pick class 0 (or the NaN's class) there
        raise ValueError(f"probabilities hold {bad} non-finite value(s) (NaN or inf) of {p.size}")
    try:
        rows, cols = (int(n) for n in native_shape)
    except (TypeError, ValueError):
        raise ValueError(f"native_shape must be (rows, cols), got {native_shape!r}") from None
    if rows < 1 or cols < 1:
        raise ValueError(f"native_shape must be positive, got {native_shape!r}")
    if (rows, cols) != p.shape[:2]:
        p = resize(
            p.astype(np.float32, copy=False),
            (rows, cols, p.shape[-1]),
            order=1,
            mode="edge",
            anti_aliasing=False,
            preserve_range=True,
        )
    return np.argmax(p, axis=-1).astype(np.uint8)


def _structure_mask(lm: np.ndarray, labels: tuple[int, ...]) -> np.ndarray:
    if len(labels) == 1:
        return lm == labels[0]
    if labels == (1, 2):  # uint8 wrap-around: 0 -> 255
        return (lm.astype(np.uint8, copy=False) - np.uint8(1)) <= 1
    return np.isin(lm, labels)


def _shape_metrics(mask_box, contour_box, pts, spacing, origin):
    cx = _convexity_cropped(mask_box, contour_box, pts)
    if math.isclose(spacing[0], spacing[1], rel_tol=1e-6):
        sp = _simplicity_cropped(mask_box, contour_box, pts)
    else:
        iso = np.pad(resample_isotropic(mask_box[1:-1, 1:-1], spacing, origin), 1)
        sp = _simplicity_cropped(iso, _contour_padded(iso))
    return cx, sp


def _one_pass(postprocess) -> bool:
    """``postprocess`` as the one pass it asks for: False / "raw" or True / "post" (a
    ValueError for "both", which :func:`keras_runet.evaluation.evaluate_modes` runs as two
    passes, and for anything else)."""
    passes = postprocess_passes(postprocess)
    if len(passes) != 1:
        raise ValueError(
            f"postprocess={postprocess!r}: one evaluation is one pass, 'raw' or 'post' "
            "(keras_runet.evaluation.evaluate_modes evaluates 'both')"
        )
    return passes[0]


def evaluate_pair(
    pred,
    ref,
    spacing,
    *,
    instant: str,
    thresholds: OutlierThresholds | None = None,
    postprocess: bool | str = False,
    reference_shapes: bool = True,
    volumes: bool = True,
    meta: Mapping | None = None,
    distance_method: str = "edt",
) -> dict:
    """Evaluate one predicted label map against its reference (one row).

    Args:
        pred: 2D integer label map (0..3), the prediction on the native grid.
        ref: 2D integer label map (0..3), the reference, same shape.
        spacing: ``(row_mm, col_mm)``.
        instant: "ED" or "ES".
        thresholds: :class:`OutlierThresholds` (default: Table I).
        postprocess: apply the CAMUS post-processing to ``pred`` first (True or "post";
            False or "raw": not).
        reference_shapes: also measure the reference's convexity and simplicity (NaN if
            False).
        volumes: also measure the LV long axis and disk diameters (NaN if False).
        meta: metadata copied at the front of the row (see the module docstring).
        distance_method: "edt" (default, the definition) or "kdtree" (same numbers,
            faster), see :func:`keras_runet.evaluation.contour_distances`.

    Returns:
        The row, a flat dict (see the module docstring for its keys).
    """
    postprocess = _one_pass(postprocess)
    p = as_label_map(pred, "pred")
    g = as_label_map(ref, "ref")
    if p.shape != g.shape:
        raise ValueError(f"pred and ref must have the same shape, got {p.shape} and {g.shape}")
    spacing = as_spacing(spacing)
    check_instant(instant)
    _check_method(distance_method)
    thresholds = thresholds or OutlierThresholds()

    row: dict = {k: None for k in META_KEYS}
    row.update(_META_DEFAULTS)
    if meta:
        row.update({k: meta[k] for k in META_KEYS if k in meta and meta[k] is not None})
    row["instant"] = instant
    row.update(
        height=int(p.shape[0]),
        width=int(p.shape[1]),
        spacing_row_mm=spacing[0],
        spacing_col_mm=spacing[1],
        postprocessed=bool(postprocess),
    )

    # Work on the bounding box of everything labelled, padded by one zero pixel: every
    # metric (and the post-processing, whose background outside the box is all connected)
    # is the same there as on the whole image.
    # Sp and Cx under another measurement convention than the default (thresholds.convention,
    # see keras_runet.evaluation.shapes) are measured on the whole maps: a grid such as the
    # model's 256 x 256 is a grid of the whole image, not of the crop.
    convention = thresholds.convention
    full = None
    if convention != DEFAULT_CONVENTION:
        full = (postprocess_label_map(p) if postprocess else p, g)
    box = bbox((p > 0) | (g > 0))
    origin = (0, 0)
    if box is not None:
        p, g = crop_padded((p, g), box)
        origin = (box[0], box[2])
    if postprocess:
        p = postprocess_label_map(p)

    def shapes(which: int, mask, contour, pts):
        if full is None:
            return _shape_metrics(mask, contour, pts, spacing, origin)
        return shape_metrics(np.isin(full[which], labels), spacing, convention)

    pixel_mm2 = spacing[0] * spacing[1]
    nan = float("nan")
    lv = {}
    for name, labels in STRUCTURES.items():
        pm = _structure_mask(p, labels)
        gm = _structure_mask(g, labels)
        n_p, n_g = int(np.count_nonzero(pm)), int(np.count_nonzero(gm))
        cp = _contour_padded(pm) if n_p else None
        cg = _contour_padded(gm) if n_g else None
        p_pts = np.nonzero(cp) if n_p else None
        g_pts = np.nonzero(cg) if n_g else None
        if name == LVENDO:
            lv = {"pred": (n_p, pm, cp, p_pts), "ref": (n_g, gm, cg, g_pts)}
        dice = 2.0 * np.count_nonzero(pm & gm) / (n_p + n_g) if n_p + n_g else nan
        dists = (
            _directed(pm, gm, spacing, cp, cg, p_pts, g_pts, distance_method)
            if n_p and n_g
            else None
        )
        d = _summarise(dists)
        cx, sp = shapes(0, pm, cp, p_pts) if n_p else (nan, nan)
        if reference_shapes and n_g:
            rcx, rsp = shapes(1, gm, cg, g_pts)
        else:
            rcx, rsp = nan, nan
        row.update(
            {
                f"{name}_dice": float(dice),
                f"{name}_mad_mm": d["mad_mm"],
                f"{name}_hd_mm": d["hd_mm"],
                f"{name}_mad_pooled_mm": d["mad_pooled_mm"],
                f"{name}_convexity": float(cx),
                f"{name}_simplicity": float(sp),
                f"{name}_ref_convexity": float(rcx),
                f"{name}_ref_simplicity": float(rsp),
                f"{name}_pred_area_mm2": n_p * pixel_mm2,
                f"{name}_ref_area_mm2": n_g * pixel_mm2,
            }
        )

    geo, geo_why = geometric_outlier(row, instant, thresholds)
    ana, ana_why = anatomical_outlier(row, thresholds)
    row.update(
        geometric_outlier=geo,
        geometric_reasons=";".join(geo_why),
        anatomical_outlier=ana,
        anatomical_reasons=";".join(ana_why),
        ref_anatomical_outlier=(
            anatomical_outlier(row, thresholds, prefix="ref_")[0] if reference_shapes else None
        ),
    )
    disks = {}
    for which in ("pred", "ref"):
        n, mask, cont, pts = lv[which]
        if volumes and n:
            disks[which] = _lv_disks_box(mask, cont, spacing, N_DISKS, pts=pts)
        else:
            disks[which] = (nan, [nan] * N_DISKS)
    (lp, dp), (lr, dr) = disks["pred"], disks["ref"]
    row.update(
        lv_length_mm=float(lp),
        lv_diameters_mm=tuple(float(x) for x in dp),
        ref_lv_length_mm=float(lr),
        ref_lv_diameters_mm=tuple(float(x) for x in dr),
    )
    return row


def _payload(item) -> tuple:
    if not isinstance(item, Mapping):
        raise ValueError(
            f"each item must be a mapping with pred, ref, spacing, instant; got {type(item).__name__}"
        )
    missing = [k for k in ("pred", "ref", "spacing", "instant") if k not in item]
    if missing:
        raise ValueError(f"item is missing {missing} (keys present: {sorted(item)})")
    meta = {k: item[k] for k in META_KEYS if k in item}
    return item["pred"], item["ref"], item["spacing"], item["instant"], meta


def _evaluate_chunk(payloads, options):
    return [
        evaluate_pair(pred, ref, spacing, instant=instant, meta=meta, **options)
        for pred, ref, spacing, instant, meta in payloads
    ]


def evaluate_label_maps(
    items: Iterable[Mapping],
    *,
    workers: int | None = 0,
    thresholds: OutlierThresholds | None = None,
    postprocess: bool | str = False,
    reference_shapes: bool = True,
    volumes: bool = True,
    chunksize: int = 16,
    distance_method: str = "edt",
    progress="auto",
) -> list[dict]:
    """Evaluate many (prediction, reference) label-map pairs; one row per item, in order.

    Args:
        items: mappings with ``pred``, ``ref``, ``spacing``, ``instant`` and optional
            metadata (see the module docstring). May be a generator: items are read
            lazily, at most a few chunks ahead of the workers.
        workers: worker processes; 0 or 1 evaluates in this process, None uses
            ``os.cpu_count()``.
        thresholds: :class:`OutlierThresholds` (default: Table I).
        postprocess: apply the CAMUS post-processing to each prediction (True or "post";
            False or "raw": not).
        reference_shapes: also measure the references' convexity and simplicity.
        volumes: also measure the LV long axes and disk diameters.
        chunksize: items sent to a worker at once.
        distance_method: "edt" (default) or "kdtree" (same numbers, faster).
        progress: :class:`Progress` mode: "auto" (default: a tqdm bar on a terminal, else
            an INFO log line every 10 % of the items), "bar", "log", or False (silent, e.g.
            for tuning trials).

    Returns:
        A list of rows (dicts), see :func:`evaluate_pair`.
    """
    if workers is None:
        workers = os.cpu_count() or 1
    if not isinstance(workers, int) or workers < 0:
        raise ValueError(f"workers must be an integer >= 0, got {workers!r}")
    if not isinstance(chunksize, int) or chunksize < 1:
        raise ValueError(f"chunksize must be an integer >= 1, got {chunksize!r}")
    options = dict(
        thresholds=thresholds or OutlierThresholds(),
        postprocess=_one_pass(postprocess),
        reference_shapes=reference_shapes,
        volumes=volumes,
        distance_method=_check_method(distance_method),
    )
    total = len(items) if isinstance(items, Sized) else None
    payloads = (_payload(item) for item in items)
    rows: list[dict] = []
    with Progress(total, "evaluating", progress) as bar:
        if workers <= 1:
            for payload in payloads:
                rows.extend(_evaluate_chunk([payload], options))
                bar.update()
            return rows

        def collect(future):
            done = future.result()
            rows.extend(done)
            bar.update(len(done))

        chunks = iter(lambda: list(itertools.islice(payloads, chunksize)), [])
        with ProcessPoolExecutor(max_workers=workers) as pool:
            pending: deque = deque()
            for chunk in chunks:
                pending.append(pool.submit(_evaluate_chunk, chunk, options))
                if len(pending) >= 2 * workers:
                    collect(pending.popleft())
            while pending:
                collect(pending.popleft())
    return rows
