"""The words of CAMUS, declared once: releases, subsets, views, instants, labels, qualities.

Every other module of ``tfds_camus`` (and ``keras_runet``, which may import this package)
takes these names from here.
"""

from __future__ import annotations

import re

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

VIEWS = ("2CH", "4CH")
INSTANTS = ("ED", "ES")
# Per-example instant of the half-sequence config: frames between ED and ES are "other".
FRAME_INSTANTS = ("ED", "ES", "other")

LABELS = ("background", "lv_cavity", "myocardium", "left_atrium")  # 0, 1, 2, 3
NUM_LABELS = len(LABELS)

QUALITIES = ("Good", "Medium", "Poor")
SEXES = ("F", "M")
UNKNOWN = "Unknown"
