"""Reads a CAMUS download (either public release) from disk, and checks what it reads.

Two releases exist (REFERENCE.md):

- ``original``: the challenge release, MetaImage files (``.mhd`` + ``.raw``) under
  ``training/patientXXXX/`` (with ``*_gt`` masks) and ``testing/patientXXXX/`` (no masks).
  ``patientXXXX_{2CH,4CH}_sequence.mhd`` is the whole cycle, without masks.
- ``nifti``: the 2023 release, ``CAMUS_public/database_nifti/patientXXXX/*.nii.gz`` (with a
  ``*_half_sequence.nii.gz`` from ED to ES and its mask on every frame) and
  ``CAMUS_public/database_split/subgroup_{training,validation,testing}.txt``.

:func:`detect_layout` accepts the folder that holds either release, the release folder
itself (``CAMUS_public``), or its inner folder (``training``, ``testing``,
``database_nifti``). Images are read with SimpleITK. Spacing is returned as
``(row_mm, col_mm)``: SimpleITK reports ``(x, y) = (col, row)``, converted here, once.

Every error about the content of a file is a :class:`CamusFormatError` whose message starts
with the path of the offending file.

Example:
    >>> from tfds_camus import reader
    >>> layout = reader.detect_layout("/data/camus")  # doctest: +SKIP
    >>> ed = reader.load_instant(layout, "patient0001", "2CH", "ED")  # doctest: +SKIP
    >>> ed["image"].shape, ed["spacing"]  # doctest: +SKIP
    ((843, 512), (0.154, 0.308))
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

logger = logging.getLogger(__name__)

ORIGINAL = "original"
NIFTI = "nifti"
LAYOUTS = (ORIGINAL, NIFTI)
VIEWS = ("2CH", "4CH")
INSTANTS = ("ED", "ES")
NUM_LABELS = 4  # 0 background, 1 LV cavity, 2 myocardium, 3 left atrium
SPLIT_NAMES = ("subgroup_training", "subgroup_validation", "subgroup_testing")

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
# Patient folders are named patientXXXX; image files end in .mhd (original) or .nii.gz (2023).
PATIENT_ID_RE = re.compile(r"^patient\d{4}$")
EXTENSIONS = {ORIGINAL: ".mhd", NIFTI: ".nii.gz"}


class CamusFormatError(ValueError):
    """A file or folder of a CAMUS download is missing, unreadable or inconsistent.

    The message starts with the path of the file (or folder) at fault.
    """


class MissingFilesError(CamusFormatError):
    """A patient lacks files it needs; ``missing`` lists their paths."""

    def __init__(self, patient_dir: Path, missing: list[Path], note: str = ""):
        self.patient_dir = Path(patient_dir)
        self.missing = [Path(p) for p in missing]
        names = ", ".join(p.name for p in self.missing)
        super().__init__(f"{self.patient_dir}: missing {len(self.missing)} file(s): {names}{note}")


@dataclasses.dataclass(frozen=True)
class Layout:
    """Where the patients of one CAMUS download are.

    Attributes:
        kind: ``"original"`` or ``"nifti"``.
        root: the folder that was given.
        subsets: ``(name, folder)`` pairs that hold ``patientXXXX/`` folders; ``name`` is
            ``"training"``, ``"testing"`` (original release) or ``"database_nifti"``.
        split_dir: the 2023 release's ``database_split/`` folder, or None.
    """

    kind: str
    root: Path
    subsets: tuple[tuple[str, Path], ...]
    split_dir: Path | None = None

    @property
    def extension(self) -> str:
        """File extension of the images: ``.mhd`` or ``.nii.gz``."""
        return EXTENSIONS[self.kind]


def _is_patient_dir(path: Path) -> bool:
    return path.is_dir() and PATIENT_ID_RE.match(path.name) is not None


def _patient_dirs(folder: Path) -> list[Path]:
    try:
        return sorted(p for p in folder.iterdir() if _is_patient_dir(p))
    except OSError:
        return []


def _kind_of_patient_folder(folder: Path) -> str | None:
    """Guesses the release from the image files of the first patient folder in ``folder``."""
    for patient in _patient_dirs(folder):
        names = [p.name for p in patient.iterdir()]
        if any(n.endswith(".nii.gz") or n.endswith(".nii") for n in names):
            return NIFTI
        if any(n.endswith(".mhd") for n in names):
            return ORIGINAL
    return None


def _detect_here(path: Path) -> Layout | None:
    original = tuple(
        (name, path / name) for name in ("training", "testing") if (path / name).is_dir()
    )
    if original:
        return Layout(ORIGINAL, path, original)
    if (path / "database_nifti").is_dir():
        split = path / "database_split"
        return Layout(
            NIFTI,
            path,
            (("database_nifti", path / "database_nifti"),),
            split if split.is_dir() else None,
        )
    kind = _kind_of_patient_folder(path)
    if kind == NIFTI:
        split = path.parent / "database_split"
        return Layout(NIFTI, path, ((path.name, path),), split if split.is_dir() else None)
    if kind == ORIGINAL:
        return Layout(ORIGINAL, path, ((path.name, path),))
    return None


def detect_layout(path: str | os.PathLike | Layout) -> Layout:
    """Finds which CAMUS release a folder holds, and where its patients are.

    Args:
        path: the folder with ``training/`` and/or ``testing/`` (original release), or with
            ``database_nifti/`` (2023 release), or one folder above either (e.g. the folder
            that holds ``CAMUS_public/``), or one of the inner folders themselves.
            A :class:`Layout` is returned unchanged.

    Returns:
        A :class:`Layout`.

    Raises:
        CamusFormatError: if the folder does not exist or holds neither release.
    """
    if isinstance(path, Layout):
        return path
    path = Path(os.fspath(path))
    if not path.is_dir():
        raise CamusFormatError(f"{path}: not a folder (expected a CAMUS download)")
    layout = _detect_here(path)
    if layout is not None:
        return layout
    children = sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
    found = [lay for lay in (_detect_here(c) for c in children) if lay is not None]
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        raise CamusFormatError(
            f"{path}: holds several CAMUS downloads ({', '.join(str(f.root) for f in found)}); "
            "give one of them"
        )
    listing = ", ".join(sorted(p.name for p in path.iterdir())[:10]) or "nothing"
    raise CamusFormatError(
        f"{path}: no CAMUS release found (expected training/ and/or testing/ with .mhd files, "
        f"or database_nifti/ with .nii.gz files); found: {listing}"
    )


def patient_index(manual_dir: str | os.PathLike | Layout) -> dict[str, tuple[str, Path]]:
    """Maps every patient id of a download to ``(subset name, patient folder)``.

    A patient found in both ``training/`` and ``testing/`` is taken from the folder whose
    files include masks (a warning is logged).
    """
    layout = detect_layout(manual_dir)
    index: dict[str, tuple[str, Path]] = {}
    for subset, folder in layout.subsets:
        for patient_dir in _patient_dirs(folder):
            pid = patient_dir.name
            if pid in index:
                kept = index[pid]
                if not _has_any_gt(kept[1]) and _has_any_gt(patient_dir):
                    index[pid] = (subset, patient_dir)
                    kept = index[pid]
                logger.warning("%s is in two folders; using %s", pid, kept[1])
                continue
            index[pid] = (subset, patient_dir)
    return dict(sorted(index.items()))


def _has_any_gt(patient_dir: Path) -> bool:
    return any("_gt." in p.name for p in patient_dir.iterdir())


def list_patients(
    manual_dir: str | os.PathLike | Layout, *, labeled_only: bool = False
) -> list[str]:
    """Returns the sorted patient ids (``"patient0001"``, ...) of a download.

    Args:
        manual_dir: a folder or :class:`Layout` (see :func:`detect_layout`).
        labeled_only: keep only patients with at least one ground-truth mask file.
    """
    index = patient_index(manual_dir)
    return [pid for pid, (_, d) in index.items() if not labeled_only or _has_any_gt(d)]


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
        ids = [ln.strip() for ln in _read_text(path).splitlines() if ln.strip()]
        bad = [i for i in ids if not PATIENT_ID_RE.match(i)]
        if bad:
            raise CamusFormatError(f"{path}: not patient ids: {bad[:5]}")
        lists[name] = ids
    return lists


def _read_text(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise CamusFormatError(f"{path}: cannot read: {e}") from e
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")


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
    for number, line in enumerate(_read_text(path).splitlines(), start=1):
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
        ndim: 2 for an image or mask (a 3-D file with one slice is accepted), 3 for a
            sequence (frames, rows, cols).

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
    try:
        image = sitk.ReadImage(str(path))
        array = sitk.GetArrayFromImage(image)
    except RuntimeError as e:
        detail = str(e).strip().splitlines()
        raise CamusFormatError(f"{path}: cannot read image ({detail[-1] if detail else e})") from e
    spacing_xyz = image.GetSpacing()
    if ndim == 2 and array.ndim == 3 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != ndim:
        raise CamusFormatError(
            f"{path}: expected a {ndim}-D image, got shape {array.shape}"
            + (
                " (several components per pixel)"
                if image.GetNumberOfComponentsPerPixel() > 1
                else ""
            )
        )
    spacing = (float(spacing_xyz[1]), float(spacing_xyz[0]))  # (x, y) -> (row, col)
    if not all(math.isfinite(s) and s > 0 for s in spacing):
        raise CamusFormatError(f"{path}: invalid spacing {spacing}")
    return _to_uint8(array, path), spacing


def read_image_info(path: str | os.PathLike) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """Reads only the header of an image: ``(shape as (…, rows, cols), spacing (row, col, …))``.

    Cheap (no pixel data); used to check frame numbers against a sequence's length.
    """
    path = Path(os.fspath(path))
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as e:
        raise CamusFormatError(f"{path}: cannot read image header ({e})") from e
    size = reader.GetSize()
    spacing = reader.GetSpacing()
    shape = tuple(int(s) for s in reversed(size))
    return shape, (spacing[1], spacing[0], *spacing[2:])


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


@dataclasses.dataclass(frozen=True)
class PatientFiles:
    """The files of one patient and view (paths may not exist)."""

    patient_dir: Path
    kind: str
    patient_id: str
    view: str

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
        """Whole cycle (original release) or ED-to-ES half sequence (2023 release)."""
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
    manual_dir: str | os.PathLike | Layout, patient_id: str, view: str
) -> PatientFiles:
    """Returns the :class:`PatientFiles` of ``patient_id``'s ``view``.

    Raises:
        CamusFormatError: if the patient is not in the download.
    """
    layout = detect_layout(manual_dir)
    view = _check_view(view)
    for _, folder in layout.subsets:
        patient_dir = folder / patient_id
        if patient_dir.is_dir():
            break
    else:
        raise CamusFormatError(f"{layout.root}: patient {patient_id} not found")
    return PatientFiles(patient_dir, layout.kind, patient_id, view)


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


def _check_frames(info: dict[str, Any], info_path: Path, num_frames: int | None) -> None:
    nb = info.get("NbFrame")
    limit = num_frames
    if isinstance(nb, int):
        if nb < 1:
            raise CamusFormatError(f"{info_path}: NbFrame must be >= 1, got {nb}")
        if num_frames is not None and nb != num_frames:
            raise CamusFormatError(
                f"{info_path}: NbFrame {nb} but the sequence has {num_frames} frames"
            )
        limit = nb
    for key in INSTANTS:
        value = info.get(key)
        if isinstance(value, float) and math.isnan(value):
            continue
        if not isinstance(value, int):
            raise CamusFormatError(f"{info_path}: {key} must be a frame number, got {value!r}")
        if value < 1 or (limit is not None and value > limit):
            raise CamusFormatError(
                f"{info_path}: {key} = {value} is outside the sequence's frames 1..{limit}"
            )


def read_patient_info(files: PatientFiles, *, check_sequence: bool = True) -> dict[str, Any]:
    """Reads and checks a view's ``Info_*.cfg``: ED/ES within 1..NbFrame (and within the
    sequence file's frames when the sequence exists and ``check_sequence``; only its header is
    read)."""
    info = read_info_cfg(files.info)
    num_frames = None
    if check_sequence and files.sequence.is_file():
        shape, _ = read_image_info(files.sequence)
        num_frames = shape[0] if len(shape) == 3 else 1
    _check_frames(info, files.info, num_frames)
    return info


def load_instant(
    manual_dir: str | os.PathLike | Layout,
    patient_id: str,
    view: str,
    instant: str,
    *,
    check_sequence: bool = True,
) -> dict[str, Any]:
    """Loads one annotated instant (ED or ES) of one view of one patient, checked.

    Args:
        manual_dir: a folder or :class:`Layout` (see :func:`detect_layout`).
        patient_id: e.g. ``"patient0001"``.
        view: ``"2CH"`` or ``"4CH"``.
        instant: ``"ED"`` or ``"ES"``.
        check_sequence: also check ED/ES against the sequence file's length (header only).

    Returns:
        ``dict(image=uint8 (rows, cols), gt=uint8 (rows, cols) or None when the release has
        no mask for it, spacing=(row_mm, col_mm), info=Info_*.cfg values, frame_index=0-based
        frame of the instant in the sequence (-1 if unknown), image_path=, gt_path=)``.

    Raises:
        MissingFilesError: if the image or the cfg is missing.
        CamusFormatError: naming the file, if a file is unreadable, the mask is not on the
            image's grid, has labels outside 0..3, or ED/ES are outside the sequence.
    """
    instant = str(instant).upper()
    if instant not in INSTANTS:
        raise ValueError(f"instant must be one of {INSTANTS}, got {instant!r}")
    files = patient_files(manual_dir, patient_id, view)
    missing = missing_files(files, gt=False, instants=(instant,))
    if missing:
        raise MissingFilesError(files.patient_dir, missing)
    info = read_patient_info(files, check_sequence=check_sequence)
    image_path = files.image(instant)
    image, spacing = read_image(image_path)
    gt_path = files.gt(instant)
    gt = None
    if gt_path.is_file():
        gt, gt_spacing = read_image(gt_path)
        check_same_grid(image.shape, spacing, gt.shape, gt_spacing, gt_path, image_path)
        check_mask(gt, gt_path)
    frame = info.get(instant)
    return {
        "image": image,
        "gt": gt,
        "spacing": spacing,
        "info": info,
        "frame_index": frame - 1 if isinstance(frame, int) else -1,
        "image_path": image_path,
        "gt_path": gt_path if gt is not None else None,
    }


def load_half_sequence(
    manual_dir: str | os.PathLike | Layout, patient_id: str, view: str
) -> dict[str, Any]:
    """Loads the 2023 release's half sequence (ED to ES) of one view, with its masks, checked.

    Returns:
        ``dict(images=uint8 (frames, rows, cols), gt=uint8 (frames, rows, cols),
        spacing=(row_mm, col_mm), info=Info_*.cfg values, image_path=, gt_path=)``.

    Raises:
        CamusFormatError: if the download is the original release (it has no annotated
            sequences), a file is missing or unreadable, the masks are not on the images'
            grid or have labels outside 0..3, or ED/ES/NbFrame disagree with the sequence.
    """
    files = patient_files(manual_dir, patient_id, view)
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
    _check_frames(info, files.info, images.shape[0])
    return {
        "images": images,
        "gt": gt,
        "spacing": spacing,
        "info": info,
        "image_path": files.sequence,
        "gt_path": files.sequence_gt,
    }
