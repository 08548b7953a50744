"""A synthetic CAMUS packed and arranged the ways users receive and unpack the real one.

:func:`as_downloaded` turns a tree written by :func:`~tfds_camus.phantom.write_synthetic_camus`
into a manual dir in one of :data:`FORMS`:

========================  =====================================================================
``camus_public_zip``      ``CAMUS_public.zip`` (2023 release, top folder ``CAMUS_public/``)
``database_nifti_zip``    ``database_nifti.zip`` (the data portal's folder download) with
                          ``database_split/`` as a folder (``split="folder"``), as
                          ``database_split.zip`` (``"zip"``) or absent (``None``)
``per_patient_zips``      ``patientXXXX.zip`` each (a ``patientXXXX/`` folder inside, or the
                          files at the top with ``flat=True``) + ``database_split``
``original_zips``         ``training.zip`` and ``testing.zip`` (original release)
``doubled_top``           extracted into a folder of the same name: ``CAMUS_public/CAMUS_public/``
``split_beside``          ``database_split/`` inside ``database_nifti/``, beside the patients
``inner_folder``          only the folder of patient folders (``database_nifti/`` or
                          ``training/``) is given
========================  =====================================================================

``macos=True`` adds what a Mac leaves: ``__MACOSX/`` entries with ``._`` files in zips, and
``.DS_Store`` files in folders.
"""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

from tfds_camus import atomic
from tfds_camus.vocabulary import CAMUS_PUBLIC, DATABASE_NIFTI, DATABASE_SPLIT, TESTING, TRAINING

FORMS = (
    "camus_public_zip",
    "database_nifti_zip",
    "per_patient_zips",
    "original_zips",
    "doubled_top",
    "split_beside",
    "inner_folder",
)


def zip_folder(
    folder: Path, zip_path: Path, *, arc_root: str | None = None, macos: bool = False
) -> Path:
    """Zips ``folder`` as ``arc_root/...`` (default: the folder's name; ``""``: no top folder).

    ``macos`` adds ``.DS_Store`` entries and an ``__MACOSX/`` tree of ``._`` files, as the
    Finder's "Compress" does.
    """
    folder, zip_path = Path(folder), Path(zip_path)
    root = folder.name if arc_root is None else arc_root
    with (
        atomic.atomic_path(zip_path) as tmp,
        zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z,
    ):
        for path in sorted(folder.rglob("*")):
            rel = path.relative_to(folder).as_posix()
            name = f"{root}/{rel}" if root else rel
            if path.is_dir():
                z.writestr(name + "/", b"")
                if macos:
                    z.writestr(f"{name}/.DS_Store", b"\0\0\0\1Bud1" + bytes(16))
                continue
            z.write(path, name)
            if macos:
                parent, _, base = name.rpartition("/")
                apple = f"__MACOSX/{parent}/._{base}" if parent else f"__MACOSX/._{base}"
                z.writestr(apple, b"\0\5\26\7\0\2\0\0Mac OS X        ")
    return zip_path


def add_macos_debris(folder: Path) -> None:
    """``.DS_Store`` in every folder and a ``__MACOSX/`` folder, as an unzipped Mac zip has."""
    folder = Path(folder)
    for d in [folder, *(p for p in folder.rglob("*") if p.is_dir())]:
        (d / ".DS_Store").write_bytes(b"\0\0\0\1Bud1" + bytes(16))
    debris = folder / "__MACOSX"
    debris.mkdir(exist_ok=True)
    (debris / "._CAMUS_public").write_bytes(b"\0\5\26\7")


def _split_dir_of(tree: Path) -> Path:
    return tree / CAMUS_PUBLIC / DATABASE_SPLIT


def as_downloaded(
    tree: str | Path,
    out_dir: str | Path,
    form: str,
    *,
    macos: bool = False,
    split: str | None = "folder",
    flat: bool = False,
) -> Path:
    """Writes ``tree`` (a synthetic CAMUS) into ``out_dir`` in a downloaded ``form``.

    Args:
        tree: the folder :func:`write_synthetic_camus` returned.
        out_dir: the manual dir to make (created).
        form: one of :data:`FORMS`.
        macos: add the debris a Mac leaves.
        split: ``database_nifti_zip`` and ``per_patient_zips``: ``database_split`` as a
            ``"folder"``, a ``"zip"``, or not at all (None).
        flat: ``per_patient_zips``: files at the top of each zip, no patient folder.

    Returns:
        ``out_dir``.
    """
    tree, out = Path(tree), Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    nifti = tree / CAMUS_PUBLIC / DATABASE_NIFTI
    if form == "camus_public_zip":
        zip_folder(tree / CAMUS_PUBLIC, out / f"{CAMUS_PUBLIC}.zip", macos=macos)
    elif form in ("database_nifti_zip", "per_patient_zips"):
        if form == "database_nifti_zip":
            zip_folder(nifti, out / f"{DATABASE_NIFTI}.zip", macos=macos)
        else:
            for patient in sorted(p for p in nifti.iterdir() if p.is_dir()):
                zip_folder(
                    patient, out / f"{patient.name}.zip", arc_root="" if flat else None, macos=macos
                )
        if split == "folder":
            shutil.copytree(_split_dir_of(tree), out / DATABASE_SPLIT)
        elif split == "zip":
            zip_folder(_split_dir_of(tree), out / f"{DATABASE_SPLIT}.zip", macos=macos)
        elif split is not None:
            raise ValueError(f"split must be 'folder', 'zip' or None, got {split!r}")
    elif form == "original_zips":
        for subset in (TRAINING, TESTING):
            if (tree / subset).is_dir():
                zip_folder(tree / subset, out / f"{subset}.zip", macos=macos)
    elif form == "doubled_top":
        shutil.copytree(tree / CAMUS_PUBLIC, out / CAMUS_PUBLIC / CAMUS_PUBLIC)
    elif form == "split_beside":
        shutil.copytree(nifti, out / DATABASE_NIFTI)
        shutil.copytree(_split_dir_of(tree), out / DATABASE_NIFTI / DATABASE_SPLIT)
    elif form == "inner_folder":
        inner = nifti if nifti.is_dir() else tree / TRAINING
        shutil.copytree(inner, out / inner.name)
        return out / inner.name
    else:
        raise ValueError(f"form must be one of {FORMS}, got {form!r}")
    if macos and not form.endswith("zip") and not form.endswith("zips"):
        add_macos_debris(out)
    return out
