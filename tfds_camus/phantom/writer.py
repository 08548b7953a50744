"""Writes the synthetic CAMUS in the exact file layout of either release, quirks included.

Patients are *synthetic people* numbered 1..500 as in the 2023 release. In the original
layout, as in the real challenge release, people from ``original_testing_from`` (451) on are
the test set: written to ``testing/patient0001`` .. (their number minus 450), so that
``testing/`` and ``training/`` hold different people under the same ids, and without masks
unless ``testing_gt``.

Quirks of the real downloads reproduced here (docs/camus.md, "What the real downloads
look like"):

- views stored ES -> ED (``es_to_ed``): the sequence is written from ES to ED and the cfg says
  ``ED: NbFrame``, ``ES: 1``;
- the original release's ED/ES images and masks are 3-D with a singleton (1, rows, cols);
- its ``*_sequence.mhd`` runs from ED to ES (``original_sequence="half"``, the default) or
  is a whole cycle (``"cycle"``);
- the 2023 patient folders hold ``MANDATORY_CITATION.md``, ``database_split/`` an
  ``information.txt``.

Archives and folder arrangements as downloaded are :mod:`tfds_camus.phantom.downloads`.
"""

from __future__ import annotations

import concurrent.futures
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from tfds_camus import atomic, folds
from tfds_camus.phantom.anatomy import (
    PatientParams,
    ViewGeometry,
    biplane_volume_ml,
    patient_number,
    patient_params,
)
from tfds_camus.phantom.render import ViewRenderer, motion, whole_cycle
from tfds_camus.vocabulary import (
    CAMUS_PUBLIC,
    DATABASE_NIFTI,
    DATABASE_SPLIT,
    ED,
    ES,
    EXTENSIONS,
    NIFTI,
    ORIGINAL,
    PATIENT_ID_RE,
    RELEASES,
    SPLIT_NAMES,
    TESTING,
    TRAINING,
    VIEW_2CH,
    VIEW_4CH,
    VIEWS,
)

logger = logging.getLogger(__name__)

# The original challenge release kept people 451..500 as its test set.
ORIGINAL_TESTING_FROM = 451
ORIGINAL_SEQUENCES = ("half", "cycle")
# Written last into out_dir, with the arguments that made the tree (``reuse=True`` reads it).
COMPLETE_MARKER = ".complete"
CITATION_TEXT = (
    "# Mandatory citation\n\nSynthetic stand-in for CAMUS (keras-runet's tfds_camus.phantom). "
    "Work on the real data must cite Leclerc et al., IEEE TMI 38(9):2198-2210, 2019.\n"
)
SPLIT_INFORMATION = (
    "Synthetic database_split (tfds_camus.phantom): patients 1-400 training, 401-450 "
    "validation, 451-500 testing.\n"
)


def _to_sitk(array: np.ndarray, row_mm: float, col_mm: float) -> sitk.Image:
    image = sitk.GetImageFromArray(array)
    if array.ndim == 2:
        image.SetSpacing((float(col_mm), float(row_mm)))
    else:
        image.SetSpacing((float(col_mm), float(row_mm), 1.0))
    return image


def _write_image(array, path: Path, g: ViewGeometry, compression_level: int) -> None:
    image = _to_sitk(array, g.row_mm, g.col_mm)
    if path.name.endswith(".nii.gz"):
        sitk.WriteImage(image, str(path), True, compression_level)
    else:
        sitk.WriteImage(image, str(path), False)


def _format_value(value) -> str:
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def _write_cfg(path: Path, values: dict) -> None:
    path.write_text("".join(f"{k}: {_format_value(v)}\n" for k, v in values.items()))


def _patient_volumes(p: PatientParams) -> tuple[float, float, float]:
    g2, g4 = p.views[VIEW_2CH], p.views[VIEW_4CH]
    edv = round(biplane_volume_ml(g2, g4, 0.0), 1)
    esv = round(biplane_volume_ml(g2, g4, 1.0), 1)
    ef = round(100.0 * (edv - esv) / edv, 1)
    return edv, esv, ef


def _write_patient(patient_dir: Path, p: PatientParams, job: dict) -> None:
    """Writes one patient's files into ``patient_dir`` (which exists and is empty).

    ``job["file_id"]`` is the id in the file names (differs from the person's for the
    original release's testing/); ``job["es_to_ed"]`` the views to store ES -> ED.
    """
    layout, with_gt, level = job["layout"], job["with_gt"], job["compression_level"]
    edv, esv, ef = _patient_volumes(p)
    rng = np.random.default_rng([int(job["seed"]), patient_number(p.patient_id), 1])
    ext = EXTENSIONS[layout]
    pid = job["file_id"]
    for view in VIEWS:
        g = p.views[view]
        renderer = ViewRenderer(g, p.quality, rng)
        half = p.half_frames[view]
        if layout == NIFTI or job["original_sequence"] == "half":
            s_values = motion(half)
            ed_index, es_index = 0, half - 1
        else:
            s_values = whole_cycle(p.pre_frames[view], half, p.post_frames[view])
            ed_index = p.pre_frames[view]
            es_index = ed_index + half - 1
        frames = [renderer.frame(float(s), i) for i, s in enumerate(s_values)]
        images = np.stack([f[0] for f in frames])
        masks = np.stack([f[1] for f in frames])
        for instant, index in ((ED, ed_index), (ES, es_index)):
            image, mask = images[index], masks[index]
            if layout == ORIGINAL:  # stored 3-D with a singleton, as in the real release
                image, mask = image[None], mask[None]
            _write_image(image, patient_dir / f"{pid}_{view}_{instant}{ext}", g, level)
            if with_gt:
                _write_image(mask, patient_dir / f"{pid}_{view}_{instant}_gt{ext}", g, level)
        n = len(s_values)
        reverse = view in job["es_to_ed"]
        if reverse:  # stored ES -> ED: file position of frame i is n - 1 - i
            images, masks = images[::-1], masks[::-1]
            ed_frame, es_frame = n - ed_index, n - es_index
        else:
            ed_frame, es_frame = ed_index + 1, es_index + 1
        common = {ED: ed_frame, ES: es_frame, "NbFrame": n}
        common.update(Sex=p.sex, Age=p.age, ImageQuality=p.quality)
        if layout == NIFTI:
            _write_image(images, patient_dir / f"{pid}_{view}_half_sequence{ext}", g, level)
            if with_gt:
                _write_image(masks, patient_dir / f"{pid}_{view}_half_sequence_gt{ext}", g, level)
            cfg = {**common, "EF": ef, "FrameRate": p.frame_rate}
        else:
            _write_image(images, patient_dir / f"{pid}_{view}_sequence{ext}", g, level)
            cfg = {**common, "LVedv": edv, "LVesv": esv, "LVef": ef}
        _write_cfg(patient_dir / f"Info_{view}.cfg", cfg)
    if layout == NIFTI:
        (patient_dir / "MANDATORY_CITATION.md").write_text(CITATION_TEXT)


def _write_patient_atomically(job: dict) -> str:
    """Writes a patient into a temporary folder beside its destination, then renames it."""
    final = Path(job["final"])
    params = patient_params(
        job["patient_id"],
        job["seed"],
        scale=job["scale"],
        half_sequence_frames=job["half_sequence_frames"],
        quality=job["quality"],
    )
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        tmp.chmod(0o755)  # mkdtemp makes it private
        _write_patient(tmp, params, job)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return job["patient_id"]


def patients_per_group(n: int) -> list[str]:
    """``n`` patient ids (1..500) spread round-robin over the paper's 10 fold groups: patient
    ``i`` is the ``i // 10``-th of group ``i % 10 + 1``, so that every fold has all three parts.

    >>> patients_per_group(3)
    ['patient0001', 'patient0042', 'patient0056']
    """
    groups = [folds.group_patients(k) for k in range(1, folds.NUM_FOLDS + 1)]
    limit = sum(len(g) for g in groups)
    if not 1 <= n <= limit:
        raise ValueError(f"per_group spreads 1..{limit} patients over the fold groups, got {n}")
    return [groups[i % folds.NUM_FOLDS][i // folds.NUM_FOLDS] for i in range(n)]


def _patient_ids(num_patients: int, first_patient: int, patient_ids, per_group=False) -> list[str]:
    if per_group:
        if patient_ids is not None:
            raise ValueError("per_group and patient_ids exclude each other")
        return patients_per_group(num_patients)
    if patient_ids is not None:
        ids = []
        for p in patient_ids:
            pid = f"patient{int(p):04d}" if not str(p).startswith("patient") else str(p)
            if not PATIENT_ID_RE.match(pid):
                raise ValueError(f"not a patient id: {p!r}")
            ids.append(pid)
        if len(set(ids)) != len(ids):
            raise ValueError("patient_ids has duplicates")
        return ids
    if num_patients < 1 or first_patient < 1 or first_patient + num_patients - 1 > 9999:
        raise ValueError(f"invalid patient range: {num_patients} from {first_patient}")
    return [f"patient{i:04d}" for i in range(first_patient, first_patient + num_patients)]


def _split_lists(ids: Sequence[str]) -> dict[str, list[str]]:
    """A synthetic ``database_split``: 1..400 training, 401..450 validation, 451.. testing
    (the ranges public code that reads the 2023 release uses)."""
    lists = {name: [] for name in SPLIT_NAMES}
    for pid in ids:
        n = patient_number(pid)
        name = "subgroup_testing" if n > 450 else "subgroup_validation" if n > 400 else None
        lists[name or "subgroup_training"].append(pid)
    return lists


def es_to_ed_views(
    patient_ids: Sequence[str], es_to_ed: float | Iterable[str] = 0.0, seed: int = 0
) -> dict[str, set[str]]:
    """Which views each patient stores ES -> ED.

    Args:
        patient_ids: the synthetic people.
        es_to_ed: a fraction of the 4CH views (drawn per patient from ``seed``; the real
            original release has 19 of 500), or explicit ``"patient0001_4CH"`` names.
    """
    if isinstance(es_to_ed, (int, float)) and not isinstance(es_to_ed, bool):
        if not 0.0 <= es_to_ed <= 1.0:
            raise ValueError(f"es_to_ed must be a fraction in 0..1, got {es_to_ed}")
        return {
            pid: {VIEW_4CH}
            for pid in patient_ids
            if np.random.default_rng([int(seed), patient_number(pid), 2]).random() < es_to_ed
        }
    views: dict[str, set[str]] = {}
    for name in es_to_ed:
        pid, _, view = str(name).partition("_")
        if not PATIENT_ID_RE.match(pid) or view not in VIEWS:
            raise ValueError(f"es_to_ed names views as 'patient0001_4CH', got {name!r}")
        views.setdefault(pid, set()).add(view)
    return views


def write_synthetic_camus(
    out_dir: str | os.PathLike,
    num_patients: int = 10,
    layout: str = NIFTI,
    seed: int = 0,
    *,
    scale: float = 1.0,
    first_patient: int = 1,
    patient_ids: Sequence[str | int] | None = None,
    per_group: bool = False,
    reuse: bool = False,
    half_sequence_frames: tuple[int, int] = (15, 25),
    quality: str | None = None,
    original_testing_from: int | None = ORIGINAL_TESTING_FROM,
    testing_gt: bool = False,
    es_to_ed: float | Iterable[str] = 0.0,
    original_sequence: str = "half",
    workers: int = 1,
    compression_level: int = 1,
) -> Path:
    """Writes a synthetic CAMUS in the layout of either release.

    Args:
        out_dir: folder to write into (created). ``layout="nifti"`` writes
            ``out_dir/CAMUS_public/database_nifti/`` and ``.../database_split/``;
            ``layout="original"`` writes ``out_dir/training/`` and ``out_dir/testing/``.
            Patients already there are replaced.
        num_patients: number of patients, numbered from ``first_patient``.
        layout: ``"nifti"`` (2023 release) or ``"original"`` (challenge release).
        seed: random seed; each patient depends only on ``(seed, its number)``.
        scale: image size factor; 1 gives CAMUS sizes (~780 x 550), 0.25 tiny test images
            (spacing grows accordingly: the anatomy keeps its size in mm).
        first_patient: number of the first patient.
        patient_ids: explicit patient ids or numbers (overrides ``num_patients`` and
            ``first_patient``), e.g. to include patients of given folds.
        per_group: spread the ``num_patients`` over the paper's 10 fold groups, round-robin
            (:func:`patients_per_group`), so that every fold of ``runet cv`` has data.
        reuse: if ``out_dir`` holds a tree this function completed with the same arguments
            (its :data:`COMPLETE_MARKER`), return it without writing anything.
        half_sequence_frames: inclusive range of the number of frames from ED to ES.
        quality: force every patient's image quality (``"Good"``, ``"Medium"``, ``"Poor"``).
        original_testing_from: original layout only: people with this number or higher are
            the challenge's test set, written to ``testing/`` under ids restarting at
            patient0001, as in the real release (None: all to ``training/``).
        testing_gt: original layout: write the testing/ patients' masks too (some copies of
            the release have them).
        es_to_ed: views stored ES -> ED: a fraction of the 4CH views, or names such as
            ``["patient0001_4CH"]`` (see :func:`es_to_ed_views`).
        original_sequence: original layout: ``"half"`` (ED to ES, as the real release's
            sequences appear to be) or ``"cycle"`` (a whole cycle, ED and ES inside it).
        workers: processes to use (the files do not depend on it).
        compression_level: gzip level of the ``.nii.gz`` files (1 is fast).

    Returns:
        ``out_dir`` as a Path: the folder to pass as the builder's ``manual_dir``. Its
        :data:`COMPLETE_MARKER` (JSON: the arguments) is written last.
    """
    if layout not in RELEASES:
        raise ValueError(f"layout must be one of {RELEASES}, got {layout!r}")
    if not 0.05 <= scale <= 2.0:
        raise ValueError(f"scale must be within 0.05..2, got {scale}")
    if original_sequence not in ORIGINAL_SEQUENCES:
        raise ValueError(
            f"original_sequence must be one of {ORIGINAL_SEQUENCES}, got {original_sequence!r}"
        )
    out_dir = Path(out_dir)
    ids = _patient_ids(num_patients, first_patient, patient_ids, per_group)
    reversed_views = es_to_ed_views(ids, es_to_ed, seed)
    arguments = {
        "patients": ids,
        "layout": layout,
        "seed": int(seed),
        "scale": float(scale),
        "half_sequence_frames": [int(f) for f in half_sequence_frames],
        "quality": quality,
        "original_testing_from": original_testing_from,
        "testing_gt": bool(testing_gt),
        "es_to_ed": {pid: sorted(views) for pid, views in sorted(reversed_views.items())},
        "original_sequence": original_sequence,
        "compression_level": int(compression_level),
    }
    marker = out_dir / COMPLETE_MARKER
    if reuse and _marker_arguments(marker) == arguments:
        logger.info("synthetic CAMUS already in %s (same arguments): reused", out_dir)
        return out_dir
    marker.unlink(missing_ok=True)  # a rewrite killed midway is not complete
    jobs = []
    for pid in ids:
        file_id, with_gt = pid, True
        if layout == NIFTI:
            folder = out_dir / CAMUS_PUBLIC / DATABASE_NIFTI
        else:
            n = patient_number(pid)
            testing = original_testing_from is not None and n >= original_testing_from
            folder = out_dir / (TESTING if testing else TRAINING)
            if testing:
                file_id = f"patient{n - original_testing_from + 1:04d}"
                with_gt = testing_gt
        folder.mkdir(parents=True, exist_ok=True)
        jobs.append(
            dict(
                final=str(folder / file_id),
                patient_id=pid,
                file_id=file_id,
                seed=seed,
                scale=scale,
                half_sequence_frames=tuple(half_sequence_frames),
                quality=quality,
                layout=layout,
                with_gt=with_gt,
                es_to_ed=sorted(reversed_views.get(pid, ())),
                original_sequence=original_sequence,
                compression_level=compression_level,
            )
        )
    logger.info("writing %d synthetic patients (%s layout) to %s", len(ids), layout, out_dir)
    if workers > 1 and len(jobs) > 1:
        with concurrent.futures.ProcessPoolExecutor(workers) as pool:
            for done, pid in enumerate(pool.map(_write_patient_atomically, jobs), start=1):
                logger.debug("wrote %s (%d/%d)", pid, done, len(jobs))
    else:
        for done, job in enumerate(jobs, start=1):
            _write_patient_atomically(job)
            logger.debug("wrote %s (%d/%d)", job["patient_id"], done, len(jobs))
    if layout == NIFTI:
        split_dir = out_dir / CAMUS_PUBLIC / DATABASE_SPLIT
        present = sorted(
            p.name
            for p in (out_dir / CAMUS_PUBLIC / DATABASE_NIFTI).iterdir()
            if PATIENT_ID_RE.match(p.name)
        )
        for name, members in _split_lists(present).items():
            atomic.write_text(split_dir / f"{name}.txt", "".join(f"{m}\n" for m in members))
        atomic.write_text(split_dir / "information.txt", SPLIT_INFORMATION)
    atomic.write_json(marker, arguments)
    return out_dir


def _marker_arguments(marker: Path) -> dict | None:
    """The arguments a completed tree was written with, or None (no marker, or unreadable)."""
    try:
        return json.loads(marker.read_text())
    except (OSError, ValueError):
        return None
