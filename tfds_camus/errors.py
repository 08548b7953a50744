"""Errors about a CAMUS download, each naming the file at fault."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path


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
class Problem:
    """One thing wrong with one patient: which file, and what.

    Attributes:
        patient: the patient's key (``"patient0001"``, or ``"testing/patient0001"`` for the
            original release's testing/ folder).
        path: the file (or folder) at fault.
        message: what is wrong with it.
    """

    patient: str
    path: Path
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"

    def as_dict(self) -> dict:
        return {"patient": self.patient, "path": str(self.path), "problem": self.message}


class InvalidPatientsError(CamusFormatError):
    """Some patients of a download cannot be used; ``problems`` lists every one of them."""

    def __init__(self, problems: Sequence[Problem], hint: str = ""):
        self.problems = list(problems)
        patients = sorted({p.patient for p in self.problems})
        lines = [
            f"{len(patients)} patient(s) cannot be used ({', '.join(patients[:10])}"
            f"{', ...' if len(patients) > 10 else ''}); {len(self.problems)} problem(s):"
        ]
        lines += [f"  {p}" for p in self.problems]
        if hint:
            lines.append(hint)
        super().__init__("\n".join(lines))
