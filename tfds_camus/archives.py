"""CAMUS as downloaded: the zip files of either release, extracted by TFDS, found with the rest.

The forms a manual dir may hold (docs/camus.md, "What the real downloads look like"):
``CAMUS_public.zip`` (2023 release), ``database_nifti.zip`` (+ a ``database_split`` folder or
zip), per-patient ``patientXXXX.zip``, ``training.zip`` / ``testing.zip`` (original release),
or the folders they extract to, or a mix. :func:`locate_release` walks the manual dir,
extracts what is still zipped with TFDS's ``dl_manager.extract`` (into its
``downloads/extracted/``, reused on the next run unless the archive changed: size and
modification time are recorded beside each extraction), walks the extractions too, and returns
one :class:`~tfds_camus.layout.Layout`. An archive beside the folder it extracts to
(``CAMUS_public.zip`` next to ``CAMUS_public/``) is not extracted again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

from tfds_camus import atomic
from tfds_camus.layout import (
    Layout,
    Scan,
    archive_stem,
    is_ignored,
    layout_from_scan,
    scan_folders,
)

logger = logging.getLogger(__name__)

_SIDECAR = ".camus-source.json"
_NESTING = 2  # archives inside archives, at most this deep


def fingerprint(path: Path) -> dict:
    """Name, size and modification time of a file (cheap: one stat)."""
    st = path.stat()
    return {"name": path.name, "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _redundant(archive: Path) -> bool:
    """``X.zip`` beside a folder ``X/``: the user extracted it already."""
    folder = archive.parent / archive_stem(archive)
    return folder.is_dir()


def _sidecar(extracted: Path) -> Path:
    return extracted.with_name(extracted.name + _SIDECAR)


def _forget_stale(archive: Path, extract_dir: Path | None) -> None:
    """Removes the extraction of ``archive`` if the archive changed since it was made."""
    if extract_dir is None:
        return
    import tensorflow_datasets as tfds

    method = tfds.download.Resource(path=str(archive)).extract_method
    target = Path(extract_dir) / f"{method.name}.{archive.name}"
    if not target.exists():
        return
    sidecar = _sidecar(target)
    try:
        recorded = json.loads(sidecar.read_text())
    except (OSError, ValueError):
        recorded = None
    if recorded == fingerprint(archive):
        return
    logger.warning("%s changed since it was extracted to %s: extracting it again", archive, target)
    shutil.rmtree(target, ignore_errors=True)
    sidecar.unlink(missing_ok=True)


def tfds_extractor(dl_manager) -> Callable[[Sequence[Path]], list[Path]]:
    """``extract(archives) -> folders`` through a TFDS download manager."""
    extract_dir = getattr(dl_manager, "_extract_dir", None)  # TFDS's own cache folder

    def extract(archives: Sequence[Path]) -> list[Path]:
        for archive in archives:
            _forget_stale(archive, extract_dir)
        logger.info("extracting %d archive(s): %s", len(archives), _names(archives))
        done = dl_manager.extract({str(i): str(a) for i, a in enumerate(archives)})
        folders = [Path(str(done[str(i)])) for i in range(len(archives))]
        for archive, folder in zip(archives, folders, strict=True):
            atomic.write_json(_sidecar(folder), fingerprint(archive), indent=None)
        return folders

    extract.extract_dir = extract_dir
    return extract


def _names(paths: Sequence[Path], limit: int = 5) -> str:
    names = [p.name for p in paths]
    return ", ".join(names[:limit]) + (
        f" and {len(names) - limit} more" if len(names) > limit else ""
    )


def locate_release(
    manual_dir: Path,
    extract: Callable[[Sequence[Path]], list[Path]] | None = None,
    *,
    release: str | None = None,
) -> tuple[Layout, dict]:
    """The release in ``manual_dir``, extracting its archives with ``extract``.

    Args:
        manual_dir: the folder the user put the download in.
        extract: ``archives -> folders`` (see :func:`tfds_extractor`); None: archives are
            an error.
        release: ``"original"`` or ``"nifti"`` when both are there.

    Returns:
        ``(layout, source)``: ``source`` records what the dataset is built from (the manual
        dir, the archives used or passed over, the folders they were extracted to, and
        :func:`download_fingerprint`).
    """
    manual_dir = Path(manual_dir)
    extract_dir = getattr(extract, "extract_dir", None)
    scan = scan_folders(manual_dir, exclude=[extract_dir] if extract_dir else ())
    used, passed_over, extracted = [], [], []
    archives = scan.archives
    for _ in range(_NESTING):
        redundant = [a for a in archives if _redundant(a)]
        for a in redundant:
            logger.info("%s: not extracted, the folder %s/ beside it is used", a, archive_stem(a))
        passed_over += redundant
        todo = [a for a in archives if a not in redundant]
        if not todo:
            break
        if extract is None:
            raise ValueError(f"{manual_dir}: archives to extract ({_names(todo)})")
        folders = extract(todo)
        used += todo
        extracted += folders
        found = scan_folders(folders)
        scan.extend(Scan(roots=[], patient_dirs=found.patient_dirs, split_dirs=found.split_dirs))
        archives = found.archives
    layout = layout_from_scan(scan, release=release)
    source = {
        "manual_dir": str(manual_dir),
        "archives": [fingerprint(a) for a in used],
        "archives_passed_over": [a.name for a in passed_over],
        "extracted": [str(f) for f in extracted],
        "fingerprint": download_fingerprint(
            manual_dir, exclude=[extract_dir] if extract_dir else ()
        ),
    }
    return layout, source


def download_fingerprint(manual_dir: Path, *, exclude: Sequence[Path] = ()) -> str:
    """A cheap digest of what a manual dir holds: the names, sizes and modification times of
    its archives and of the files of its patient folders and split lists (one stat each; no
    archive is opened). It changes when a file is replaced, added or removed."""
    manual_dir = Path(manual_dir)
    scan = scan_folders(manual_dir, exclude=exclude)
    files = [a for a in scan.archives if not _redundant(a)]
    for folder, _, _ in scan.patient_dirs:
        files += [f for f in folder.iterdir() if f.is_file() and not is_ignored(f.name)]
    for folder in scan.split_dirs:
        files += sorted(folder.glob("subgroup_*.txt"))
    digest = hashlib.sha256()
    for f in sorted(files):
        st = f.stat()
        rel = f.relative_to(manual_dir).as_posix()
        digest.update(f"{rel}:{st.st_size}:{st.st_mtime_ns};".encode())
    return digest.hexdigest()[:16]


def source_layout(builder) -> Layout:
    """The layout of the download a prepared ``camus`` dataset was built from (its manual dir
    and the folders its archives were extracted to), e.g. to read a patient's native image
    with :func:`tfds_camus.reader.load_instant`.

    Raises:
        CamusFormatError: if the dataset's metadata does not say (prepared before 2.0.0), or
            the folders are gone.
    """
    from tfds_camus.errors import CamusFormatError

    source = dict(builder.info.metadata or {}).get("source")
    if not source:
        raise CamusFormatError(
            f"{builder.data_dir}: the dataset does not record its source (prepared by an older "
            "version); give the CAMUS folder instead"
        )
    roots = [Path(source["manual_dir"]), *(Path(p) for p in source.get("extracted", []))]
    scan = scan_folders(roots)
    return layout_from_scan(scan, release=builder.info.metadata.get("release"))
