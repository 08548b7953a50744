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
CAMUS paper's 10 folds; ``tfds_camus.fold_splits(k)`` combines them into fold ``k``), and,
when the 2023 release's ``database_split/`` is present, ``subgroup_training``,
``subgroup_validation`` and ``subgroup_testing`` (the same examples again, grouped as the
release groups them).

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

from tfds_camus import folds, reader

logger = logging.getLogger(__name__)

VIEWS = list(reader.VIEWS)
INSTANTS = ["ED", "ES", "other"]
QUALITIES = ["Good", "Medium", "Poor", "Unknown"]
SEXES = ["F", "M", "Unknown"]

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
2. Download either release and extract it into the manual dir
   (default ~/tensorflow_datasets/downloads/manual/, or DownloadConfig(manual_dir=...)):

   2023 release (NIfTI, 500 patients with masks; needed for config half_sequence_256):
       <manual_dir>/CAMUS_public/database_nifti/patient0001/patient0001_2CH_ED.nii.gz ...
       <manual_dir>/CAMUS_public/database_split/subgroup_training.txt ...
   original challenge release (MetaImage .mhd + .raw; testing/ has no masks and is skipped):
       <manual_dir>/training/patient0001/patient0001_2CH_ED.mhd (+ .raw) ...
       <manual_dir>/testing/...

   The inner folder (CAMUS_public/, database_nifti/ or training/) may also be given directly.
   Each patient folder holds patientXXXX_{2CH,4CH}_{ED,ES}[_gt] images and Info_{2CH,4CH}.cfg.

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
    return "Unknown"


def clinical_features(info: dict) -> dict:
    """The per-view cfg values stored with every example (NaN / Unknown when absent)."""
    nb = info.get("NbFrame")
    return {
        "image_quality": _choice(info.get("ImageQuality"), QUALITIES[:3]),
        "ef": np.float32(_number(info, "LVef", "EF")),
        "edv": np.float32(_number(info, "LVedv", "EDV")),
        "esv": np.float32(_number(info, "LVesv", "ESV")),
        "age": np.float32(_number(info, "Age")),
        "sex": _choice(info.get("Sex"), SEXES[:2]),
        "nb_frames": np.int32(nb if isinstance(nb, int) else -1),
    }


class Builder(tfds.core.GeneratorBasedBuilder):
    """DatasetBuilder for CAMUS (manual download; either public release).

    Args (besides TFDS's own):
        skip_incomplete_patients: skip (with a warning) patients that lack files the config
            needs, instead of failing. Patients of the original release's ``testing/``
            (no masks) are always skipped.
    """

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release: both CAMUS releases, the paper's 10 folds."}
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

    def __init__(self, *, skip_incomplete_patients: bool = False, **kwargs):
        self._skip_incomplete_patients = bool(skip_incomplete_patients)
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
        )

    # --- splits ---------------------------------------------------------------------------

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        manual_dir = dl_manager.manual_dir  # fails with the instructions if missing or empty
        try:
            layout = reader.detect_layout(str(manual_dir))
        except reader.CamusFormatError as e:
            raise reader.CamusFormatError(
                f"{e}\n\nManual download instructions:{MANUAL_DOWNLOAD_INSTRUCTIONS}"
            ) from e
        plan = plan_splits(
            layout,
            half_sequence=self.builder_config.half_sequence,
            skip_incomplete_patients=self._skip_incomplete_patients,
        )
        return {name: self._generate_examples(layout, pids) for name, pids in plan.items()}

    # --- examples -------------------------------------------------------------------------

    def _generate_examples(self, layout: reader.Layout, patient_ids: list[str]):
        size = self.builder_config.image_size
        for pid in patient_ids:
            for view in VIEWS:
                if self.builder_config.half_sequence:
                    yield from self._half_sequence_examples(layout, pid, view, size)
                    continue
                for instant in reader.INSTANTS:
                    d = reader.load_instant(layout, pid, view, instant)
                    yield (
                        f"{pid}_{view}_{instant}",
                        _example(
                            d["image"],
                            d["gt"],
                            d["spacing"],
                            d["info"],
                            pid,
                            view,
                            instant,
                            d["frame_index"],
                            size,
                        ),
                    )

    def _half_sequence_examples(self, layout, pid, view, size):
        d = reader.load_half_sequence(layout, pid, view)
        info = d["info"]
        ed, es = info.get("ED"), info.get("ES")
        for index in range(d["images"].shape[0]):
            instant = "ED" if index + 1 == ed else "ES" if index + 1 == es else "other"
            yield (
                f"{pid}_{view}_{index:03d}",
                _example(
                    d["images"][index],
                    d["gt"][index],
                    d["spacing"],
                    info,
                    pid,
                    view,
                    instant,
                    index,
                    size,
                ),
            )


def _example(image, gt, spacing, info, pid, view, instant, frame_index, size) -> dict:
    return {
        "image": _resize_image(image, size)[..., None],
        "mask": _resize_mask(gt, size)[..., None],
        "native_mask": gt[..., None],
        "patient_id": pid,
        "view": view,
        "instant": instant,
        "frame_index": np.int32(frame_index),
        "spacing": np.asarray(spacing, np.float32),
        "native_shape": np.asarray(gt.shape, np.int32),
        **clinical_features(info),
    }


def plan_splits(
    layout: reader.Layout,
    *,
    half_sequence: bool = False,
    skip_incomplete_patients: bool = False,
) -> dict[str, list[str]]:
    """Decides which patients go to which named split.

    ``group{k}`` holds the patients of the paper's test group ``k`` that are present and
    complete; ``subgroup_*`` the patients of the 2023 release's ``database_split`` lists.
    Absent patients are counted and reported with a warning; a split with no patient is
    left out (TFDS cannot write an empty split).

    Raises:
        MissingFilesError: if a patient lacks files the config needs (unless
            ``skip_incomplete_patients``), listing every incomplete patient.
        CamusFormatError: if the config needs the 2023 release and this is the original one,
            or no patient is usable.
    """
    if half_sequence and layout.kind != reader.NIFTI:
        raise reader.CamusFormatError(
            f"{layout.root}: config half_sequence_256 needs the 2023 (NIfTI) release, whose "
            "half sequences are annotated; this is the original release."
        )
    usable, incomplete, unlabeled = [], {}, []
    for pid, (subset, _) in reader.patient_index(layout).items():
        missing = []
        for view in VIEWS:
            files = reader.patient_files(layout, pid, view)
            missing += reader.missing_files(files, gt=True, sequence=half_sequence)
        if not missing:
            usable.append(pid)
        elif (
            layout.kind == reader.ORIGINAL
            and subset == "testing"
            and all("_gt" in p.name for p in missing)
        ):
            unlabeled.append(pid)  # expected: the challenge's test set has no masks
        else:
            incomplete[pid] = missing
    if unlabeled:
        logger.info(
            "%d patients of testing/ have no ground truth (original release): skipped",
            len(unlabeled),
        )
    if incomplete:
        details = "; ".join(
            f"{pid}: {', '.join(p.name for p in files)}" for pid, files in incomplete.items()
        )
        if not skip_incomplete_patients:
            first_pid, first_missing = next(iter(incomplete.items()))
            raise reader.MissingFilesError(
                first_missing[0].parent,
                first_missing,
                f"\n{len(incomplete)} incomplete patient(s) in all: {details}\n"
                "Add the files, or pass skip_incomplete_patients=True to skip these patients: "
                'tfds.builder("camus", skip_incomplete_patients=True)',
            )
        logger.warning("skipping %d incomplete patients: %s", len(incomplete), details)
    if not usable:
        raise reader.CamusFormatError(
            f"{layout.root}: no patient with images, masks and Info_*.cfg found"
        )
    present = set(usable)
    plan: dict[str, list[str]] = {}
    absent = []
    for k in range(1, folds.NUM_FOLDS + 1):
        group = folds.group_patients(k)
        members = [p for p in group if p in present]
        if len(members) < len(group):
            absent.append(
                f"group{k}: {len(group) - len(members)} of its {len(group)} patients"
                + ("" if members else " (split left out)")
            )
        if members:
            plan[folds.group_split_name(k)] = members
    if absent:
        logger.warning(
            "fold patients absent from %s (or skipped), left out: %s",
            layout.root,
            "; ".join(absent),
        )
    outside = [p for p in usable if folds.group_of(p) is None]
    if outside:
        logger.warning("%d patients are in no fold (e.g. %s)", len(outside), outside[0])
    for name, ids in reader.read_split_lists(layout).items():
        members = [p for p in ids if p in present]
        if len(members) < len(ids):
            logger.warning(
                "%s: %d of its %d patients are absent or skipped",
                name,
                len(ids) - len(members),
                len(ids),
            )
        if members:
            plan[name] = members
    return plan
