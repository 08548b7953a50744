"""Checks every patient a preparation needs, before anything is written, and says all at once.

:func:`check_patients` looks at what is cheap to look at (file presence, ``Info_*.cfg``,
image headers, data sizes, the gzip trailer of ``.nii.gz`` files) for every patient and view,
and returns every problem found, each naming its file, instead of stopping at the first. The
pixels themselves are read, and checked again, while the dataset is written.

Example:
    >>> from tfds_camus import checks, layout
    >>> report = checks.check_patients(layout.detect_layout("/data/camus"))  # doctest: +SKIP
    >>> [str(p) for p in report.problems]  # doctest: +SKIP
    ['/data/camus/training/patient0007/patient0007_2CH_ES.raw: truncated: 210 of 428142 bytes']
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from tfds_camus import reader
from tfds_camus.errors import CamusFormatError, Problem
from tfds_camus.layout import Layout, Patient
from tfds_camus.vocabulary import INSTANTS, ORIGINAL, TESTING, VIEWS


@dataclasses.dataclass
class Report:
    """What :func:`check_patients` found.

    Attributes:
        usable: patients with every file the config needs, all of them readable.
        unlabelled: the original release's testing/ patients without any mask (expected:
            the challenge copy has none); not problems.
        problems: every problem, each naming its file (a patient may have several).
        warnings: odd but usable (NbFrame disagreeing with the sequence file, ED = ES).
        es_to_ed: ``"patient0001 4CH"`` for each view stored ES -> ED (reordered on reading).
    """

    usable: list[Patient] = dataclasses.field(default_factory=list)
    unlabelled: list[Patient] = dataclasses.field(default_factory=list)
    problems: list[Problem] = dataclasses.field(default_factory=list)
    warnings: list[str] = dataclasses.field(default_factory=list)
    es_to_ed: list[str] = dataclasses.field(default_factory=list)

    @property
    def invalid(self) -> list[str]:
        """Keys of the patients with at least one problem, sorted."""
        return sorted({p.patient for p in self.problems})


def problem_from(patient: str, path: Path, err: Exception) -> Problem:
    """A :class:`Problem` from a reader error (whose message starts with the file's path)."""
    message = str(err).strip()
    for prefix in (str(path), path.name):
        if message.startswith(prefix + ": "):
            path = Path(prefix) if prefix == str(path) else path
            message = message[len(prefix) + 2 :]
            break
    else:
        head, sep, rest = message.partition(": ")
        if sep and ("/" in head or "\\" in head):
            path, message = Path(head), rest
    return Problem(patient, Path(path), message)


def _is_unlabelled_testing(layout: Layout, patient: Patient) -> bool:
    return (
        layout.kind == ORIGINAL
        and patient.subset == TESTING
        and not reader.has_any_gt(patient.path)
    )


def _header(key: str, path: Path, ndim: int, problems: list[Problem]):
    try:
        header = reader.read_image_header(path)
    except CamusFormatError as err:
        problems.append(problem_from(key, path, err))
        return None
    shape = reader.squeeze_singleton(header.shape, ndim)
    if len(shape) != ndim or header.components != 1:
        what = f"{header.components} components per pixel" if header.components != 1 else ""
        problems.append(
            Problem(
                key,
                path,
                f"expected a {ndim}-D image of one value per pixel, got shape "
                f"{header.shape}{' and ' + what if what else ''}",
            )
        )
        return None
    return shape, header.spacing


def _check_view(
    layout: Layout, patient: Patient, view: str, half_sequence: bool, report: Report
) -> list[Problem]:
    key = patient.key
    files = reader.PatientFiles(patient.path, layout.kind, patient.patient_id, view, key)
    problems = [
        Problem(key, p, "missing")
        for p in reader.missing_files(files, gt=True, sequence=half_sequence)
    ]
    for instant in INSTANTS:
        image = None
        if files.image(instant).is_file():
            image = _header(key, files.image(instant), 2, problems)
        if files.gt(instant).is_file():
            mask = _header(key, files.gt(instant), 2, problems)
            if image and mask:
                try:
                    reader.check_same_grid(
                        image[0],
                        image[1],
                        mask[0],
                        mask[1],
                        files.gt(instant),
                        files.image(instant),
                    )
                except CamusFormatError as err:
                    problems.append(problem_from(key, files.gt(instant), err))
    num_frames = None
    if files.sequence.is_file():
        # Needed by the half-sequence config; otherwise only a check of ED / ES, so that a
        # broken sequence file is a warning, not a reason to lose the patient's ED / ES images.
        seq_problems = problems if half_sequence else []
        sequence = _header(key, files.sequence, 3, seq_problems)
        num_frames = sequence[0][0] if sequence else None
        if not half_sequence:
            report.warnings += [f"{p}; ED / ES not checked against it" for p in seq_problems]
        if half_sequence and sequence and files.sequence_gt and files.sequence_gt.is_file():
            seq_gt = _header(key, files.sequence_gt, 3, problems)
            if seq_gt:
                try:
                    reader.check_same_grid(
                        sequence[0], sequence[1], seq_gt[0], seq_gt[1],
                        files.sequence_gt, files.sequence,
                    )  # fmt: skip
                except CamusFormatError as err:
                    problems.append(problem_from(key, files.sequence_gt, err))
    if files.info.is_file():
        try:
            info = reader.read_info_cfg(files.info)
            order = reader.frame_order(info, files.info, num_frames, report.warnings)
            if half_sequence and (order.ed is None or order.es is None):
                problems.append(Problem(key, files.info, "ED and ES are needed, and missing"))
            if order.es_to_ed:
                report.es_to_ed.append(f"{key} {view}")
        except CamusFormatError as err:
            problems.append(problem_from(key, files.info, err))
    return problems


def check_patients(
    layout: Layout,
    patients: list[Patient] | None = None,
    *,
    half_sequence: bool = False,
) -> Report:
    """Checks the patients a preparation needs (cheap: headers, cfg, presence, sizes).

    Args:
        layout: the download (see :func:`tfds_camus.layout.detect_layout`).
        patients: which patients (default: all of the layout's).
        half_sequence: whether the 2023 half sequences and their masks are needed.

    Returns:
        A :class:`Report`; nothing is raised for a bad patient.
    """
    report = Report()
    by_patient: dict[str, list[Problem]] = {}
    for problem in layout.problems:
        by_patient.setdefault(problem.patient, []).append(problem)
    for patient in layout.patients if patients is None else patients:
        if _is_unlabelled_testing(layout, patient):
            report.unlabelled.append(patient)
            continue
        problems = list(by_patient.get(patient.key, []))
        for view in VIEWS:
            problems += _check_view(layout, patient, view, half_sequence, report)
        if problems:
            report.problems += problems
        else:
            report.usable.append(patient)
    return report
