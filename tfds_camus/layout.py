"""Where the patients of a CAMUS download are, however the user unpacked it.

Either public release is found (docs/camus.md, "What the real downloads look like"):

- ``original`` (2019 challenge): ``training/patientXXXX/`` (with ``*_gt`` masks) and
  ``testing/patientXXXX/`` (masks in some copies only), MetaImage ``.mhd`` + ``.raw``.
  **testing/ holds other people under the same ids as training/**: patients are keyed by
  ``(subset, id)``; a testing patient's key is ``"testing/patient0001"``.
- ``nifti`` (2023): ``CAMUS_public/database_nifti/patientXXXX/*.nii.gz`` and
  ``CAMUS_public/database_split/subgroup_{training,validation,testing}.txt``.

Detection walks the given folder(s) down to :data:`MAX_DEPTH` levels and needs no fixed
structure: a doubled top folder (``CAMUS_public/CAMUS_public/``), the inner folders given
directly, ``database_split/`` beside the patient folders or one level up, per-patient folders
from per-patient zips, and macOS debris (``__MACOSX/``, ``.DS_Store``, ``._*``) are all
fine. A patient folder is a folder holding ``patientXXXX_{2CH,4CH}_*`` files (or an empty
folder named ``patientXXXX``). Both releases in the folder(s) is an error unless
``release=`` picks one; a patient found twice is a :class:`~tfds_camus.errors.Problem` of
that patient, never a silent choice.

Archives (``*.zip``, ``*.tar``, ``*.tar.gz``, ``*.tgz``) are listed by the scan
(:attr:`Scan.archives`); the TFDS builder extracts them (``dl_manager.extract``) and scans
the extracted folders with the rest.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from tfds_camus.errors import CamusFormatError, Problem
from tfds_camus.vocabulary import (
    DATABASE_NIFTI,
    DATABASE_SPLIT,
    EXTENSIONS,
    NIFTI,
    ORIGINAL,
    PATIENT_ID_RE,
    RELEASES,
    SPLIT_NAMES,
    SUBSETS,
    TESTING,
    TRAINING,
    VIEWS,
)

logger = logging.getLogger(__name__)

MAX_DEPTH = 6
ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz")
# macOS and Windows leave these in folders and zips; they are never CAMUS data.
IGNORED_NAMES = frozenset({"__MACOSX", ".DS_Store", "Thumbs.db", "desktop.ini"})
_FILE_RE = re.compile(rf"^(patient\d{{4}})_(?:{'|'.join(VIEWS)})_")
_SUBSET_RE = re.compile(rf"(?:^|[^a-z])({TRAINING}|{TESTING})(?:[^a-z]|$)", re.IGNORECASE)
_RELEASE_NAMES = {
    ORIGINAL: "the original challenge release (MetaImage .mhd, training/ and testing/)",
    NIFTI: "the 2023 release (NIfTI .nii.gz, database_nifti/)",
}


def is_ignored(name: str) -> bool:
    """Whether a file or folder name is operating-system debris (``__MACOSX``, ``._x``, ...)."""
    return name in IGNORED_NAMES or name.startswith("._")


def is_archive(path: Path) -> bool:
    return path.name.lower().endswith(ARCHIVE_SUFFIXES) and not is_ignored(path.name)


def archive_stem(path: Path) -> str:
    """``CAMUS_public.zip`` -> ``CAMUS_public``; ``training.tar.gz`` -> ``training``."""
    name = path.name
    for suffix in sorted(ARCHIVE_SUFFIXES, key=len, reverse=True):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


@dataclasses.dataclass(frozen=True)
class Patient:
    """One patient of a download.

    Attributes:
        release: ``"original"`` or ``"nifti"``.
        subset: ``"training"`` or ``"testing"`` (original release), ``"database_nifti"``.
        patient_id: ``"patientXXXX"`` as in the file names.
        path: the folder that holds the patient's files.
    """

    release: str
    subset: str
    patient_id: str
    path: Path

    @property
    def key(self) -> str:
        """Unique within a download: ``"patient0001"``, or ``"testing/patient0001"``."""
        return f"{TESTING}/{self.patient_id}" if self.subset == TESTING else self.patient_id


@dataclasses.dataclass(frozen=True)
class Layout:
    """Where the patients of one CAMUS release are.

    Attributes:
        kind: the release, ``"original"`` or ``"nifti"``.
        root: the folder that was given (the first, if several were).
        patients: every patient found, sorted by subset then id.
        split_dir: the 2023 release's ``database_split/`` folder, or None.
        problems: what the layout itself shows to be wrong with some patients (a patient
            found twice, a folder holding the files of several patients).
    """

    kind: str
    root: Path
    patients: tuple[Patient, ...]
    split_dir: Path | None = None
    problems: tuple[Problem, ...] = ()

    @property
    def extension(self) -> str:
        """File extension of the images: ``.mhd`` or ``.nii.gz``."""
        return EXTENSIONS[self.kind]

    def patient(self, patient: str | Patient, subset: str | None = None) -> Patient:
        """The patient with this key (``"patient0001"``, ``"testing/patient0001"``) or id.

        A bare id names the patient of ``subset`` if given, else the one outside testing/.

        Raises:
            CamusFormatError: if there is no such patient.
        """
        if isinstance(patient, Patient):
            return patient
        key = str(patient)
        if "/" in key:
            subset, key = key.split("/", 1)
        for p in self.patients:
            if p.patient_id == key and (p.subset == subset if subset else p.subset != TESTING):
                return p
        where = f" in {subset}/" if subset else ""
        raise CamusFormatError(f"{self.root}: patient {patient}{where} not found")


@dataclasses.dataclass
class Scan:
    """What a walk over some folders found (see :func:`scan_folders`)."""

    roots: list[Path]
    patient_dirs: list[tuple[Path, str | None, list[str]]] = dataclasses.field(
        default_factory=list
    )  # (folder, release guessed from its images or None, patient ids of its files)
    split_dirs: list[Path] = dataclasses.field(default_factory=list)
    archives: list[Path] = dataclasses.field(default_factory=list)

    def extend(self, other: Scan) -> None:
        self.roots += other.roots
        self.patient_dirs += other.patient_dirs
        self.split_dirs += other.split_dirs
        self.archives += other.archives


def _release_of(names: Iterable[str]) -> str | None:
    names = list(names)
    if any(n.endswith((".nii.gz", ".nii")) for n in names):
        return NIFTI
    if any(n.endswith((".mhd", ".raw")) for n in names):
        return ORIGINAL
    return None


def _walk(folder: Path, depth: int, scan: Scan, exclude: set[Path]) -> None:
    try:
        entries = sorted(e for e in folder.iterdir() if not is_ignored(e.name))
    except OSError as e:
        logger.warning("%s: cannot be listed (%s); skipped", folder, e)
        return
    files = [e for e in entries if e.is_file()]
    dirs = [e for e in entries if e.is_dir() and e.resolve() not in exclude]
    ids = sorted({m.group(1) for f in files if (m := _FILE_RE.match(f.name))})
    if ids or (PATIENT_ID_RE.match(folder.name) and not dirs):
        scan.patient_dirs.append((folder, _release_of(f.name for f in files), ids))
        return  # a patient folder: nothing below it is another patient
    if any(f.name == f"{name}.txt" for f in files for name in SPLIT_NAMES):
        scan.split_dirs.append(folder)
    scan.archives += [f for f in files if is_archive(f)]
    if depth < MAX_DEPTH:
        for d in dirs:
            _walk(d, depth + 1, scan, exclude)


def scan_folders(
    paths: str | os.PathLike | Sequence[str | os.PathLike], *, exclude: Iterable[Path] = ()
) -> Scan:
    """Walks ``paths`` for patient folders, ``database_split`` lists and archives.

    Raises:
        CamusFormatError: if a path is not a folder.
    """
    roots = [Path(os.fspath(paths))] if isinstance(paths, (str, os.PathLike)) else paths
    roots = [Path(os.fspath(p)).expanduser() for p in roots]
    excluded = {Path(p).resolve() for p in exclude}
    scan = Scan(roots=list(roots))
    for root in roots:
        if not root.is_dir():
            raise CamusFormatError(f"{root}: not a folder (expected a CAMUS download)")
        _walk(root, 0, scan, excluded)
    return scan


def _subset_of(folder: Path, roots: Sequence[Path], release: str) -> str:
    """training / testing from the nearest folder so named (original release)."""
    if release == NIFTI:
        return DATABASE_NIFTI
    root = next((r for r in roots if folder == r or r in folder.parents), None)
    parts = [folder.name, *(p.name for p in folder.parents)]
    if root is not None:
        parts = parts[: len(folder.relative_to(root).parts) + 1]  # up to the root's own name
    for name in parts:
        match = _SUBSET_RE.search(name)
        if match:
            return match.group(1).lower()
    return TRAINING


def _describe(release: str, dirs: list[Path]) -> str:
    parents = sorted({str(d.parent) for d in dirs})
    where = ", ".join(parents[:3]) + (", ..." if len(parents) > 3 else "")
    return f"{_RELEASE_NAMES[release]}: {len(dirs)} patient folder(s) in {where}"


def _pick_split_dir(split_dirs: list[Path]) -> Path | None:
    if not split_dirs:
        return None
    contents = {}
    for d in split_dirs:
        key = tuple(
            tuple((d / f"{n}.txt").read_bytes().split()) if (d / f"{n}.txt").is_file() else ()
            for n in SPLIT_NAMES
        )
        contents.setdefault(key, d)
    if len(contents) > 1:
        raise CamusFormatError(
            f"{split_dirs[0]}: the download holds {len(contents)} different database_split "
            f"lists ({', '.join(str(d) for d in contents.values())}); keep one"
        )
    return split_dirs[0]


def layout_from_scan(scan: Scan, *, release: str | None = None) -> Layout:
    """The :class:`Layout` of what :func:`scan_folders` found.

    Args:
        scan: the folders walked.
        release: ``"original"`` or ``"nifti"`` to use that release when both are present.

    Raises:
        CamusFormatError: if no release is found, or both are and ``release`` is None.
    """
    if release is not None and release not in RELEASES:
        raise ValueError(f"release must be one of {RELEASES} or None, got {release!r}")
    root = scan.roots[0]
    dirs = list(scan.patient_dirs)
    by_parent: dict[Path, set[str]] = {}
    for folder, kind, _ in dirs:
        if kind:
            by_parent.setdefault(folder.parent, set()).add(kind)
    found = {kind for _, kind, _ in dirs if kind}
    resolved = []
    for folder, kind, ids in dirs:
        siblings = by_parent.get(folder.parent, set())
        kind = kind or (next(iter(siblings)) if len(siblings) == 1 else None)
        kind = kind or (next(iter(found)) if len(found) == 1 else None)
        if kind is None:
            logger.warning("%s: no image files, and no release around it; ignored", folder)
            continue
        resolved.append((folder, kind, ids))
    if not found:
        listing = ", ".join(sorted(p.name for p in root.iterdir())[:10]) or "nothing"
        raise CamusFormatError(
            f"{root}: no CAMUS release found (expected training/ and/or testing/ with .mhd "
            "files, or database_nifti/ with .nii.gz files, or the zip files as downloaded); "
            f"found: {listing}"
        )
    if release is None and len(found) > 1:
        parts = "; ".join(
            _describe(k, [f for f, kind, _ in resolved if kind == k]) for k in RELEASES
        )
        raise CamusFormatError(
            f"{root}: holds both CAMUS releases ({parts}). Pick one: "
            "tfds.builder('camus', release='nifti') or release='original' "
            "(command line: runet prepare --release nifti|original), or move the other away."
        )
    kind = release or next(iter(found))
    if kind not in found:
        raise CamusFormatError(
            f"{root}: release={kind!r} asked for, but only {_RELEASE_NAMES[next(iter(found))]} "
            "is there"
        )
    patients: dict[tuple[str, str], Patient] = {}
    problems: list[Problem] = []
    for folder, k, ids in resolved:
        if k != kind:
            continue
        subset = _subset_of(folder, scan.roots, kind)
        ids = ids or [folder.name]
        if len(ids) > 1:
            problems += [
                Problem(
                    Patient(kind, subset, pid, folder).key,
                    folder,
                    f"holds the files of {len(ids)} patients ({', '.join(ids)}); their "
                    "Info_*.cfg cannot be told apart: give each patient its own folder",
                )
                for pid in ids
            ]
        for pid in ids:
            patient = Patient(kind, subset, pid, folder)
            seen = patients.get((subset, pid))
            if seen is None:
                patients[(subset, pid)] = patient
            elif seen.path != folder:
                problems.append(
                    Problem(
                        patient.key,
                        folder,
                        f"{patient.key} is found twice: here and in {seen.path}; keep one",
                    )
                )
    split_dir = None
    if kind == NIFTI:
        split_dirs = scan.split_dirs or [  # database_nifti/ given: its split is beside it
            r.parent / DATABASE_SPLIT for r in scan.roots if (r.parent / DATABASE_SPLIT).is_dir()
        ]
        split_dir = _pick_split_dir(split_dirs)
    order = {s: i for i, s in enumerate(SUBSETS)}
    ordered = sorted(patients.values(), key=lambda p: (order[p.subset], p.patient_id))
    return Layout(kind, root, tuple(ordered), split_dir, tuple(problems))


def detect_layout(
    path: str | os.PathLike | Sequence[str | os.PathLike] | Layout,
    *,
    release: str | None = None,
) -> Layout:
    """Finds which CAMUS release a folder holds, and where its patients are.

    Args:
        path: a folder (or several) holding either release at any depth down to
            :data:`MAX_DEPTH`: the manual dir, ``CAMUS_public/``, ``database_nifti/``,
            ``training/``, ... A :class:`Layout` is returned unchanged.
        release: pick ``"original"`` or ``"nifti"`` when both are there.

    Raises:
        CamusFormatError: if a folder does not exist, holds no release, holds both (and
            ``release`` is None), or holds only archives (the TFDS builder extracts those).
    """
    if isinstance(path, Layout):
        return path
    scan = scan_folders(path)
    if not scan.patient_dirs and scan.archives:
        names = ", ".join(a.name for a in scan.archives[:5])
        raise CamusFormatError(
            f"{scan.roots[0]}: holds only archives ({names}); prepare it with the TFDS "
            "builder (runet prepare), which extracts them, or extract them first"
        )
    return layout_from_scan(scan, release=release)


def patient_index(manual_dir: str | os.PathLike | Layout) -> dict[str, tuple[str, Path]]:
    """Maps every patient key of a download to ``(subset, patient folder)``."""
    return {p.key: (p.subset, p.path) for p in detect_layout(manual_dir).patients}


def has_any_gt(patient_dir: Path) -> bool:
    try:
        return any("_gt." in p.name for p in patient_dir.iterdir())
    except OSError:
        return False


def list_patients(
    manual_dir: str | os.PathLike | Layout, *, labeled_only: bool = False
) -> list[str]:
    """Returns the patient keys (``"patient0001"``, ``"testing/patient0001"``) of a download.

    Args:
        manual_dir: a folder or :class:`Layout` (see :func:`detect_layout`).
        labeled_only: keep only patients with at least one ground-truth mask file.
    """
    return [
        p.key for p in detect_layout(manual_dir).patients if not labeled_only or has_any_gt(p.path)
    ]
