"""Reads the files of a CAMUS download (either public release), and checks what it reads.

Where the patients are is :mod:`tfds_camus.layout`'s business (re-exported here:
:func:`detect_layout`, :func:`list_patients`, ...); this module reads one patient's files.
Images are read with SimpleITK. Spacing is returned as ``(row_mm, col_mm)``: SimpleITK
reports ``(x, y) = (col, row)``, converted here, once.

Frames: ``Info_*.cfg`` gives ED and ES as 1-based frame numbers of the view's sequence. Some
views are stored **ES -> ED** (``ED: NbFrame``, ``ES: 1``; about 4 % of the 4CH views). This
module always hands sequences back in ED -> ES order, and ``frame_index`` always counts frames
after ED (ED is 0); ``es_to_ed`` says how the file stored them. The sequence file is trusted
over the cfg's ``NbFrame`` (a disagreement is a warning).

Every error about the content of a file is a :class:`CamusFormatError` whose message starts
with the path of the offending file; truncated images are caught (a ``.raw`` shorter than
its header needs, a ``.nii.gz`` whose gzip stream is cut short), not read as zeros.

Example:
    >>> from tfds_camus import reader
    >>> layout = reader.detect_layout("/data/camus")  # doctest: +SKIP
    >>> ed = reader.load_instant(layout, "patient0001", "2CH", "ED")  # doctest: +SKIP
    >>> ed["image"].shape, ed["spacing"]  # doctest: +SKIP
    ((843, 512), (0.154, 0.308))
"""

from __future__ import annotations

import dataclasses
import gzip
import logging
import math
import os
import re
import struct
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from tfds_camus.errors import CamusFormatError, InvalidPatientsError, MissingFilesError, Problem
from tfds_camus.layout import (
    Layout,
    Patient,
    detect_layout,
    has_any_gt,
    list_patients,
    patient_index,
)
from tfds_camus.vocabulary import (
    EXTENSIONS,
    INSTANTS,
    LAYOUTS,
    NIFTI,
    NUM_LABELS,
    ORIGINAL,
    PATIENT_ID_RE,
    SPLIT_NAMES,
    VIEWS,
)

__all__ = [
    "EXTENSIONS",
    "INSTANTS",
    "LAYOUTS",
    "NIFTI",
    "NUM_LABELS",
    "ORIGINAL",
    "PATIENT_ID_RE",
    "SPLIT_NAMES",
    "STANDARD_INFO_KEYS",
    "VIEWS",
    "CamusFormatError",
    "FrameOrder",
    "ImageHeader",
    "InvalidPatientsError",
    "Layout",
    "MissingFilesError",
    "Patient",
    "PatientFiles",
    "Problem",
    "check_complete",
    "detect_layout",
    "frame_order",
    "has_any_gt",
    "list_patients",
    "load_half_sequence",
    "load_instant",
    "load_view",
    "missing_files",
    "patient_files",
    "patient_index",
    "read_image",
    "read_image_header",
    "read_info_cfg",
    "read_split_lists",
]

logger = logging.getLogger(__name__)

# Keys of Info_*.cfg that every reader result carries (NaN when the file lacks them).
# Original release: LVedv, LVesv, LVef. 2023 release: EF (and FrameRate).
STANDARD_INFO_KEYS = (
    "ED",
    "ES",
    "NbFrame",
    "Sex",
    "Age",
    "ImageQuality",
    "LVedv",
    "LVesv",
    "LVef",
    "EF",
    "FrameRate",
)
_INT_KEYS = ("ED", "ES", "NbFrame")


# --- text files ------------------------------------------------------------------------------


def read_text(path: Path) -> str:
    """A text file as str (UTF-8 with or without BOM, else Latin-1), naming it on failure."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise CamusFormatError(f"{path}: cannot read: {e}") from e
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def read_split_lists(manual_dir: str | os.PathLike | Layout) -> dict[str, list[str]]:
    """Reads the 2023 release's ``database_split/subgroup_*.txt``.

    Returns:
        ``{"subgroup_training": [...], "subgroup_validation": [...], "subgroup_testing": [...]}``
        for the files present; ``{}`` if there is no ``database_split/`` folder.
    """
    layout = detect_layout(manual_dir)
    if layout.split_dir is None:
        return {}
    lists = {}
    for name in SPLIT_NAMES:
        path = layout.split_dir / f"{name}.txt"
        if not path.is_file():
            continue
        ids = [ln.strip() for ln in read_text(path).splitlines() if ln.strip()]
        bad = [i for i in ids if not PATIENT_ID_RE.match(i)]
        if bad:
            raise CamusFormatError(f"{path}: not patient ids: {bad[:5]}")
        lists[name] = ids
    return lists


def _parse_value(key: str, value: str) -> Any:
    try:
        number = float(value)
    except ValueError:
        return value
    if key in _INT_KEYS and number.is_integer():
        return int(number)
    return number


def read_info_cfg(path: str | os.PathLike) -> dict[str, Any]:
    """Reads an ``Info_2CH.cfg`` / ``Info_4CH.cfg`` file, tolerantly.

    Lines are ``Key: value`` (``=`` is accepted too); CRLF or LF line endings; blank lines and
    lines starting with ``#`` are ignored. Numbers become ``int`` (ED, ES, NbFrame) or
    ``float``; other values stay strings. Unknown keys are kept. Every key of
    :data:`STANDARD_INFO_KEYS` is present in the result, NaN where the file lacks it.

    Raises:
        CamusFormatError: if the file cannot be read, or a line is not ``Key: value``.
    """
    path = Path(os.fspath(path))
    info: dict[str, Any] = {}
    for number, line in enumerate(read_text(path).splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = re.match(r"^([^:=]+?)\s*[:=]\s*(.*)$", line)
        if match is None:
            raise CamusFormatError(f"{path}: line {number} is not 'Key: value': {line!r}")
        key, value = match.group(1).strip(), match.group(2).strip()
        info[key] = _parse_value(key, value)
    for key in STANDARD_INFO_KEYS:
        info.setdefault(key, math.nan)
    return info


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


# --- one patient's files ---------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class PatientFiles:
    """The files of one patient and view (paths may not exist)."""

    patient_dir: Path
    kind: str
    patient_id: str
    view: str
    key: str = ""  # the patient's key in its download ("testing/patient0001"); id if empty

    def _path(self, suffix: str) -> Path:
        return self.patient_dir / f"{self.patient_id}_{self.view}_{suffix}{EXTENSIONS[self.kind]}"

    def image(self, instant: str) -> Path:
        return self._path(instant)

    def gt(self, instant: str) -> Path:
        return self._path(f"{instant}_gt")

    @property
    def info(self) -> Path:
        return self.patient_dir / f"Info_{self.view}.cfg"

    @property
    def sequence(self) -> Path:
        """The view's sequence: ``_sequence`` (original release), ``_half_sequence`` (2023)."""
        return self._path("sequence" if self.kind == ORIGINAL else "half_sequence")

    @property
    def sequence_gt(self) -> Path | None:
        return self._path("half_sequence_gt") if self.kind == NIFTI else None


def _check_view(view: str) -> str:
    view = str(view).upper()
    if view not in VIEWS:
        raise ValueError(f"view must be one of {VIEWS}, got {view!r}")
    return view


def patient_files(
    manual_dir: str | os.PathLike | Layout,
    patient: str | Patient,
    view: str,
    *,
    subset: str | None = None,
) -> PatientFiles:
    """Returns the :class:`PatientFiles` of a patient's ``view``.

    Args:
        manual_dir: a folder or :class:`Layout`.
        patient: a :class:`~tfds_camus.layout.Patient`, a key (``"testing/patient0001"``)
            or an id (the patient outside testing/ unless ``subset`` says otherwise).
        view: ``"2CH"`` or ``"4CH"``.
        subset: ``"training"`` / ``"testing"`` to pick among same-id patients.

    Raises:
        CamusFormatError: if the patient is not in the download.
    """
    layout = detect_layout(manual_dir)
    view = _check_view(view)
    p = layout.patient(patient, subset)
    return PatientFiles(p.path, layout.kind, p.patient_id, view, p.key)


def missing_files(
    files: PatientFiles,
    *,
    gt: bool = True,
    sequence: bool = False,
    instants: Iterable[str] = INSTANTS,
) -> list[Path]:
    """Lists the files of ``files`` that a use needs and that do not exist.

    Args:
        files: a patient's view.
        gt: whether the masks of the instants are needed.
        sequence: whether the (half) sequence (and its mask, 2023 release) is needed.
        instants: which instants' images are needed.
    """
    needed = [files.info]
    for instant in instants:
        needed.append(files.image(instant))
        if gt:
            needed.append(files.gt(instant))
    if sequence:
        needed.append(files.sequence)
        if files.sequence_gt is not None and gt:
            needed.append(files.sequence_gt)
    return [p for p in needed if not p.is_file()]


# --- frames ----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class FrameOrder:
    """Where ED and ES are in a view's sequence, and in which order it is stored.

    Attributes:
        ed, es: 1-based frame numbers in the file (None when the cfg has none).
        num_frames: frames of the sequence file (its header), else the cfg's NbFrame.
        es_to_ed: the file runs from ES to ED (``ED > ES``).
    """

    ed: int | None
    es: int | None
    num_frames: int | None
    es_to_ed: bool

    @property
    def ed_index(self) -> int | None:
        """0-based position of ED once the sequence is in ED -> ES order."""
        if self.ed is None:
            return None
        if self.es_to_ed:
            return self.num_frames - self.ed if self.num_frames else 0
        return self.ed - 1

    def frame_index(self, instant: str) -> int:
        """Frames after ED of ``"ED"`` (0) or ``"ES"``; -1 when the cfg does not say."""
        frame = self.ed if instant == "ED" else self.es
        if frame is None or self.ed is None:
            return -1
        return abs(frame - self.ed)

    def in_ed_to_es_order(self, frames: np.ndarray) -> np.ndarray:
        """A ``(frames, ...)`` array of the file, in ED -> ES order."""
        return np.ascontiguousarray(frames[::-1]) if self.es_to_ed else frames

    def instant_at(self, index: int) -> str:
        """``"ED"``, ``"ES"`` or ``"other"`` for a 0-based position in ED -> ES order."""
        ed = self.ed_index
        if ed is None:
            return "other"
        if index == ed:
            return "ED"
        if self.es is not None and index == ed + abs(self.es - self.ed):
            return "ES"
        return "other"


def frame_order(
    info: dict[str, Any], info_path: Path, num_frames: int | None, warnings: list | None = None
) -> FrameOrder:
    """Checks a cfg's ED / ES against the sequence and says in which order it is stored.

    Args:
        info: the view's ``Info_*.cfg`` (see :func:`read_info_cfg`).
        info_path: its path, for messages.
        num_frames: frames of the sequence file, or None if there is none.
        warnings: where to append what is odd but usable (NbFrame disagreeing with the
            file, ED = ES); logged if None.

    Raises:
        CamusFormatError: naming the cfg if ED / ES are not frame numbers of the sequence.
    """

    def warn(message: str) -> None:
        if warnings is None:
            logger.warning("%s", message)
        else:
            warnings.append(message)

    nb = info.get("NbFrame")
    limit = num_frames
    if isinstance(nb, int) and not isinstance(nb, bool):
        if num_frames is None:
            if nb < 1:
                raise CamusFormatError(f"{info_path}: NbFrame must be >= 1, got {nb}")
            limit = nb
        elif nb != num_frames:
            warn(
                f"{info_path}: NbFrame {nb} but the sequence file has {num_frames} frames; "
                "using the file"
            )
    frames = {}
    for key in INSTANTS:
        value = info.get(key)
        if isinstance(value, float) and math.isnan(value):
            frames[key] = None
            continue
        if not isinstance(value, int) or isinstance(value, bool):
            raise CamusFormatError(f"{info_path}: {key} must be a frame number, got {value!r}")
        if value < 1 or (limit is not None and value > limit):
            raise CamusFormatError(
                f"{info_path}: {key} = {value} is outside the sequence's frames 1..{limit}"
            )
        frames[key] = value
    ed, es = frames["ED"], frames["ES"]
    if ed is not None and ed == es:
        warn(f"{info_path}: ED and ES are the same frame ({ed})")
    return FrameOrder(ed, es, limit, ed is not None and es is not None and ed > es)


def _sequence_frames(files: PatientFiles, warnings: list | None = None) -> int | None:
    """Frames of the view's sequence file (header only); None, with a warning, when it is
    unreadable: for the ED / ES images it is only a check."""
    if not files.sequence.is_file():
        return None
    try:
        shape = read_image_header(files.sequence).shape
    except CamusFormatError as err:
        message = f"{err}; ED / ES not checked against it"
        if warnings is None:
            logger.warning("%s", message)
        else:
            warnings.append(message)
        return None
    return shape[0] if len(shape) == 3 else 1


def read_patient_info(
    files: PatientFiles, *, check_sequence: bool = True, warnings: list | None = None
) -> tuple[dict[str, Any], FrameOrder]:
    """Reads and checks a view's ``Info_*.cfg`` against its sequence file (header only)."""
    info = read_info_cfg(files.info)
    num_frames = _sequence_frames(files, warnings) if check_sequence else None
    return info, frame_order(info, files.info, num_frames, warnings)


def load_instant(
    manual_dir: str | os.PathLike | Layout,
    patient: str | Patient,
    view: str,
    instant: str,
    *,
    check_sequence: bool = True,
    subset: str | None = None,
    warnings: list | None = None,
) -> dict[str, Any]:
    """Loads one annotated instant (ED or ES) of one view of one patient, checked.

    Args:
        manual_dir: a folder or :class:`Layout` (see :func:`detect_layout`).
        patient: a patient, key or id (see :func:`patient_files`), e.g. ``"patient0001"``.
        view: ``"2CH"`` or ``"4CH"``.
        instant: ``"ED"`` or ``"ES"``.
        check_sequence: also check ED/ES against the sequence file's length (header only).
        subset: picks among same-id patients of the original release.
        warnings: where to append what is odd but usable (see :func:`frame_order`); logged
            if None.

    Returns:
        ``dict(image=uint8 (rows, cols), gt=uint8 (rows, cols) or None when the release has
        no mask for it, spacing=(row_mm, col_mm), info=Info_*.cfg values, frame_index=frames
        after ED (ED: 0; -1 if the cfg does not say), es_to_ed=the sequence is stored ES -> ED,
        num_frames=frames of the sequence (file, else cfg; -1 if unknown), image_path=,
        gt_path=)``.

    Raises:
        MissingFilesError: if the image or the cfg is missing.
        CamusFormatError: naming the file, if a file is unreadable or truncated, the mask is
            not on the image's grid, has labels outside 0..3, or ED/ES are outside the sequence.
    """
    instant = str(instant).upper()
    if instant not in INSTANTS:
        raise ValueError(f"instant must be one of {INSTANTS}, got {instant!r}")
    files = patient_files(manual_dir, patient, view, subset=subset)
    missing = missing_files(files, gt=False, instants=(instant,))
    if missing:
        raise MissingFilesError(files.patient_dir, missing)
    info, order = read_patient_info(files, check_sequence=check_sequence, warnings=warnings)
    return _read_instant(files, instant, info, order)


def load_view(
    manual_dir: str | os.PathLike | Layout,
    patient: str | Patient,
    view: str,
    *,
    check_sequence: bool = True,
    subset: str | None = None,
    warnings: list | None = None,
) -> dict[str, dict[str, Any]]:
    """Both instants of one view: ``{"ED": ..., "ES": ...}``, each as :func:`load_instant`
    returns it; the cfg and the sequence header are read once."""
    files = patient_files(manual_dir, patient, view, subset=subset)
    missing = missing_files(files, gt=False)
    if missing:
        raise MissingFilesError(files.patient_dir, missing)
    info, order = read_patient_info(files, check_sequence=check_sequence, warnings=warnings)
    return {instant: _read_instant(files, instant, info, order) for instant in INSTANTS}


def _read_instant(files: PatientFiles, instant: str, info: dict, order: FrameOrder) -> dict:
    image_path = files.image(instant)
    image, spacing = read_image(image_path)
    gt_path = files.gt(instant)
    gt = None
    if gt_path.is_file():
        gt, gt_spacing = read_image(gt_path)
        check_same_grid(image.shape, spacing, gt.shape, gt_spacing, gt_path, image_path)
        check_mask(gt, gt_path)
    return {
        "image": image,
        "gt": gt,
        "spacing": spacing,
        "info": info,
        "frame_index": order.frame_index(instant),
        "es_to_ed": order.es_to_ed,
        "num_frames": order.num_frames if order.num_frames is not None else -1,
        "image_path": image_path,
        "gt_path": gt_path if gt is not None else None,
    }


def load_half_sequence(
    manual_dir: str | os.PathLike | Layout,
    patient: str | Patient,
    view: str,
    *,
    subset: str | None = None,
    warnings: list | None = None,
) -> dict[str, Any]:
    """Loads the 2023 release's half sequence of one view with its masks, in ED -> ES order.

    Returns:
        ``dict(images=uint8 (frames, rows, cols), gt=uint8 (frames, rows, cols), both in ED ->
        ES order, spacing=(row_mm, col_mm), info=Info_*.cfg values, order=FrameOrder (of the
        file), frame_index=int array of frames after ED, instants=["ED", "other", ..., "ES"],
        es_to_ed=bool, image_path=, gt_path=)``.

    Raises:
        CamusFormatError: if the download is the original release (it has no annotated
            sequences), a file is missing, unreadable or truncated, the masks are not on the
            images' grid or have labels outside 0..3, or ED/ES are missing or outside it.
    """
    files = patient_files(manual_dir, patient, view, subset=subset)
    if files.kind != NIFTI:
        raise CamusFormatError(
            f"{files.patient_dir}: annotated half sequences exist only in the 2023 (NIfTI) "
            "release; this is the original release"
        )
    missing = missing_files(files, gt=True, sequence=True, instants=())
    if missing:
        raise MissingFilesError(files.patient_dir, missing)
    images, spacing = read_image(files.sequence, ndim=3)
    gt, gt_spacing = read_image(files.sequence_gt, ndim=3)
    check_same_grid(images.shape, spacing, gt.shape, gt_spacing, files.sequence_gt, files.sequence)
    check_mask(gt, files.sequence_gt)
    info = read_info_cfg(files.info)
    order = frame_order(info, files.info, images.shape[0], warnings)
    if order.ed is None or order.es is None:
        raise CamusFormatError(f"{files.info}: ED and ES are needed to order the half sequence")
    n = images.shape[0]
    return {
        "images": order.in_ed_to_es_order(images),
        "gt": order.in_ed_to_es_order(gt),
        "spacing": spacing,
        "info": info,
        "order": order,
        "frame_index": np.arange(n, dtype=np.int32) - np.int32(order.ed_index),
        "instants": [order.instant_at(i) for i in range(n)],
        "es_to_ed": order.es_to_ed,
        "image_path": files.sequence,
        "gt_path": files.sequence_gt,
    }
