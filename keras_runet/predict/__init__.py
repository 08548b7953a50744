"""Segment new echocardiography images and sequences, flag likely failures without ground truth.

For every input file (PNG, MetaImage ``.mhd``, NIfTI ``.nii`` / ``.nii.gz``, DICOM ``.dcm``)
this module

1. reads the pixels (single channel, or RGB DICOM converted to grey by luminance; 8-bit,
   16-bit or [0, 1] floats, scaled to [0, 1]) and, except for PNG, the spacing, origin and
   direction. A 2-D image (or a 3-D file with one slice) is one image; a 3-D image with
   several slices is a 2D+t sequence (a CAMUS half sequence, a DICOM cine loop) whose
   third axis is time, segmented frame by frame;
2. runs the model through the same graph as the exported ``serving_default`` signature
   (:func:`keras_runet.export.make_serving_functions`: resize to the model's size, predict,
   resize the probabilities back to the native size, argmax), so a prediction here and one
   from TF Serving agree;
3. writes the label map with the input's geometry (``OUT/<stem>.<ext>``: the input's
   format, NIfTI ``.nii.gz`` for DICOM; one 3-D label map for a sequence; values 0
   background, 1 LV cavity, 2 myocardium, 3 left atrium: the names ``runet evaluate``
   reads), a PNG overlay (``OUT/overlays/<stem>.overlay.png``; for a sequence its ED-like
   and ES-like frames side by side), optionally the softmax probabilities on the native
   grid (:func:`write_probabilities`), and for a sequence the LV cavity area curve
   (``OUT/plots/<stem>.lv_area.png``);
4. measures the RU-Net paper's anatomical criteria, convexity and simplicity of the LV
   cavity (LVendo) and of the filled epicardium (LVepi), which need no ground truth: a value
   below the lowest seen on expert annotations
   (:class:`keras_runet.evaluation.OutlierThresholds`), or a missing structure, marks the
   image as a *suspicious shape*, a likely failure worth a look; the *quality score*
   (:func:`keras_runet.evaluation.quality_score`: the smallest normalised margin of those
   criteria to their limits, negative exactly when the image is flagged, -inf for a missing
   structure) ranks the images from the most to the least suspicious. One CSV row per image,
   one per frame of a sequence (``OUT/predictions.csv``, :data:`CSV_COLUMNS`);
5. for the 2CH and 4CH sequences of one case, EDV / ESV / EF by Simpson's biplane method at
   the frames of largest and smallest LV area (``OUT/volumes.csv``,
   :mod:`keras_runet.predict.sequences`).

A file that cannot be used (not an image, several channels, empty, NaN, a 4-D image...)
gets a row with ``status=error`` and the reason; the other files are still processed.

Modules: :mod:`~keras_runet.predict.images` (reading inputs, writing label maps and
probabilities), :mod:`~keras_runet.predict.rows` (criteria, flag, ``predictions.csv`` and
what a rerun reuses), :mod:`~keras_runet.predict.sequences` (LV area per frame, ED-like /
ES-like frames, volumes); :class:`Predictor` and :func:`predict_files` here. The user's
guide is docs/predict.md.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from keras_runet.evaluation import OutlierThresholds
from keras_runet.evaluation.records import Progress
from keras_runet.predict.images import (
    FORMATS,
    ImageReadError,
    InputImage,
    _spacing_pair,
    _stem,
    find_images,
    image_format,
    overlay_image,
    read_input_image,
    read_label_map,
    write_label_map,
    write_probabilities,
)
from keras_runet.predict.rows import (
    CSV_COLUMNS,
    _append_csv_rows,
    _done_rows,
    _row_spacing,
    read_csv,
    shape_criteria,
    write_csv,
)
from keras_runet.predict.sequences import (
    case_volumes,
    extreme_frames,
    lv_areas,
    pair_views,
    plot_lv_area,
    write_volumes_csv,
)
from tfds_camus.atomic import atomic_path

__all__ = [
    "CSV_COLUMNS",
    "FORMATS",
    "ImageReadError",
    "InputImage",
    "Predictor",
    "find_images",
    "image_format",
    "overlay_image",
    "predict_files",
    "read_csv",
    "read_input_image",
    "read_label_map",
    "shape_criteria",
    "write_csv",
    "write_label_map",
    "write_probabilities",
]

logger = logging.getLogger(__name__)


class Predictor:
    """Runs a model on images of any size, as the exported ``serving_default`` does.

    On the TensorFlow and the JAX backend alike: the function is the export's
    (:func:`keras_runet.export.make_serving_functions`; on JAX the model's forward pass is
    converted with jax2tf once, here).

    Args:
        model: a keras-runet model (``keras.Model``).
        batch_size: frames of a sequence run at once.

    Example (a trained model; not run as a doctest)::

        predictor = Predictor(keras_runet.export.load_model("runet.keras"))
        out = predictor(pixels)  # (rows, cols) in [0, 1], or (frames, rows, cols)
        assert out["segmentation"].shape == pixels.shape
    """

    def __init__(self, model, batch_size: int = 8):
        from keras_runet.export import DEFAULT_SIGNATURE, make_serving_functions

        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        self.model = model
        self.batch_size = batch_size
        self._fn = make_serving_functions(model)[DEFAULT_SIGNATURE]

    def __call__(self, pixels: np.ndarray) -> dict[str, np.ndarray]:
        """Label maps (``segmentation``, ``coarse`` for RU-Net) and ``probabilities``
        (classes last) of one ``(rows, cols)`` image or of each frame of a
        ``(frames, rows, cols)`` sequence, at its size."""
        x = np.asarray(pixels, np.float32)
        single = x.ndim == 2
        frames = x[None] if single else x
        parts = [
            {k: v.numpy() for k, v in self._fn(frames[i : i + self.batch_size, ..., None]).items()}
            for i in range(0, len(frames), self.batch_size)
        ]
        out = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        return {k: v[0] for k, v in out.items()} if single else out


def _output_name(path: Path, roots: Sequence[Path]) -> Path:
    """Where the outputs of ``path`` go, relative to the output folder: the path under the
    input folder it was found in (keeps sub-folders apart), else the file name."""
    for root in roots:
        try:
            rel = path.resolve().relative_to(root)
        except ValueError:
            continue
        return rel.parent / _stem(path)
    return Path(_stem(path))


def _overlay(image: InputImage, lm: np.ndarray) -> np.ndarray:
    """The overlay of an image; of a sequence, its ED-like and ES-like frames side by side."""
    if image.frames is None:
        return overlay_image(image.pixels, lm)
    largest, smallest = extreme_frames(lv_areas(lm))
    gap = np.full((lm.shape[1], 4, 3), 255, np.uint8)
    return np.concatenate(
        [
            overlay_image(image.pixels[largest], lm[largest]),
            gap,
            overlay_image(image.pixels[smallest], lm[smallest]),
        ],
        axis=1,
    )


def _predict_one(f: Path, image: InputImage, predictor, out_dir, rel, options) -> list[dict]:
    """Segment one input and write its outputs; its rows (one per frame of a sequence)."""
    from PIL import Image

    out = predictor(image.pixels)
    lm = out["segmentation"].astype(np.uint8)
    base = out_dir / rel.parent
    base.mkdir(parents=True, exist_ok=True)
    target = base / f"{rel.name}.{image.out_fmt}"
    write_label_map(lm, image, target)
    row = dict.fromkeys(CSV_COLUMNS)
    row.update(file=str(f), status="ok", error="", label_map=str(target))
    if options["save_coarse"] and "coarse" in out:
        write_label_map(out["coarse"], image, base / f"{rel.name}_coarse.{image.out_fmt}")
    if options["save_probabilities"]:
        path = write_probabilities(out["probabilities"], image, base / f"{rel.name}.probabilities")
        row["probabilities"] = str(path)
    if options["overlays"]:
        ov = out_dir / "overlays" / rel.parent / f"{rel.name}.overlay.png"
        ov.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(ov, suffix=".png") as tmp:
            Image.fromarray(_overlay(image, lm)).save(tmp, format="PNG")
        row["overlay"] = str(ov)
    row.update(height=lm.shape[-2], width=lm.shape[-1], frames=image.frames)
    row["spacing_source"] = image.spacing_source or ""
    if image.spacing is not None:
        row.update(spacing_row_mm=image.spacing[0], spacing_col_mm=image.spacing[1])
    thresholds = options["thresholds"]
    if image.frames is None:
        return [{**row, **shape_criteria(lm, image.spacing, thresholds)}]
    rows = [
        {**row, "frame": k, **shape_criteria(frame, image.spacing, thresholds)}
        for k, frame in enumerate(lm)
    ]
    plot = out_dir / "plots" / rel.parent / f"{rel.name}.lv_area.png"
    plot_lv_area(
        lv_areas(lm),
        plot,
        spacing=image.spacing,
        suspicious=[r["suspicious_shape"] for r in rows],
        title=f.name,
    )
    for r in rows:
        r["area_plot"] = str(plot)
    return rows


def _write_volumes(rows: Sequence[dict], out_dir: Path) -> Path | None:
    """``volumes.csv`` of the cases whose 2CH and 4CH sequences were segmented; None (and
    nothing written) when no sequence was."""
    sequences: dict[str, dict] = {}
    for r in rows:
        if r.get("status") == "ok" and r.get("frames") is not None:
            seq = sequences.setdefault(
                r["file"],
                {"file": r["file"], "label_map": r["label_map"], "spacing": _row_spacing(r)},
            )
            seq.setdefault("suspicious", {})[r["frame"]] = bool(r["suspicious_shape"])
    if not sequences:
        return None
    volumes = []
    for case, seq_2ch, seq_4ch in pair_views(list(sequences.values())):
        try:
            for seq in (seq_2ch, seq_4ch):
                seq["labels"] = read_label_map(seq["label_map"])
                flags = seq["suspicious"]
                seq["suspicious"] = [flags[k] for k in sorted(flags)]
            volumes.append(case_volumes(case, seq_2ch, seq_4ch))
        except (OSError, RuntimeError, ValueError) as err:
            volumes.append(
                {"case": case, "file_2ch": seq_2ch["file"], "file_4ch": seq_4ch["file"],
                 "error": str(err)}
            )  # fmt: skip
    return write_volumes_csv(volumes, out_dir / "volumes.csv")


def predict_files(
    model,
    files: Sequence,
    out_dir,
    *,
    roots: Sequence = (),
    png_spacing=None,
    overlays: bool = True,
    save_coarse: bool = False,
    save_probabilities: bool = False,
    thresholds: OutlierThresholds | None = None,
    progress="auto",
    on_file: Callable[[int, int, list[dict]], None] | None = None,
    force: bool = False,
    batch_size: int = 8,
) -> list[dict]:
    """Segment ``files`` and write label maps, overlays and ``predictions.csv`` in ``out_dir``.

    ``predictions.csv`` gets the rows of each file as it is done, so a killed run keeps the
    record of what it finished; run again, it skips the files an earlier run segmented
    (their rows are in the CSV and their label map on disk, the spacing assumed for files
    without one and, with ``save_probabilities``, the probabilities too) unless ``force``,
    and tries the failed ones again. The rows it keeps get this run's flag and quality
    score: from their criteria under the new ``thresholds``, measured again on the label
    map when the thresholds' measurement convention changed.

    Args:
        model: a keras-runet ``keras.Model`` (see :func:`keras_runet.export.load_model`),
            or a :class:`Predictor` (reused: its graph is traced once).
        files: image and sequence files (see :func:`find_images`).
        out_dir: output folder (created).
        roots: input folders the files were found in (their sub-folders are kept).
        png_spacing: ``(row_mm, col_mm)`` assumed for files without a pixel spacing (PNG,
            DICOM without one; else pixel units).
        overlays: also write ``overlays/<stem>.overlay.png``.
        save_coarse: for RU-Net, also write the first U-Net's label map ``<stem>_coarse.<ext>``.
        save_probabilities: also write the softmax probabilities
            (:func:`write_probabilities`: ``<stem>.probabilities.npz`` or ``.nii.gz``).
        thresholds: thresholds of the suspicious-shape flag (default: the paper's Table I).
        progress: "auto" (default: a tqdm bar on a terminal, else an INFO log line every
            10 % of the files), "bar", "log", or False (silent); see
            :class:`keras_runet.evaluation.records.Progress`.
        on_file: optional callable ``on_file(index, total, rows)`` called after each file
            with its rows (one per frame of a sequence; a skipped file's rows have
            ``skipped`` True). The CLI prints a line.
        force: segment every file again, even those an earlier run did.
        batch_size: frames of a sequence run through the model at once (when ``model`` is
            not a :class:`Predictor`).

    Returns:
        The rows (:data:`CSV_COLUMNS`), in the order of the files, one per image and one per
        frame of a sequence; ``status`` is "ok" or "error" (then ``error`` says why, in the
        file's single row). The rows are also written to ``out_dir/predictions.csv``, and
        the volumes of the cases with both views to ``out_dir/volumes.csv``.
    """
    png_spacing = _spacing_pair(png_spacing)
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"output folder {str(out_dir)!r} exists and is not a folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    predictor = model if isinstance(model, Predictor) else Predictor(model, batch_size)
    csv_path = out_dir / "predictions.csv"
    done = {} if force else _done_rows(csv_path, thresholds, png_spacing, save_probabilities)
    # This run's record: the rows reused from the earlier run, then those of each file.
    write_csv([r for f in files for r in done.get(str(Path(f)), [])], csv_path)
    roots = [Path(r).resolve() for r in roots]
    inputs = {Path(f).resolve() for f in files}
    used: dict[Path, Path] = {}
    options = dict(
        save_coarse=save_coarse,
        save_probabilities=save_probabilities,
        overlays=overlays,
        thresholds=thresholds,
    )
    rows: list[dict] = []
    with Progress(len(files), "predicting", progress, unit="file", log=logger) as bar:
        for i, f in enumerate(files, start=1):
            f = Path(f)
            if str(f) in done:
                file_rows = [dict(r, skipped=True) for r in done[str(f)]]
                used[Path(file_rows[0]["label_map"]).resolve()] = f
            else:
                try:
                    image = read_input_image(f, png_spacing)
                    rel = _output_name(f, roots)
                    target = (out_dir / rel.parent / f"{rel.name}.{image.out_fmt}").resolve()
                    if target in inputs:
                        raise ImageReadError(
                            f"{f}: its label map {target} would overwrite an input"
                        )
                    if target in used:
                        raise ImageReadError(
                            f"{f}: its label map {target} would overwrite the one of {used[target]}"
                        )
                    used[target] = f
                    file_rows = _predict_one(f, image, predictor, out_dir, rel, options)
                    state = sum(r["suspicious_shape"] for r in file_rows)
                    logger.debug("[%d/%d] %s: %d suspicious", i, len(files), f, state)
                except (ImageReadError, OSError, RuntimeError) as err:  # RuntimeError: SimpleITK
                    error = {"file": str(f), "status": "error", "error": str(err)}
                    file_rows = [{**dict.fromkeys(CSV_COLUMNS), **error}]
                    logger.warning("[%d/%d] %s", i, len(files), err)
                _append_csv_rows(csv_path, file_rows)
            rows.extend(file_rows)
            bar.update()
            if on_file is not None:
                on_file(i, len(files), file_rows)
    write_csv(rows, csv_path)  # the whole record again, in the order of the files
    _write_volumes(rows, out_dir)
    return rows
