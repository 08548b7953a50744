"""Segment new echocardiography images and flag likely failures without ground truth.

For every image file (PNG, MetaImage ``.mhd``, NIfTI ``.nii`` / ``.nii.gz``) this module

1. reads the pixels (single channel; 8-bit, 16-bit or [0, 1] floats, scaled to [0, 1]) and,
   for MetaImage / NIfTI, the spacing, origin and direction;
2. runs the model through the same graph as the exported ``serving_default`` signature
   (:func:`keras_runet.export.make_serving_functions`: resize to the model's size, predict,
   resize the probabilities back to the native size, argmax), so a prediction here and one
   from TF Serving agree;
3. writes the label map in the input's format with its geometry (``OUT/<stem>.<ext>``, values
   0 background, 1 LV cavity, 2 myocardium, 3 left atrium: the names ``runet evaluate``
   reads), a PNG overlay (``OUT/overlays/<stem>.overlay.png``), and
4. measures the RU-Net paper's anatomical criteria, convexity and simplicity of the LV
   cavity (LVendo) and of the filled epicardium (LVepi), which need no ground truth: a value
   below the lowest seen on expert annotations
   (:class:`keras_runet.evaluation.OutlierThresholds`), or a missing structure, marks the
   image as a *suspicious shape*, a likely failure worth a look; the *quality score*
   (:func:`keras_runet.evaluation.quality_score`: the smallest normalised margin of those
   criteria to their limits, negative exactly when the image is flagged, -inf for a missing
   structure) ranks the images from the most to the least suspicious. One CSV row per image
   (``OUT/predictions.csv``).

A file that cannot be used (not an image, several channels, empty, NaN, a 3-D sequence...)
gets a row with ``status=error`` and the reason; the other files are still processed.
"""

from __future__ import annotations

import csv
import dataclasses
import logging
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from keras_runet.evaluation import (
    OutlierThresholds,
    anatomical_outlier,
    quality_score,
    shape_metrics,
)
from tfds_camus.atomic import atomic_path
from tfds_camus.vocabulary import STRUCTURES

__all__ = [
    "CSV_COLUMNS",
    "ImageReadError",
    "InputImage",
    "Predictor",
    "find_images",
    "image_format",
    "overlay_image",
    "predict_files",
    "read_csv",
    "read_input_image",
    "shape_criteria",
    "write_label_map",
]

logger = logging.getLogger(__name__)

FORMATS = {".nii.gz": "nii.gz", ".nii": "nii", ".mhd": "mhd", ".png": "png"}
# Overlay colours (RGB) of labels 1..3: LV cavity, myocardium, left atrium.
COLOURS = np.array([[0, 0, 0], [230, 60, 60], [60, 200, 90], [70, 130, 240]], dtype=np.float32)
CSV_COLUMNS = (
    "file",
    "status",
    "error",
    "label_map",
    "overlay",
    "height",
    "width",
    "spacing_row_mm",
    "spacing_col_mm",
    *(f"{s}_{m}" for s in STRUCTURES for m in ("area_px", "convexity", "simplicity")),
    "suspicious_shape",
    "suspicious_reasons",
    "quality_score",  # last: a CSV of an earlier version, without it, still reads
)


class ImageReadError(ValueError):
    """An input file that cannot be segmented; the message names the file and the reason."""


@dataclasses.dataclass
class InputImage:
    """One image read for prediction.

    Attributes:
        path: the file.
        pixels: float32 ``(rows, cols)`` in [0, 1].
        spacing: ``(row_mm, col_mm)``, or None when the file has none (PNG).
        fmt: "png", "mhd", "nii" or "nii.gz".
        reference: the SimpleITK image (MetaImage / NIfTI) whose geometry the label map
            copies, else None.
    """

    path: Path
    pixels: np.ndarray
    spacing: tuple[float, float] | None
    fmt: str
    reference: object = None


def image_format(path) -> str | None:
    """The format of ``path`` from its name ("png", "mhd", "nii", "nii.gz"), or None."""
    name = Path(path).name.lower()
    for suffix, fmt in FORMATS.items():
        if name.endswith(suffix):
            return fmt
    return None


def _stem(path: Path) -> str:
    name = path.name
    fmt = image_format(path)
    return name[: -len(fmt) - 1] if fmt else path.stem


def _to_unit_range(array: np.ndarray, path: Path, sixteen_bit: bool = False) -> np.ndarray:
    """Pixels to float32 [0, 1]: floats in [0, 1] as they are; integers (or integral floats)
    in 0..255 / 255 (8-bit, as the CAMUS reader takes them, whatever the storage type);
    16-bit data (a 16-bit PNG, or uint16 values above 255) / 65535."""
    if array.size == 0 or min(array.shape) == 0:
        raise ImageReadError(f"{path}: empty image (shape {array.shape})")
    if array.dtype == bool or not (
        np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)
    ):
        raise ImageReadError(f"{path}: unsupported pixel type {array.dtype}")
    if np.issubdtype(array.dtype, np.floating):
        n_bad = int(np.count_nonzero(~np.isfinite(array)))
        if n_bad:
            raise ImageReadError(f"{path}: {n_bad} pixel(s) are NaN or infinite")
    lo, hi = float(array.min()), float(array.max())
    if array.dtype == np.uint16 and (sixteen_bit or hi > 255):
        return (array / 65535.0).astype(np.float32)
    if lo < 0:
        raise ImageReadError(f"{path}: negative pixel values ({lo:g}..{hi:g}); expected B-mode")
    if np.issubdtype(array.dtype, np.floating) and hi <= 1.0:
        return array.astype(np.float32)
    if hi <= 255:
        return (array / 255.0).astype(np.float32)
    raise ImageReadError(
        f"{path}: pixel values {lo:g}..{hi:g} ({array.dtype}) are neither 8-bit, 16-bit nor [0, 1]"
    )


def read_input_image(path, png_spacing: Sequence[float] | None = None) -> InputImage:
    """Read one image for prediction.

    Args:
        path: a PNG, ``.mhd``, ``.nii`` or ``.nii.gz`` file of one 2D grayscale image (a
            3-D MetaImage / NIfTI with a single slice is accepted).
        png_spacing: ``(row_mm, col_mm)`` to assume for PNG files (they carry none).

    Returns:
        An :class:`InputImage`.

    Raises:
        ImageReadError: naming the file: unsupported extension, unreadable, several
            channels, not 2D, empty, NaN / infinite pixels, or values out of range.
    """
    path = Path(path)
    fmt = image_format(path)
    if fmt is None:
        raise ImageReadError(
            f"{path}: not a supported image (expected .png, .mhd, .nii or .nii.gz)"
        )
    if not path.is_file():
        raise ImageReadError(f"{path}: file not found")
    if fmt == "png":
        return _read_png(path, png_spacing)
    import SimpleITK as sitk

    from tfds_camus.reader import CamusFormatError, check_complete

    try:
        check_complete(path)  # SimpleITK fills a truncated file with zeros, silently
    except CamusFormatError as err:
        raise ImageReadError(str(err)) from None
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as err:
        detail = [line for line in str(err).strip().splitlines() if line.strip()]
        raise ImageReadError(
            f"{path}: not a readable image ({detail[-1].strip() if detail else err})"
        ) from None
    channels = image.GetNumberOfComponentsPerPixel()
    if channels != 1:
        raise ImageReadError(f"{path}: {channels} channels per pixel; expected one (grayscale)")
    array = sitk.GetArrayFromImage(image)
    if array.ndim == 3 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 2:
        raise ImageReadError(
            f"{path}: a {array.ndim}-D image of shape {array.shape}; expected one 2-D image "
            "(sequences are not segmented frame by frame here)"
        )
    sx, sy = image.GetSpacing()[:2]
    spacing = (float(sy), float(sx))  # SimpleITK (x, y) = (col, row)
    if not all(math.isfinite(s) and s > 0 for s in spacing):
        raise ImageReadError(f"{path}: invalid spacing {spacing}")
    return InputImage(path, _to_unit_range(array, path), spacing, fmt, image)


def _read_png(path: Path, png_spacing) -> InputImage:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.load()
            mode, bands = img.mode, img.getbands()
            array = np.asarray(img)
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        reason = str(err).replace(f" {str(path)!r}", "").strip() or type(err).__name__
        raise ImageReadError(f"{path}: not a readable PNG image ({reason})") from None
    if len(bands) != 1 or array.ndim != 2:
        raise ImageReadError(
            f"{path}: {len(bands)} channels (mode {mode}); expected a single-channel "
            "(grayscale) image"
        )
    if mode == "P":
        raise ImageReadError(f"{path}: a palette image; expected grayscale intensities")
    sixteen_bit = mode.startswith("I;16") or (
        mode == "I" and array.min(initial=0) >= 0 and array.max(initial=0) <= 65535
    )
    if sixteen_bit:
        array = array.astype(np.uint16)  # Pillow may widen 16-bit PNGs to int32 ("I")
    spacing = None if png_spacing is None else (float(png_spacing[0]), float(png_spacing[1]))
    return InputImage(path, _to_unit_range(array, path, sixteen_bit), spacing, "png", None)


def find_images(
    inputs: Iterable, pattern: str = "*", recursive: bool = False, include_gt: bool = False
) -> tuple[list[Path], list[Path]]:
    """The image files to segment: files as given, folders scanned for supported images.

    Args:
        inputs: files and folders.
        pattern: glob of the file names looked at inside folders (e.g. ``"*_E[DS].mhd"``).
        recursive: look into sub-folders too.
        include_gt: also take CAMUS annotation files (``*_gt.*``) found in folders.

    Returns:
        ``(files, skipped)``: files to segment (explicit files always, whatever their
        extension, so that a wrong one gets an error row), and folder entries skipped
        (unsupported extension, annotation).

    Raises:
        FileNotFoundError: an input that does not exist.
    """
    files, skipped = [], []
    for item in inputs:
        item = Path(item)
        if item.is_dir():
            entries = item.rglob(pattern) if recursive else item.glob(pattern)
            for p in sorted(e for e in entries if e.is_file()):
                if p.suffix.lower() in (".raw", ".zraw"):
                    continue  # a MetaImage's pixel data, read through its .mhd
                fmt = image_format(p)
                if fmt is None or (not include_gt and _stem(p).endswith("_gt")):
                    skipped.append(p)
                else:
                    files.append(p)
        elif item.exists():
            files.append(item)
        else:
            raise FileNotFoundError(f"input {str(item)!r} does not exist")
    return files, skipped


def shape_criteria(
    label_map: np.ndarray, spacing=None, thresholds: OutlierThresholds | None = None
) -> dict:
    """The anatomical criteria of one predicted label map (no ground truth needed).

    Args:
        label_map: 2D integer labels (0..3) on the native grid.
        spacing: ``(row_mm, col_mm)`` (simplicity is measured on square pixels), or None.
        thresholds: :class:`~keras_runet.evaluation.OutlierThresholds` (default: Table I).

    Returns:
        ``{structure}_area_px``, ``{structure}_convexity``, ``{structure}_simplicity`` for
        LVendo, LVepi and LA, ``suspicious_shape`` (an anatomical outlier by the thresholds:
        a convexity or simplicity below the expert minimum, or a missing structure),
        ``suspicious_reasons`` (``;``-separated) and ``quality_score``
        (:func:`keras_runet.evaluation.quality_score`, ``< 0`` exactly when suspicious).
    """
    lm = np.asarray(label_map)
    convention = (thresholds or OutlierThresholds()).convention  # how Sp / Cx are measured
    row = {}
    for name, labels in STRUCTURES.items():
        mask = np.isin(lm, labels)
        row[f"{name}_area_px"] = int(np.count_nonzero(mask))
        cx, sp = shape_metrics(mask, spacing, convention)
        row[f"{name}_convexity"], row[f"{name}_simplicity"] = cx, sp
    flagged, reasons = anatomical_outlier(row, thresholds)
    row["suspicious_shape"] = bool(flagged)
    row["suspicious_reasons"] = ";".join(reasons)
    row["quality_score"] = quality_score(row, thresholds)
    return row


def write_label_map(label_map: np.ndarray, image: InputImage, path) -> Path:
    """Write a label map in the format of ``image`` with its geometry (spacing, origin,
    direction for MetaImage / NIfTI), as uint8 labels 0..3."""
    path = Path(path)
    lm = np.asarray(label_map, dtype=np.uint8)
    if image.fmt == "png":
        from PIL import Image

        Image.fromarray(lm, mode="L").save(path, format="PNG")
        return path
    import SimpleITK as sitk

    ref = image.reference
    array = lm[None] if ref is not None and ref.GetDimension() == 3 else lm
    out = sitk.GetImageFromArray(array)
    if ref is not None:
        out.CopyInformation(ref)
    sitk.WriteImage(out, str(path), useCompression=image.fmt == "nii.gz")
    return path


def overlay_image(pixels: np.ndarray, label_map: np.ndarray, alpha: float = 0.4) -> np.ndarray:
    """An RGB uint8 picture of the image with the labels blended in colour."""
    gray = np.clip(np.asarray(pixels, np.float32), 0, 1)[..., None] * 255.0
    rgb = np.repeat(gray, 3, axis=-1)
    lm = np.asarray(label_map)
    colour = COLOURS[np.clip(lm, 0, len(COLOURS) - 1)]
    fg = (lm > 0)[..., None]
    return np.where(fg, (1 - alpha) * rgb + alpha * colour, rgb).round().astype(np.uint8)


class Predictor:
    """Runs a model on single images of any size, as the exported ``serving_default`` does.

    Args:
        model: a keras-runet model (``keras.Model``).

    Example (a trained model; not run as a doctest)::

        predictor = Predictor(keras_runet.export.load_model("runet.keras"))
        out = predictor(pixels)  # (rows, cols) in [0, 1]
        assert out["segmentation"].shape == pixels.shape
    """

    def __init__(self, model):
        from keras_runet.export import DEFAULT_SIGNATURE, make_serving_functions

        self.model = model
        self._fn = make_serving_functions(model)[DEFAULT_SIGNATURE]

    def __call__(self, pixels: np.ndarray) -> dict[str, np.ndarray]:
        """Label maps (``segmentation``, ``coarse`` for RU-Net) and ``probabilities`` of one
        ``(rows, cols)`` image, at its size."""
        x = np.asarray(pixels, np.float32)[None, ..., None]
        return {k: v.numpy()[0] for k, v in self._fn(x).items()}


def _fmt_cell(value):
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.6g}"
    return str(value)


def write_csv(rows: Sequence[dict], path) -> Path:
    """Write the per-image rows (:data:`CSV_COLUMNS`) atomically."""
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _fmt_cell(row.get(k)) for k in CSV_COLUMNS})
    return path


_INT_CSV = {"height", "width", *(f"{s}_area_px" for s in STRUCTURES)}
_STR_CSV = {"file", "status", "error", "label_map", "overlay", "suspicious_reasons"}


def read_csv(path) -> list[dict]:
    """The rows of a ``predictions.csv`` written by :func:`write_csv`, values typed back.

    A column the file lacks (``quality_score`` in a CSV of an earlier version) is None.
    """
    rows = []
    with open(path, newline="") as fh:
        for raw in csv.DictReader(fh):
            row = {}
            for key, text in raw.items():
                if key in _STR_CSV:
                    row[key] = text
                elif text == "":
                    row[key] = None
                elif key == "suspicious_shape":
                    row[key] = text == "True"
                else:
                    try:
                        row[key] = int(text) if key in _INT_CSV else float(text)
                    except ValueError:
                        row[key] = text
            for key in CSV_COLUMNS:
                row.setdefault(key, None)
            rows.append(row)
    return rows


def _append_csv_row(path: Path, row: dict) -> None:
    """One more line of ``predictions.csv``, on disk before the next file is started."""
    new = not path.exists()
    with open(path, "a", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_COLUMNS, extrasaction="ignore")
        if new:
            writer.writeheader()
        writer.writerow({k: _fmt_cell(row.get(k)) for k in CSV_COLUMNS})
        fh.flush()
        os.fsync(fh.fileno())


def _done_rows(csv_path: Path, thresholds: OutlierThresholds | None = None) -> dict[str, dict]:
    """Rows of an earlier run whose label map is on disk: those files need no new prediction.

    A row of an earlier version without a quality score gets it from its criteria.
    """
    if not csv_path.exists():
        return {}
    try:
        rows = read_csv(csv_path)
    except (OSError, csv.Error, UnicodeDecodeError) as err:
        logger.warning("%s cannot be read (%s): every file is predicted again", csv_path, err)
        return {}

    def still_valid(r) -> bool:
        label_map, source = Path(r.get("label_map") or ""), Path(r["file"])
        return (
            r.get("status") == "ok"
            and label_map.is_file()
            and source.is_file()
            and source.stat().st_mtime_ns <= label_map.stat().st_mtime_ns  # input unchanged
        )

    done = {r["file"]: r for r in rows if still_valid(r)}
    for r in done.values():
        if r.get("quality_score") is None:
            try:
                r["quality_score"] = quality_score(r, thresholds)
            except KeyError:  # a criterion's column missing: leave the score empty
                pass
    return done


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


def predict_files(
    model,
    files: Sequence,
    out_dir,
    *,
    roots: Sequence = (),
    png_spacing=None,
    overlays: bool = True,
    save_coarse: bool = False,
    thresholds: OutlierThresholds | None = None,
    progress=None,
    force: bool = False,
) -> list[dict]:
    """Segment ``files`` and write label maps, overlays and ``predictions.csv`` in ``out_dir``.

    ``predictions.csv`` gets a row as each file is done, so a killed run keeps the record of
    what it finished; run again, it skips the files an earlier run segmented (their row is
    in the CSV and their label map on disk) unless ``force``, and tries the failed ones again.

    Args:
        model: a keras-runet ``keras.Model`` (see :func:`keras_runet.export.load_model`).
        files: image files (see :func:`find_images`).
        out_dir: output folder (created).
        roots: input folders the files were found in (their sub-folders are kept).
        png_spacing: ``(row_mm, col_mm)`` assumed for PNG files (else pixel units).
        overlays: also write ``overlays/<stem>.overlay.png``.
        save_coarse: for RU-Net, also write the first U-Net's label map ``<stem>_coarse.<ext>``.
        thresholds: thresholds of the suspicious-shape flag (default: the paper's Table I).
        progress: optional callable ``progress(index, total, row)`` called after each file
            (the CLI prints a line; a skipped file's row has ``skipped`` True).
        force: segment every file again, even those an earlier run did.

    Returns:
        One row per file (:data:`CSV_COLUMNS`); ``status`` is "ok" or "error" (then
        ``error`` says why). The rows are also written to ``out_dir/predictions.csv``.
    """
    if png_spacing is not None:
        png_spacing = tuple(float(v) for v in png_spacing)
        if len(png_spacing) != 2 or not all(math.isfinite(v) and v > 0 for v in png_spacing):
            raise ValueError(f"png_spacing must be two positive numbers, got {png_spacing!r}")
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"output folder {str(out_dir)!r} exists and is not a folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path = out_dir / "predictions.csv"
    done = {} if force else _done_rows(csv_path, thresholds)
    # This run's record: the rows reused from the earlier run, then one appended per file.
    kept = [done[str(Path(f))] for f in files if str(Path(f)) in done]
    write_csv(kept, csv_path)
    predictor = Predictor(model)
    roots = [Path(r).resolve() for r in roots]
    inputs = {Path(f).resolve() for f in files}
    used: dict[Path, Path] = {}
    rows = []
    for i, f in enumerate(files, start=1):
        f = Path(f)
        if str(f) in done:
            row = dict(done[str(f)], skipped=True)
            used[Path(row["label_map"]).resolve()] = f
            rows.append(row)
            if progress is not None:
                progress(i, len(files), row)
            continue
        row = {"file": str(f), "status": "ok", "error": ""}
        try:
            image = read_input_image(f, png_spacing)
            rel = _output_name(f, roots)
            target = out_dir / rel.parent / f"{rel.name}.{image.fmt}"
            if target.resolve() in inputs:
                raise ImageReadError(f"{f}: its label map {target} would overwrite an input")
            if target.resolve() in used:
                raise ImageReadError(
                    f"{f}: its label map {target} would overwrite the one of "
                    f"{used[target.resolve()]}"
                )
            used[target.resolve()] = f
            out = predictor(image.pixels)
            lm = out["segmentation"].astype(np.uint8)
            target.parent.mkdir(parents=True, exist_ok=True)
            write_label_map(lm, image, target)
            row["label_map"] = str(target)
            if save_coarse and "coarse" in out:
                coarse = target.with_name(f"{rel.name}_coarse.{image.fmt}")
                write_label_map(out["coarse"], image, coarse)
            if overlays:
                from PIL import Image

                ov = out_dir / "overlays" / rel.parent / f"{rel.name}.overlay.png"
                ov.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(overlay_image(image.pixels, lm)).save(ov)
                row["overlay"] = str(ov)
            row.update(height=lm.shape[0], width=lm.shape[1])
            if image.spacing is not None:
                row.update(spacing_row_mm=image.spacing[0], spacing_col_mm=image.spacing[1])
            row.update(shape_criteria(lm, image.spacing, thresholds))
            logger.info(
                "[%d/%d] %s: %s",
                i,
                len(files),
                f,
                "suspicious" if row["suspicious_shape"] else "ok",
            )
        except (ImageReadError, OSError, RuntimeError) as err:  # RuntimeError: SimpleITK
            row.update(status="error", error=str(err))
            logger.warning("[%d/%d] %s", i, len(files), err)
        rows.append(row)
        _append_csv_row(csv_path, row)
        if progress is not None:
            progress(i, len(files), row)
    write_csv(rows, csv_path)  # the whole record again, in the order of the files
    return rows
