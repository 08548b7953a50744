"""Reads the files of a CAMUS download (either public release), and checks what it reads.

Where the patients are is :mod:`tfds_camus.layout`'s business; image files (headers, pixels,
truncation checks) are :mod:`tfds_camus.images`'; ``Info_*.cfg`` and the split lists are
:mod:`tfds_camus.textfiles`'. This module reads one patient's files through them, and
re-exports their public names so that ``reader.read_image`` etc. keep working. Spacing is
``(row_mm, col_mm)``.

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
import logging
import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from tfds_camus.errors import CamusFormatError, InvalidPatientsError, MissingFilesError, Problem
from tfds_camus.images import (
    ImageHeader,
    check_complete,
    check_mask,
    check_same_grid,
    read_image,
    read_image_header,
    squeeze_singleton,
)
from tfds_camus.layout import (
    Layout,
    Patient,
    detect_layout,
    has_any_gt,
    list_patients,
    patient_index,
)
from tfds_camus.textfiles import STANDARD_INFO_KEYS, read_info_cfg, read_split_lists, read_text
from tfds_camus.vocabulary import (
    ED,
    ES,
    EXTENSIONS,
    INSTANTS,
    LAYOUTS,
    NIFTI,
    NUM_LABELS,
    ORIGINAL,
    OTHER_INSTANT,
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
    "check_mask",
    "check_same_grid",
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
    "read_patient_info",
    "read_split_lists",
    "read_text",
    "squeeze_singleton",
]

logger = logging.getLogger(__name__)


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
        frame = self.ed if instant == ED else self.es
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
            return OTHER_INSTANT
        if index == ed:
            return ED
        if self.es is not None and index == ed + abs(self.es - self.ed):
            return ES
        return OTHER_INSTANT


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
    ed, es = frames[ED], frames[ES]
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
