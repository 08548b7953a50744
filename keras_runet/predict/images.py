"""Reading inputs and writing outputs of ``runet predict``: images and 2D+t sequences in
PNG, MetaImage, NIfTI and DICOM; label maps and probabilities with the input's geometry.

See :mod:`keras_runet.predict` for what is read and written; every name here is also
importable from there.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from tfds_camus.atomic import atomic_path
from tfds_camus.vocabulary import LABELS

logger = logging.getLogger("keras_runet.predict")

FORMATS = {".nii.gz": "nii.gz", ".nii": "nii", ".mhd": "mhd", ".png": "png", ".dcm": "dcm"}
# DICOM inputs get NIfTI outputs: writing DICOM segmentation objects is out of scope.
OUTPUT_FORMATS = {"dcm": "nii.gz"}
# Overlay colours (RGB) of labels 1..3: LV cavity, myocardium, left atrium.
COLOURS = np.array([[0, 0, 0], [230, 60, 60], [60, 200, 90], [70, 130, 240]], dtype=np.float32)
# Grey from RGB: the ITU-R BT.601 luma, the Y of DICOM's YBR_FULL.
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float64)
# DICOM SOP classes of ultrasound images (and their retired forms): ITK reads only their
# PixelSpacing (0028,0030) and gives 1.0 without it, never the SequenceOfUltrasoundRegions.
US_SOP_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.6.1",  # Ultrasound Image Storage
    "1.2.840.10008.5.1.4.1.1.6",  # retired
    "1.2.840.10008.5.1.4.1.1.3.1",  # Ultrasound Multi-frame Image Storage
    "1.2.840.10008.5.1.4.1.1.3",  # retired
}
# PixelSpacing, ImagerPixelSpacing, NominalScannedPixelSpacing, ImagePlanePixelSpacing.
DICOM_SPACING_TAGS = ("0028|0030", "0018|1164", "0018|2010", "3002|0011")


class ImageReadError(ValueError):
    """An input file that cannot be segmented; the message names the file and the reason."""


@dataclasses.dataclass
class InputImage:
    """One image, or one 2D+t sequence, read for prediction.

    Attributes:
        path: the file.
        pixels: float32 in [0, 1], ``(rows, cols)``, or ``(frames, rows, cols)`` for a
            sequence.
        spacing: ``(row_mm, col_mm)``, or None when unknown (PNG, DICOM without a pixel
            spacing) and none was assumed.
        fmt: "png", "mhd", "nii", "nii.gz" or "dcm".
        reference: the SimpleITK image whose geometry the label map copies (all but PNG).
        spacing_source: "file", "assumed" (``png_spacing``), or None (pixel units).
    """

    path: Path
    pixels: np.ndarray
    spacing: tuple[float, float] | None
    fmt: str
    reference: object = None
    spacing_source: str | None = "file"

    @property
    def frames(self) -> int | None:
        """The number of frames of a sequence; None for a single image."""
        return int(self.pixels.shape[0]) if self.pixels.ndim == 3 else None

    @property
    def out_fmt(self) -> str:
        """The format of the label map: the input's, NIfTI (``nii.gz``) for DICOM."""
        return OUTPUT_FORMATS.get(self.fmt, self.fmt)


def image_format(path) -> str | None:
    """The format of ``path`` from its name ("png", "mhd", "nii", "nii.gz", "dcm"), or None."""
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


def _squeeze(array: np.ndarray, keep_last: int = 2) -> np.ndarray:
    """Drop the singleton axes before the last ``keep_last`` ones: a 3-D file with one slice
    is a 2-D image, a 4-D one with one slice per frame a sequence."""
    head = [n for n in array.shape[: array.ndim - keep_last] if n != 1]
    return array.reshape(*head, *array.shape[array.ndim - keep_last :])


def _spacing_pair(value) -> tuple[float, float] | None:
    if value is None:
        return None
    pair = tuple(float(v) for v in value)
    if len(pair) != 2 or not all(math.isfinite(v) and v > 0 for v in pair):
        raise ValueError(f"png_spacing must be two positive numbers, got {value!r}")
    return pair


def _dicom_spacing_known(image) -> bool:
    """Whether SimpleITK's spacing of a DICOM image is a pixel spacing the file states."""
    keys = set(image.GetMetaDataKeys())

    def stated(tag: str) -> bool:
        return tag in keys and bool(image.GetMetaData(tag).strip())

    sop = image.GetMetaData("0008|0016").strip() if "0008|0016" in keys else ""
    if sop in US_SOP_CLASSES:
        return stated("0028|0030")  # else ITK's 1.0, not mm
    if any(stated(tag) for tag in DICOM_SPACING_TAGS):
        return True
    # Else a spacing in a functional-group sequence (multi-frame), which ITK does read;
    # exactly (1, 1) is GDCM's value when it found none.
    return tuple(image.GetSpacing()[:2]) != (1.0, 1.0)


def read_input_image(path, png_spacing: Sequence[float] | None = None) -> InputImage:
    """Read one image or one 2D+t sequence for prediction.

    Args:
        path: a PNG (2-D, single channel), ``.mhd``, ``.nii``, ``.nii.gz`` or ``.dcm``
            file: a 2-D image (a 3-D file with one slice too), or a 3-D image whose third
            axis is time (a sequence; a 4-D file with one slice per frame too). DICOM:
            single-frame or multi-frame (a cine loop), grey or RGB (YBR is converted to RGB
            by SimpleITK), RGB becoming grey by luminance (0.299 R + 0.587 G + 0.114 B).
        png_spacing: ``(row_mm, col_mm)`` to assume for files that carry no spacing: PNG,
            and DICOM without a pixel spacing SimpleITK can read (ultrasound DICOM keeps
            its calibration in the SequenceOfUltrasoundRegions, which SimpleITK does not
            read).

    Returns:
        An :class:`InputImage`.

    Raises:
        ImageReadError: naming the file: unsupported extension, unreadable, several
            channels, not 2-D or 2D+t, empty, NaN / infinite pixels, or values out of range.
    """
    path = Path(path)
    fmt = image_format(path)
    if fmt is None:
        raise ImageReadError(
            f"{path}: not a supported image (expected .png, .mhd, .nii, .nii.gz or .dcm)"
        )
    if not path.is_file():
        raise ImageReadError(f"{path}: file not found")
    png_spacing = _spacing_pair(png_spacing)
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
    array = sitk.GetArrayFromImage(image)
    if fmt == "dcm" and channels == 3:
        pixels = _to_unit_range(array, path) @ LUMA.astype(np.float32)
        logger.info("%s: RGB pixels converted to grey (luminance)", path)
    elif channels != 1:
        raise ImageReadError(f"{path}: {channels} channels per pixel; expected one (grayscale)")
    else:
        pixels = _to_unit_range(array, path)
    pixels = _squeeze(pixels.astype(np.float32, copy=False))
    if pixels.ndim not in (2, 3):
        raise ImageReadError(
            f"{path}: a {array.ndim}-D image of shape {array.shape}; expected a 2-D image or "
            "a 2D+t sequence (frames, rows, cols)"
        )
    sx, sy = image.GetSpacing()[:2]
    spacing, source = (float(sy), float(sx)), "file"  # SimpleITK (x, y) = (col, row)
    if fmt == "dcm" and not _dicom_spacing_known(image):
        spacing, source = png_spacing, "assumed" if png_spacing is not None else None
        logger.warning(
            "%s: no pixel spacing SimpleITK can read%s",
            path,
            f"; assuming {spacing} mm" if spacing else "; measuring in pixels",
        )
    elif not all(math.isfinite(s) and s > 0 for s in spacing):
        raise ImageReadError(f"{path}: invalid spacing {spacing}")
    return InputImage(path, pixels, spacing, fmt, image, source)


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
    pixels = _to_unit_range(array, path, sixteen_bit)
    source = None if png_spacing is None else "assumed"
    return InputImage(path, pixels, png_spacing, "png", None, source)


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


def _write_sitk(image, path: Path, fmt: str) -> Path:
    import SimpleITK as sitk

    if fmt == "mhd":  # two files (.mhd names its .raw): not renamed into place
        sitk.WriteImage(image, str(path))
        return path
    with atomic_path(path, suffix=f".{fmt}") as tmp:
        sitk.WriteImage(image, str(tmp), useCompression=fmt == "nii.gz")
    return path


def _like_reference(array: np.ndarray, ref, vector: bool = False):
    """A SimpleITK image of ``array`` (numpy order) on the grid of ``ref``."""
    import SimpleITK as sitk

    shape = tuple(reversed(ref.GetSize()))  # the reference's spatial shape, numpy order
    if vector:
        shape += (array.shape[-1],)
    out = sitk.GetImageFromArray(array.reshape(shape), isVector=vector)
    out.CopyInformation(ref)
    return out


def write_label_map(label_map: np.ndarray, image: InputImage, path) -> Path:
    """Write a label map (``(rows, cols)``, or ``(frames, rows, cols)`` for a sequence) in
    the output format of ``image`` (:attr:`InputImage.out_fmt`) with its geometry (spacing,
    origin, direction, the time axis of a sequence included), as uint8 labels 0..3."""
    path = Path(path)
    lm = np.asarray(label_map, dtype=np.uint8)
    if image.out_fmt == "png":
        from PIL import Image

        with atomic_path(path, suffix=".png") as tmp:
            Image.fromarray(lm, mode="L").save(tmp, format="PNG")
        return path
    import SimpleITK as sitk

    if image.reference is None:
        out = sitk.GetImageFromArray(lm)
    else:
        out = _like_reference(lm, image.reference)
    return _write_sitk(out, path, image.out_fmt)


def write_probabilities(probabilities: np.ndarray, image: InputImage, path) -> Path:
    """Write the softmax probabilities of one input on its native grid, float32.

    Args:
        probabilities: ``(rows, cols, classes)``, or ``(frames, rows, cols, classes)``.
        image: the input (its format and geometry).
        path: the file without its format's suffix (e.g. ``OUT/a.probabilities``).

    Returns:
        The path written: ``<path>.npz`` for PNG input (``probabilities``, shape
        ``(classes, rows, cols)``, and ``class_names``, as ``nnUNetv2_predict
        --save_probabilities`` stores them), else ``<path>.nii.gz``: a vector image with
        the input's geometry whose components are the classes (NIfTI's fifth dimension;
        SimpleITK reads it back as a vector image). The label map is their argmax.
    """
    p = np.asarray(probabilities, dtype=np.float32)
    if image.out_fmt == "png":
        target = Path(f"{path}.npz")
        with atomic_path(target, suffix=".npz") as tmp:
            np.savez_compressed(
                tmp, probabilities=np.moveaxis(p, -1, 0), class_names=np.array(LABELS)
            )
        return target
    import SimpleITK as sitk

    target = Path(f"{path}.nii.gz")
    if image.reference is None:
        out = sitk.GetImageFromArray(p, isVector=True)
    else:
        out = _like_reference(p, image.reference, vector=True)
    return _write_sitk(out, target, "nii.gz")


def read_label_map(path) -> np.ndarray:
    """A label map written here, as uint8 ``(rows, cols)`` or ``(frames, rows, cols)``."""
    path = Path(path)
    if image_format(path) == "png":
        from PIL import Image

        with Image.open(path) as img:
            return np.asarray(img, dtype=np.uint8)
    import SimpleITK as sitk

    return _squeeze(sitk.GetArrayFromImage(sitk.ReadImage(str(path)))).astype(np.uint8)


def overlay_image(pixels: np.ndarray, label_map: np.ndarray, alpha: float = 0.4) -> np.ndarray:
    """An RGB uint8 picture of the image with the labels blended in colour."""
    gray = np.clip(np.asarray(pixels, np.float32), 0, 1)[..., None] * 255.0
    rgb = np.repeat(gray, 3, axis=-1)
    lm = np.asarray(label_map)
    colour = COLOURS[np.clip(lm, 0, len(COLOURS) - 1)]
    fg = (lm > 0)[..., None]
    return np.where(fg, (1 - alpha) * rgb + alpha * colour, rgb).round().astype(np.uint8)
