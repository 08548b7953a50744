"""The words of CAMUS and of the paper, declared once for both packages.

Releases, subsets, views, instants, labels (with the short names of the logged metrics and
the names people read), the evaluated structures, image qualities, sexes and the paper's
model names. Every other module of ``tfds_camus`` and ``keras_runet`` (which may import
this package, never the reverse) takes these names from here; logged metric names and CSV
columns keep their spelling, derived from these tables.

>>> LABELS
('background', 'lv_cavity', 'myocardium', 'left_atrium')
>>> tuple(f"dice_{name}" for name in LABEL_METRIC_NAMES[1:])
('dice_lv_endo', 'dice_lv_myo', 'dice_la')
>>> STRUCTURES["LVepi"], [STRUCTURE_DISPLAY_NAMES[s] for s in STRUCTURES]
((1, 2), ['LV endocardium', 'LV epicardium', 'left atrium'])
>>> [MODEL_DISPLAY_NAMES[m] for m in MODELS]
['U-Net 1', 'SHG', 'RU-Net']
"""

from __future__ import annotations

import re
from typing import NamedTuple

# --- releases and their folders ---------------------------------------------------------------

ORIGINAL = "original"  # the 2019 challenge release: MetaImage, training/ and testing/
NIFTI = "nifti"  # the 2023 public release: NIfTI, CAMUS_public/database_nifti
RELEASES = (ORIGINAL, NIFTI)
LAYOUTS = RELEASES  # the name this package used before "release"

EXTENSIONS = {ORIGINAL: ".mhd", NIFTI: ".nii.gz"}

# Subsets: the folder a patient came from. The original release's testing/ holds OTHER people
# under the same ids as training/ (testing/patient0001 is not training/patient0001).
TRAINING = "training"
TESTING = "testing"
DATABASE_NIFTI = "database_nifti"
SUBSETS = (TRAINING, TESTING, DATABASE_NIFTI)
# The folders of the 2023 release: the patients and the split lists beside them.
CAMUS_PUBLIC = "CAMUS_public"
DATABASE_SPLIT = "database_split"

PATIENT_ID_RE = re.compile(r"^patient\d{4}$")

# The 2023 release's database_split/ lists, and the TFDS split each becomes.
SPLIT_LISTS = {
    "subgroup_training": "train",
    "subgroup_validation": "validation",
    "subgroup_testing": "test",
}
SPLIT_NAMES = tuple(SPLIT_LISTS)
# The original release's testing/ patients, when the copy has their masks.
CHALLENGE_TESTING_SPLIT = "challenge_testing"

# --- images --------------------------------------------------------------------------------

VIEW_2CH = "2CH"
VIEW_4CH = "4CH"
VIEWS = (VIEW_2CH, VIEW_4CH)

ED = "ED"  # end diastole
ES = "ES"  # end systole
INSTANTS = (ED, ES)
# Per-example instant of the half-sequence config: frames between ED and ES are "other".
OTHER_INSTANT = "other"
FRAME_INSTANTS = (ED, ES, OTHER_INSTANT)

QUALITIES = ("Good", "Medium", "Poor")
GOOD, MEDIUM, POOR = QUALITIES
SEXES = ("F", "M")
UNKNOWN = "Unknown"

# --- labels and structures ---------------------------------------------------------------


class Label(NamedTuple):
    """One value of a CAMUS label map."""

    value: int  # the pixel value
    name: str  # the dataset's and the exported model's name (TFDS ClassLabel, label_names)
    metric: str  # the short name in logged metric names (``dice_lv_endo``)
    display: str  # the name people read (figures, reports)


LABEL_TABLE = (
    Label(0, "background", "background", "background"),
    Label(1, "lv_cavity", "lv_endo", "LV cavity"),
    Label(2, "myocardium", "lv_myo", "myocardium"),
    Label(3, "left_atrium", "la", "left atrium"),
)
LABELS = tuple(label.name for label in LABEL_TABLE)  # 0, 1, 2, 3
LABEL_METRIC_NAMES = tuple(label.metric for label in LABEL_TABLE)
LABEL_DISPLAY_NAMES = tuple(label.display for label in LABEL_TABLE)
NUM_LABELS = len(LABEL_TABLE)
BACKGROUND = 0

# The structures CAMUS evaluates, each the union of some labels: the LV endocardium is the
# cavity, the LV epicardium the cavity and the myocardium (filled), the left atrium its label.
STRUCTURES: dict[str, tuple[int, ...]] = {"LVendo": (1,), "LVepi": (1, 2), "LA": (3,)}
STRUCTURE_DISPLAY_NAMES = {
    "LVendo": "LV endocardium",
    "LVepi": "LV epicardium",
    "LA": "left atrium",
}
# The structures whose contours the paper's geometric / anatomical criteria look at.
LV_STRUCTURES = ("LVendo", "LVepi")

# --- models --------------------------------------------------------------------------------

MODELS = ("unet1", "shg", "runet")
MODEL_DISPLAY_NAMES = {"unet1": "U-Net 1", "shg": "SHG", "runet": "RU-Net"}
