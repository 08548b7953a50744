"""The ``camus`` TFDS builder: CAMUS 2D echocardiography (either public release).

Usage::

    import tensorflow_datasets as tfds
    import tfds_camus  # registers "camus"

    builder = tfds.builder("camus")  # config "256"; also "native", "half_sequence_256"
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir="/data/camus"))
    splits = tfds_camus.fold_splits(1)
    train = builder.as_dataset(split=splits["train"])

Splits are patient-level and named: ``group1`` .. ``group10`` (the test groups of the
CAMUS paper's 10 folds; ``tfds_camus.fold_splits(k)`` combines them into fold ``k``); with
the 2023 release's ``database_split/``, ``train`` / ``validation`` / ``test`` (the same
examples again, as the release splits them); with an original-release copy whose
``testing/`` has masks, ``challenge_testing`` (those 50 people are not the fold patients of
the same ids, and are never put in the folds).

The manual dir may hold the zip files as downloaded (``CAMUS_public.zip``,
``database_nifti.zip``, ``patientXXXX.zip``, ``training.zip`` / ``testing.zip``): they are
extracted with ``dl_manager.extract``. Before anything is written, every patient is checked
(:mod:`tfds_camus.checks`) and all problems are reported in one error;
``skip_invalid_patients=True`` builds without those patients, and lists them in
``builder.info.metadata["skipped_patients"]``.

This module must not use ``os`` or ``open`` (TFDS's test case forbids them here): files are
read by :mod:`tfds_camus.reader`.
"""

from __future__ import annotations

import dataclasses
import logging
import math

import numpy as np
import tensorflow_datasets as tfds
from skimage.transform import resize

from tfds_camus import archives, checks, folds, reader, vocabulary
from tfds_camus.errors import CamusFormatError, InvalidPatientsError, Problem
from tfds_camus.vocabulary import (
    CHALLENGE_TESTING_SPLIT,
    FRAME_INSTANTS,
    NIFTI,
    ORIGINAL,
    SPLIT_LISTS,
    TESTING,
    UNKNOWN,
)

logger = logging.getLogger(__name__)

# The ClassLabel names of the features (the vocabulary's, and "Unknown" where a cfg may lack
# the value).
VIEWS = list(vocabulary.VIEWS)
INSTANTS = list(FRAME_INSTANTS)
QUALITIES = [*vocabulary.QUALITIES, UNKNOWN]
SEXES = [*vocabulary.SEXES, UNKNOWN]

# README.md beside this file is the dataset's description (TFDS reads it and prefers it);
# this short text is the fallback.
_DESCRIPTION = """
CAMUS (Cardiac Acquisitions for Multi-structure Ultrasound Segmentation): 2D apical
two-chamber (2CH) and four-chamber (4CH) echocardiograms of 500 patients, with expert masks of
the left-ventricle cavity (1), myocardium (2) and left atrium (3) at end diastole (ED) and end
systole (ES); the 2023 release also annotates every frame from ED to ES.
"""

_CITATION = """
@article{leclerc2019camus,
  title={Deep Learning for Segmentation Using an Open Large-Scale Dataset in 2D Echocardiography},
  author={Leclerc, Sarah and Smistad, Erik and Pedrosa, Jo{\\~a}o and {\\O}stvik, Andreas and
          Cervenansky, Frederic and Espinosa, Florian and Espeland, Torvald and Berg, Erik Andreas
          Rye and Jodoin, Pierre-Marc and Grenier, Thomas and Lartizien, Carole and D'hooge, Jan
          and Lovstakken, Lasse and Bernard, Olivier},
  journal={IEEE Transactions on Medical Imaging},
  volume={38}, number={9}, pages={2198--2210}, year={2019},
  doi={10.1109/TMI.2019.2900516}
}
"""

MANUAL_DOWNLOAD_INSTRUCTIONS = """
CAMUS cannot be downloaded automatically: its images are given only to registered users.

1. Register and accept the terms of use on the CREATIS CAMUS site
   (https://www.creatis.insa-lyon.fr/Challenge/camus/ ; the 2023 release is on the
   CREATIS Humanheart data portal, https://humanheart-project.creatis.insa-lyon.fr/).
2. Put the zip file(s) as downloaded into the manual dir (default
   ~/tensorflow_datasets/downloads/manual/, or DownloadConfig(manual_dir=...)); no need to
   extract them:

   2023 release (NIfTI, 500 patients with masks; needed for config half_sequence_256):
       CAMUS_public.zip, or database_nifti.zip (+ database_split.zip or folder),
       or the per-patient patient0001.zip ... patient0500.zip (+ database_split)
   original challenge release (MetaImage .mhd + .raw):
       training.zip (450 patients with masks) and, optionally, testing.zip (50 OTHER
       patients under the same ids patient0001..0050; used only when they have masks, as
       the split challenge_testing, never in the folds)

   Extracted folders work too, at any depth (CAMUS_public/database_nifti/patient0001/...,
   training/patient0001/...). Keep one release per manual dir, or pick one with
   tfds.builder("camus", release="nifti") (or "original"; runet prepare --release).

Without access to CAMUS, write a synthetic CAMUS in the same layout and use it instead:
    camus-synth /tmp/camus_synth -n 500        (or tfds_camus.phantom.write_synthetic_camus)
"""


@dataclasses.dataclass(eq=False)
class CamusConfig(tfds.core.BuilderConfig):
    """A ``camus`` configuration.

    Attributes:
        image_size: ``(rows, cols)`` of ``image`` and ``mask``; None keeps the native size.
        half_sequence: yield every annotated frame of the 2023 release's half sequences
            (ED to ES) instead of the ED and ES images.
    """

    image_size: tuple[int, int] | None = (256, 256)
    half_sequence: bool = False


def _resize_image(image: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    """Linear interpolation (scikit-image), rounded back to uint8."""
    if size is None or image.shape == tuple(size):
        return image
    out = resize(image, size, order=1, mode="edge", anti_aliasing=False, preserve_range=True)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _resize_mask(mask: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    """Nearest-neighbour interpolation: labels stay labels."""
    if size is None or mask.shape == tuple(size):
        return mask
    out = resize(mask, size, order=0, mode="edge", anti_aliasing=False, preserve_range=True)
    return out.astype(np.uint8)


def _number(info: dict, *keys: str) -> float:
    """The first finite numeric value among ``keys`` of a cfg, else NaN."""
    for key in keys:
        value = info.get(key)
        if isinstance(value, (int, float)) and math.isfinite(value):
            return float(value)
    return math.nan


def _choice(value, names: list[str]) -> str:
    if isinstance(value, str):
        for name in names:
            if value.strip().lower() == name.lower():
                return name
    return UNKNOWN


def clinical_features(info: dict, num_frames: int | None = None) -> dict:
    """The per-view cfg values stored with every example (NaN / Unknown when absent).

    ``nb_frames`` is the sequence file's frame count when known (``num_frames``), else the
    cfg's NbFrame, else -1.
    """
    nb = num_frames if num_frames is not None and num_frames > 0 else info.get("NbFrame")
    return {
        "image_quality": _choice(info.get("ImageQuality"), vocabulary.QUALITIES),
        "ef": np.float32(_number(info, "LVef", "EF")),
        "edv": np.float32(_number(info, "LVedv", "EDV")),
        "esv": np.float32(_number(info, "LVesv", "ESV")),
        "age": np.float32(_number(info, "Age")),
        "sex": _choice(info.get("Sex"), vocabulary.SEXES),
        "nb_frames": np.int32(nb if isinstance(nb, int) else -1),
    }


class Builder(tfds.core.GeneratorBasedBuilder):
    """DatasetBuilder for CAMUS (manual download; either public release, zipped or not).

    Args (besides TFDS's own):
        skip_invalid_patients: build without the patients that have problems (missing,
            truncated or inconsistent files), instead of failing before writing anything;
            they are listed, with the reasons, in ``info.metadata["skipped_patients"]``.
        release: ``"nifti"`` or ``"original"``: which release to use when the manual dir
            holds both (an error otherwise).
        skip_incomplete_patients: the former name of ``skip_invalid_patients``.
    """

    VERSION = tfds.core.Version("2.0.0")
    RELEASE_NOTES = {
        "1.0.0": "Initial release: both CAMUS releases, the paper's 10 folds.",
        "2.0.0": "Original release: testing/ patients keyed apart from training/ (split "
        "challenge_testing when they have masks, never in the folds). Views stored ES -> ED "
        "put back in ED -> ES order (feature es_to_ed). The 2023 database_split as "
        "train / validation / test. Zip files read as downloaded. Every patient checked "
        "before writing; skipped patients and the source kept in info.metadata.",
    }
    MANUAL_DOWNLOAD_INSTRUCTIONS = MANUAL_DOWNLOAD_INSTRUCTIONS
    BUILDER_CONFIGS = [
        CamusConfig(
            name="256",
            description="ED and ES images of both views, resized to 256 x 256 (image: "
            "linear, mask: nearest neighbour); native_mask keeps the native-grid mask.",
            image_size=(256, 256),
        ),
        CamusConfig(
            name="native",
            description="ED and ES images of both views at their native size (about 780 x 550).",
            image_size=None,
        ),
        CamusConfig(
            name="half_sequence_256",
            description="Every annotated frame of the 2023 release's half sequences (ED to "
            "ES, about 20k frames), resized to 256 x 256; needs the 2023 (NIfTI) release.",
            image_size=(256, 256),
            half_sequence=True,
        ),
    ]
    DEFAULT_CONFIG_NAME = "256"

    def __init__(
        self,
        *,
        skip_invalid_patients: bool = False,
        release: str | None = None,
        skip_incomplete_patients: bool | None = None,
        **kwargs,
    ):
        if skip_incomplete_patients is not None:
            skip_invalid_patients = skip_invalid_patients or bool(skip_incomplete_patients)
        if release is not None and release not in vocabulary.RELEASES:
            raise ValueError(
                f"release must be one of {vocabulary.RELEASES} or None, got {release!r}"
            )
        self._skip_invalid_patients = bool(skip_invalid_patients)
        self._release = release
        super().__init__(**kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        size = self.builder_config.image_size
        shape = (*size, 1) if size else (None, None, 1)
        return self.dataset_info_from_configs(
            description=_DESCRIPTION,
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=shape, dtype=np.uint8),
                    "mask": tfds.features.Image(shape=shape, dtype=np.uint8),
                    "native_mask": tfds.features.Image(shape=(None, None, 1), dtype=np.uint8),
                    "patient_id": tfds.features.Text(),
                    "view": tfds.features.ClassLabel(names=VIEWS),
                    "instant": tfds.features.ClassLabel(names=INSTANTS),
                    "frame_index": tfds.features.Tensor(shape=(), dtype=np.int32),
                    "es_to_ed": tfds.features.Tensor(shape=(), dtype=np.bool_),
                    "image_quality": tfds.features.ClassLabel(names=QUALITIES),
                    "ef": tfds.features.Tensor(shape=(), dtype=np.float32),
                    "edv": tfds.features.Tensor(shape=(), dtype=np.float32),
                    "esv": tfds.features.Tensor(shape=(), dtype=np.float32),
                    "age": tfds.features.Tensor(shape=(), dtype=np.float32),
                    "sex": tfds.features.ClassLabel(names=SEXES),
                    "nb_frames": tfds.features.Tensor(shape=(), dtype=np.int32),
                    "spacing": tfds.features.Tensor(shape=(2,), dtype=np.float32),
                    "native_shape": tfds.features.Tensor(shape=(2,), dtype=np.int32),
                }
            ),
            supervised_keys=("image", "mask"),
            homepage="https://www.creatis.insa-lyon.fr/Challenge/camus/",
            citation=_CITATION,
            metadata=tfds.core.MetadataDict(),
        )

    # --- splits ---------------------------------------------------------------------------

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        manual_dir = dl_manager.manual_dir  # fails with the instructions if missing or empty
        try:
            layout, source = archives.locate_release(
                manual_dir, archives.tfds_extractor(dl_manager), release=self._release
            )
        except CamusFormatError as e:
            raise CamusFormatError(
                f"{e}\n\nManual download instructions:{MANUAL_DOWNLOAD_INSTRUCTIONS}"
            ) from e
        plan = plan_splits(
            layout,
            half_sequence=self.builder_config.half_sequence,
            skip_invalid_patients=self._skip_invalid_patients,
        )
        metadata = self.info.metadata
        metadata.update(plan.metadata())
        metadata["source"] = source
        self._layout = layout
        return {
            name: self._generate_examples(layout, patients, name)
            for name, patients in plan.splits.items()
        }

    # --- examples -------------------------------------------------------------------------

    def _generate_examples(self, layout: reader.Layout, patients: list, split: str):
        """Yields a patient's examples only once all of them were read: a patient whose
        pixels turn out to be bad is skipped whole (``skip_invalid_patients``) or stops the
        preparation with the file's name, never half-written."""
        size = self.builder_config.image_size
        for patient in patients:
            try:
                examples = list(self._patient_examples(layout, patient, size))
            except CamusFormatError as err:
                problem = checks.problem_from(patient.key, patient.path, err)
                if not self._skip_invalid_patients:
                    raise InvalidPatientsError([problem], hint=SKIP_HINT) from err
                _record_skipped(self.info.metadata, split, problem)
                logger.warning("skipping %s: %s", patient.key, problem)
                continue
            yield from examples

    def _patient_examples(self, layout, patient, size):
        for view in VIEWS:
            if self.builder_config.half_sequence:
                yield from _half_sequence_examples(layout, patient, view, size)
                continue
            instants = reader.load_view(layout, patient, view, warnings=[])  # reported before
            for instant, d in instants.items():
                yield (
                    f"{patient.key}_{view}_{instant}",
                    _example(d, d["image"], d["gt"], patient.key, view, instant, size),
                )


SKIP_HINT = (
    "Fix these files, or build without these patients: "
    'tfds.builder("camus", skip_invalid_patients=True) '
    "(command line: runet prepare --skip-invalid); the skipped patients are then listed in "
    'builder.info.metadata["skipped_patients"].'
)


def _half_sequence_examples(layout, patient, view, size):
    d = reader.load_half_sequence(layout, patient, view, warnings=[])  # reported before
    n = d["images"].shape[0]
    for index in range(n):
        d_frame = dict(d, frame_index=int(d["frame_index"][index]), num_frames=n)
        yield (
            f"{patient.key}_{view}_{index:03d}",
            _example(
                d_frame,
                d["images"][index],
                d["gt"][index],
                patient.key,
                view,
                d["instants"][index],
                size,
            ),
        )


def _example(d, image, gt, key, view, instant, size) -> dict:
    return {
        "image": _resize_image(image, size)[..., None],
        "mask": _resize_mask(gt, size)[..., None],
        "native_mask": gt[..., None],
        "patient_id": key,
        "view": view,
        "instant": instant,
        "frame_index": np.int32(d["frame_index"]),
        "es_to_ed": bool(d["es_to_ed"]),
        "spacing": np.asarray(d["spacing"], np.float32),
        "native_shape": np.asarray(gt.shape, np.int32),
        **clinical_features(d["info"], d.get("num_frames")),
    }


def _record_skipped(metadata, split: str, problem: Problem) -> None:
    skipped = metadata.setdefault("skipped_patients", [])
    if not any(s["patient"] == problem.patient for s in skipped):
        skipped.append({"patient": problem.patient, "problems": [str(problem)]})
    counts = metadata.get("patients_per_split", {})
    if split in counts:
        counts[split] -= 1


@dataclasses.dataclass
class SplitPlan:
    """Which patients go to which split, and what was left out and why."""

    release: str
    splits: dict[str, list]
    report: checks.Report
    outside_folds: list[str]

    def metadata(self) -> dict:
        skipped: dict[str, list[str]] = {}
        for p in self.report.problems:
            skipped.setdefault(p.patient, []).append(str(p))
        return {
            "release": self.release,
            "patients_per_split": {name: len(ps) for name, ps in self.splits.items()},
            "skipped_patients": [{"patient": k, "problems": v} for k, v in skipped.items()],
            "unlabelled_testing_patients": [p.key for p in self.report.unlabelled],
            "es_to_ed_views": list(self.report.es_to_ed),
            "warnings": list(self.report.warnings),
            "outside_folds": list(self.outside_folds),
        }


def plan_splits(
    layout: reader.Layout,
    *,
    half_sequence: bool = False,
    skip_invalid_patients: bool = False,
) -> SplitPlan:
    """Checks every patient (:func:`tfds_camus.checks.check_patients`), then decides which
    patients go to which named split.

    ``group{k}`` holds the patients of the paper's test group ``k`` that are present and valid
    (never the original release's testing/ patients: other people under the same ids);
    ``challenge_testing`` the original release's testing/ patients that have masks;
    ``train`` / ``validation`` / ``test`` the 2023 release's ``database_split`` lists. A split
    with no patient is left out (TFDS cannot write an empty split).

    Raises:
        InvalidPatientsError: listing every problem of every patient, unless
            ``skip_invalid_patients``.
        CamusFormatError: if the config needs the 2023 release and this is the original one,
            or no patient is usable.
    """
    if half_sequence and layout.kind != NIFTI:
        raise CamusFormatError(
            f"{layout.root}: config half_sequence_256 needs the 2023 (NIfTI) release, whose "
            "half sequences are annotated; this is the original release."
        )
    report = checks.check_patients(layout, half_sequence=half_sequence)
    if report.unlabelled:
        logger.info(
            "%d patients of testing/ have no ground truth (original release, challenge test "
            "set): skipped",
            len(report.unlabelled),
        )
    if report.problems and not skip_invalid_patients:
        raise InvalidPatientsError(report.problems, hint=SKIP_HINT)
    if report.problems:
        logger.warning(
            "skipping %d invalid patient(s): %s",
            len(report.invalid),
            "; ".join(str(p) for p in report.problems),
        )
    if report.warnings:
        logger.warning(
            "%d warning(s) about the download: %s",
            len(report.warnings),
            "; ".join(report.warnings[:5]) + ("; ..." if len(report.warnings) > 5 else ""),
        )
    if report.es_to_ed:
        logger.info(
            "%d view(s) stored ES -> ED, put back in ED -> ES order: %s",
            len(report.es_to_ed),
            ", ".join(report.es_to_ed[:10]) + (", ..." if len(report.es_to_ed) > 10 else ""),
        )
    if not report.usable:
        raise CamusFormatError(
            f"{layout.root}: no usable patient (with images, masks and Info_*.cfg) found"
        )
    fold_patients = {p.patient_id: p for p in report.usable if p.subset != TESTING}
    splits: dict[str, list] = {}
    absent = []
    for k in range(1, folds.NUM_FOLDS + 1):
        group = folds.group_patients(k)
        members = [fold_patients[pid] for pid in group if pid in fold_patients]
        if len(members) < len(group):
            absent.append(
                f"group{k}: {len(group) - len(members)} of its {len(group)} patients"
                + ("" if members else " (split left out)")
            )
        if members:
            splits[folds.group_split_name(k)] = members
    if absent:
        logger.warning(
            "fold patients absent from %s (or skipped), left out: %s",
            layout.root,
            "; ".join(absent),
        )
    outside = [pid for pid in fold_patients if folds.group_of(pid) is None]
    if outside:
        logger.warning("%d patients are in no fold (e.g. %s)", len(outside), outside[0])
    testing = [p for p in report.usable if p.subset == TESTING]
    if testing and layout.kind == ORIGINAL:
        splits[CHALLENGE_TESTING_SPLIT] = testing
    for list_name, ids in reader.read_split_lists(layout).items():
        members = [fold_patients[pid] for pid in ids if pid in fold_patients]
        if len(members) < len(ids):
            logger.warning(
                "%s: %d of its %d patients are absent or skipped",
                list_name,
                len(ids) - len(members),
                len(ids),
            )
        if members:
            splits[SPLIT_LISTS[list_name]] = members
    return SplitPlan(layout.kind, splits, report, outside)
