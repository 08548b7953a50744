"""CAMUS as a TensorFlow Datasets builder, the paper's folds, and a synthetic CAMUS.

``import tfds_camus`` registers the ``camus`` builder with TFDS. This package never
imports ``keras_runet`` (DESIGN.md: the one-way arrow).

Modules:
    vocabulary: the names (releases, subsets, views, instants, labels, qualities), once.
    layout: where the patients of a download are, however it was unpacked.
    archives: the zip files as downloaded, extracted through TFDS.
    checks: every patient checked before a preparation writes anything.
    reader: reads one patient's files (Info_*.cfg, images, frames in ED -> ES order).
    folds: the paper's 10 patient-level folds, shipped as text files.
    phantom: writes a synthetic CAMUS in either release layout (``camus-synth``).
    camus: the TFDS builder ``camus`` (configs ``256``, ``native``, ``half_sequence_256``).

Example:
    >>> import tensorflow_datasets as tfds
    >>> import tfds_camus
    >>> root = tfds_camus.phantom.write_synthetic_camus("/tmp/camus", 4, scale=0.25)
    >>> builder = tfds.builder("camus")
    >>> builder.download_and_prepare(
    ...     download_config=tfds.download.DownloadConfig(manual_dir=root))
    >>> ds = builder.as_dataset(split=tfds_camus.fold_splits(1)["test"])
"""

from tfds_camus import archives, checks, folds, layout, phantom, reader, vocabulary
from tfds_camus.archives import source_layout
from tfds_camus.camus import Builder, CamusConfig
from tfds_camus.errors import CamusFormatError, InvalidPatientsError, MissingFilesError, Problem
from tfds_camus.folds import fold_splits, load_folds

__all__ = [
    "Builder",
    "CamusConfig",
    "CamusFormatError",
    "InvalidPatientsError",
    "MissingFilesError",
    "Problem",
    "archives",
    "checks",
    "fold_splits",
    "folds",
    "layout",
    "load_folds",
    "phantom",
    "reader",
    "source_layout",
    "vocabulary",
]
