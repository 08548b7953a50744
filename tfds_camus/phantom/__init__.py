"""A synthetic CAMUS: apical 2CH/4CH echo-like images drawn from known shapes, on disk in the
exact layout of either CAMUS release.

Nobody can redistribute CAMUS, so this module writes a stand-in with the same files, sizes,
spacings and ``Info_*.cfg`` keys. It is the data of the demo, the tests and the benchmarks.

What is drawn, per patient and view (all geometry in mm, then sampled on the pixel grid):

- a sector-shaped field of view with its apex (the probe) at the top centre; outside it the
  image is 0;
- the left ventricle as a truncated ellipse (apex at the top, mitral plane at the bottom),
  its myocardium as a thicker ellipse around it, and the left atrium below the mitral plane;
  in the 4CH view also a right ventricle and right atrium (not labelled, as in CAMUS);
- tissue reflectivities (dark blood, bright myocardium and pericardium), Rayleigh speckle,
  depth attenuation and log compression;
- the three image-quality levels: ``Good``, ``Medium`` and ``Poor`` (lower contrast, hazy
  cavities, echo dropouts in angular bands).

The ground-truth masks (0 background, 1 LV cavity, 2 myocardium, 3 left atrium) are the shapes
that drew the image. Between ED and ES the cavity shortens and narrows, the myocardium thickens
and the atrium grows; ``Info_*.cfg`` holds ED/ES/NbFrame of the written sequences, the image
quality, and EF (and, original release, EDV/ESV) computed from the drawn shapes by Simpson's
biplane method of disks (20 disks, the 2CH and 4CH cavities).

Every patient is drawn from its own random generator seeded by ``(seed, patient number)``: a
patient is the same whatever the number of patients written or of worker processes.

The real downloads' quirks are options (:mod:`~tfds_camus.phantom.writer`): the original
release's testing/ ids restarting at patient0001, views stored ES -> ED, 3-D ED/ES files; and
:func:`as_downloaded` packs a tree the ways users get it (zips, doubled folders, Mac debris).

Modules: ``anatomy`` (patients and shapes in mm), ``render`` (image formation), ``writer``
(the release layouts), ``downloads`` (archives and arrangements as downloaded), ``cli`` (the
flags of ``camus-synth`` and ``runet synth``, declared once).

Example (``per_group``: patients in all 10 fold groups; ``reuse``: a second call with the
same arguments returns the finished tree at once)::

    from tfds_camus import phantom
    root = phantom.write_synthetic_camus(
        "/tmp/camus", num_patients=20, scale=0.25, per_group=True, reuse=True
    )
    tfds.builder("camus").download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=root))

Command line: ``camus-synth OUT --patients 500 --release nifti`` (or ``runet synth``, the same
flags; see ``camus-synth --help``).
"""

from tfds_camus.phantom.anatomy import (
    NUM_DISKS,
    QUALITY_PROBABILITIES,
    PatientParams,
    ViewGeometry,
    biplane_volume_ml,
    cavity_diameters,
    patient_params,
)
from tfds_camus.phantom.cli import add_synth_arguments, main, synth_from_args
from tfds_camus.phantom.downloads import FORMS, add_macos_debris, as_downloaded, zip_folder
from tfds_camus.phantom.writer import (
    COMPLETE_MARKER,
    ORIGINAL_TESTING_FROM,
    es_to_ed_views,
    patients_per_group,
    write_synthetic_camus,
)
from tfds_camus.vocabulary import QUALITIES

__all__ = [
    "COMPLETE_MARKER",
    "FORMS",
    "NUM_DISKS",
    "ORIGINAL_TESTING_FROM",
    "QUALITIES",
    "QUALITY_PROBABILITIES",
    "PatientParams",
    "ViewGeometry",
    "add_macos_debris",
    "add_synth_arguments",
    "as_downloaded",
    "biplane_volume_ml",
    "cavity_diameters",
    "es_to_ed_views",
    "main",
    "patient_params",
    "patients_per_group",
    "synth_from_args",
    "write_synthetic_camus",
    "zip_folder",
]
