"""Regenerates ``dummy_data/``: a tiny synthetic CAMUS in each release layout.

    python -m tfds_camus.camus.make_dummy_data

Three patients from three test groups (patient0001: group 1, patient0042: group 2,
patient0455: group 10), images at 1/10 of the CAMUS size, 3 frames from ED to ES, the 4CH
view of patient0042 stored ES -> ED (as ~4 % of the real 4CH views are). In the original
layout person 455 lands in ``testing/patient0005`` without masks, as in the challenge
release (whose testing/ ids restart at patient0001).
The builder's tests (tests/test_tfds_camus_builder.py) expect exactly this content.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from tfds_camus import phantom
from tfds_camus.vocabulary import RELEASES

DUMMY_DATA = Path(__file__).parent / "dummy_data"
PATIENTS = (1, 42, 455)
SCALE = 0.1
FRAMES = (3, 3)
ES_TO_ED = ("patient0042_4CH",)


def main() -> None:
    for layout in RELEASES:  # original, nifti
        out = DUMMY_DATA / layout
        shutil.rmtree(out, ignore_errors=True)
        phantom.write_synthetic_camus(
            out,
            patient_ids=PATIENTS,
            layout=layout,
            seed=0,
            scale=SCALE,
            half_sequence_frames=FRAMES,
            es_to_ed=ES_TO_ED,
            compression_level=9,
        )
        (out / phantom.COMPLETE_MARKER).unlink()  # package data holds the releases' files only
        print(out)


if __name__ == "__main__":
    main()
