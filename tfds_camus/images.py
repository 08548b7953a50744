"""CAMUS image files (MetaImage ``.mhd`` + ``.raw``, NIfTI ``.nii.gz``): headers, pixels, checks.

Images are read with SimpleITK. Spacing is returned as ``(row_mm, col_mm)``: SimpleITK
reports ``(x, y) = (col, row)``, converted here, once. Truncated images are caught (a
``.raw`` shorter than its header needs, a ``.nii.gz`` whose gzip stream is cut short), not
read as zeros. Every error is a :class:`~tfds_camus.errors.CamusFormatError` whose message
starts with the path of the offending file.
"""

from __future__ import annotations

import dataclasses
import gzip
import math
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from tfds_camus.errors import CamusFormatError
from tfds_camus.textfiles import read_text
from tfds_camus.vocabulary import NUM_LABELS

# --- image headers and completeness ----------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ImageHeader:
    """What an image file's header says, read without its pixels.

    Attributes:
        shape: ``(rows, cols)`` or ``(frames, rows, cols)`` (numpy order).
        spacing: ``(row_mm, col_mm)``.
        components: values per pixel (1 for CAMUS).
        pixel_type: SimpleITK's name of the pixel type, e.g. ``"8-bit unsigned integer"``.
    """

    shape: tuple[int, ...]
    spacing: tuple[float, float]
    components: int
    pixel_type: str


def squeeze_singleton(shape: tuple[int, ...], ndim: int) -> tuple[int, ...]:
    """(1, rows, cols) -> (rows, cols) for a 2-D image stored as 3-D (original release)."""
    if ndim == 2 and len(shape) == 3 and shape[0] == 1:
        return shape[1:]
    return shape


def read_image_header(path: str | os.PathLike) -> ImageHeader:
    """Reads only an image's header (cheap: no pixel data), checked for completeness.

    Raises:
        CamusFormatError: naming ``path`` if it is missing, its header is unreadable, its
            spacing is not positive, or its data is truncated.
    """
    path = Path(os.fspath(path))
    if not path.is_file():
        raise CamusFormatError(f"{path}: file not found")
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as e:
        raise CamusFormatError(f"{path}: cannot read image header ({_last_line(e)})") from e
    size = reader.GetSize()
    spacing_xyz = reader.GetSpacing()
    shape = tuple(int(s) for s in reversed(size))
    spacing = (float(spacing_xyz[1]), float(spacing_xyz[0])) if len(size) >= 2 else (1.0, 1.0)
    if not all(math.isfinite(s) and s > 0 for s in spacing):
        raise CamusFormatError(f"{path}: invalid spacing {spacing}")
    header = ImageHeader(
        shape,
        spacing,
        int(reader.GetNumberOfComponents()),
        sitk.GetPixelIDValueAsString(reader.GetPixelID()),
    )
    check_complete(path)
    return header


def _last_line(err: Exception) -> str:
    lines = [ln for ln in str(err).strip().splitlines() if ln.strip()]
    return lines[-1].strip() if lines else str(err)


_MET_BYTES = {
    "MET_UCHAR": 1,
    "MET_CHAR": 1,
    "MET_USHORT": 2,
    "MET_SHORT": 2,
    "MET_UINT": 4,
    "MET_INT": 4,
    "MET_ULONG": 8,
    "MET_LONG": 8,
    "MET_FLOAT": 4,
    "MET_DOUBLE": 8,
}


def check_complete(path: str | os.PathLike) -> None:
    """Raises :class:`CamusFormatError` naming the file if an image's data is cut short: a
    ``.raw`` shorter than its ``.mhd`` announces (or missing), or a ``.nii.gz`` that does not
    decompress to the size its header needs. SimpleITK reads both without an error, filling
    the missing pixels with zeros."""
    path = Path(os.fspath(path))
    name = path.name.lower()
    if name.endswith(".mhd"):
        _check_metaimage_data(path)
    elif name.endswith(".nii.gz"):
        _check_gzip_length(path)


def _check_metaimage_data(path: Path) -> None:
    """A ``.mhd``'s data file must exist and hold the bytes its header announces."""
    fields = {}
    for line in read_text(path).splitlines():
        key, sep, value = line.partition("=")
        if sep:
            fields[key.strip().lower()] = value.strip()
    data_file = fields.get("elementdatafile", "")
    if not data_file or data_file.upper() in ("LOCAL", "LIST") or "%" in data_file:
        return
    if fields.get("compresseddata", "false").lower() == "true":
        return
    raw = path.parent / data_file
    if not raw.is_file():
        raise CamusFormatError(f"{path}: its data file {data_file} is missing")
    try:
        dims = [int(v) for v in fields.get("dimsize", "").split()]
        per_pixel = _MET_BYTES[fields.get("elementtype", "").upper()]
        channels = int(fields.get("elementnumberofchannels", "1"))
    except (ValueError, KeyError):
        return  # a header SimpleITK read but we cannot size: leave it to the reader
    expected = math.prod(dims) * per_pixel * channels + max(int(fields.get("headersize", 0)), 0)
    actual = raw.stat().st_size
    if actual < expected:
        raise CamusFormatError(f"{raw}: truncated: {actual} of {expected} bytes")


def _nifti_bytes(head: bytes) -> int | None:
    """Uncompressed size of a NIfTI-1 file from its header (None if not NIfTI-1)."""
    if len(head) < 348:
        return None
    for endian in "<>":
        (sizeof_hdr,) = struct.unpack(endian + "i", head[:4])
        if sizeof_hdr == 348:
            dims = struct.unpack(endian + "8h", head[40:56])
            (bitpix,) = struct.unpack(endian + "h", head[72:74])
            (vox_offset,) = struct.unpack(endian + "f", head[108:112])
            ndim = dims[0]
            if not 1 <= ndim <= 7 or bitpix <= 0:
                return None
            voxels = math.prod(max(d, 1) for d in dims[1 : ndim + 1])
            return int(max(vox_offset, 348)) + voxels * bitpix // 8
    return None


def _check_gzip_length(path: Path) -> None:
    """A ``.nii.gz`` must decompress to the size its NIfTI header needs.

    Cheap first (the gzip trailer's length field against the header); only when they
    disagree is the whole stream decompressed (zlib checks its CRC on the way).
    """
    try:
        with gzip.open(path, "rb") as f:
            head = f.read(352)
        with open(path, "rb") as f:
            f.seek(-4, os.SEEK_END)
            (isize,) = struct.unpack("<I", f.read(4))
    except (OSError, EOFError, zlib.error, struct.error) as e:
        raise CamusFormatError(f"{path}: not a readable gzip file ({e})") from e
    expected = _nifti_bytes(head)
    if expected is None or isize == expected % 2**32:
        return
    total, error = _gunzip_length(path)
    if error or total < expected:
        detail = f" ({error})" if error else ""
        raise CamusFormatError(f"{path}: truncated: {total} of {expected} bytes{detail}")


def _gunzip_length(path: Path) -> tuple[int, str]:
    """Bytes a gzip file decompresses to, and what stopped it early ("" if nothing)."""
    total = 0
    decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            try:
                total += len(decompressor.decompress(chunk))
            except zlib.error as e:
                return total, f"corrupt gzip stream: {e}"
            while decompressor.eof and decompressor.unused_data:  # a further gzip member
                rest = decompressor.unused_data
                decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
                try:
                    total += len(decompressor.decompress(rest))
                except zlib.error as e:
                    return total, f"corrupt gzip stream: {e}"
    if not decompressor.eof:
        return total, "the gzip stream ends early"
    return total, ""


# --- pixels ----------------------------------------------------------------------------------


def _to_uint8(array: np.ndarray, path: Path) -> np.ndarray:
    if array.dtype == np.uint8:
        return array
    if np.issubdtype(array.dtype, np.floating) and not np.all(np.isfinite(array)):
        raise CamusFormatError(f"{path}: non-finite pixel values")
    if array.size and (
        array.min() < 0 or array.max() > 255 or not np.array_equal(array, np.round(array))
    ):
        raise CamusFormatError(
            f"{path}: pixel values are not 8-bit ({array.dtype}, {array.min()}..{array.max()})"
        )
    return array.astype(np.uint8)


def read_image(path: str | os.PathLike, *, ndim: int = 2) -> tuple[np.ndarray, tuple[float, float]]:
    """Reads a CAMUS image, mask or sequence with SimpleITK.

    Args:
        path: a ``.mhd`` or ``.nii.gz`` file.
        ndim: 2 for an image or mask (a 3-D file with one slice, as the original release
            stores them, is accepted), 3 for a sequence (frames, rows, cols).

    Returns:
        ``(array, (row_mm, col_mm))``: a uint8 array of shape ``(rows, cols)`` or
        ``(frames, rows, cols)``, and the pixel spacing in mm.

    Raises:
        CamusFormatError: naming ``path`` if it is missing, unreadable, truncated, of the
            wrong dimension, not 8-bit, or has a non-positive spacing.
    """
    path = Path(os.fspath(path))
    if not path.is_file():
        raise CamusFormatError(f"{path}: file not found")
    check_complete(path)  # SimpleITK would fill a truncated file with zeros
    try:
        image = sitk.ReadImage(str(path))
        array = sitk.GetArrayFromImage(image)
    except RuntimeError as e:
        raise CamusFormatError(f"{path}: cannot read image ({_last_line(e)})") from e
    array = array.reshape(squeeze_singleton(array.shape, ndim))
    if array.ndim != ndim:
        raise CamusFormatError(
            f"{path}: expected a {ndim}-D image, got shape {array.shape}"
            + (
                " (several components per pixel)"
                if image.GetNumberOfComponentsPerPixel() > 1
                else ""
            )
        )
    spacing_xyz = image.GetSpacing()
    spacing = (float(spacing_xyz[1]), float(spacing_xyz[0]))  # (x, y) -> (row, col)
    if not all(math.isfinite(v) and v > 0 for v in spacing):
        raise CamusFormatError(f"{path}: invalid spacing {spacing}")
    return _to_uint8(array, path), spacing


def check_mask(gt: np.ndarray, path: Path) -> None:
    """Raises :class:`CamusFormatError` naming ``path`` if ``gt`` has labels outside 0..3."""
    bad = np.unique(gt[gt >= NUM_LABELS]) if gt.size else []
    if len(bad):
        raise CamusFormatError(
            f"{path}: mask labels must be within 0..{NUM_LABELS - 1}, found {bad.tolist()}"
        )


def check_same_grid(
    image_shape: tuple[int, ...],
    image_spacing: tuple[float, float],
    gt_shape: tuple[int, ...],
    gt_spacing: tuple[float, float],
    gt_path: Path,
    image_path: Path,
) -> None:
    """Raises :class:`CamusFormatError` naming both files if a mask is not on its image's grid."""
    if tuple(image_shape) != tuple(gt_shape):
        raise CamusFormatError(
            f"{gt_path}: shape {tuple(gt_shape)} differs from {image_path.name} "
            f"{tuple(image_shape)}"
        )
    if not np.allclose(image_spacing, gt_spacing, rtol=1e-4, atol=1e-6):
        raise CamusFormatError(
            f"{gt_path}: spacing {tuple(gt_spacing)} mm differs from {image_path.name} "
            f"{tuple(image_spacing)} mm"
        )
