"""CAMUS as a TensorFlow Datasets builder, the paper's folds, and a synthetic CAMUS.

``import tfds_camus`` registers the ``camus`` builder with TFDS. This package never
imports ``keras_runet`` (DESIGN.md: the one-way arrow).

Modules:
    reader: reads either CAMUS release from disk (layout, Info_*.cfg, images, checks).
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

from tfds_camus import folds, phantom, reader
from tfds_camus.camus import Builder, CamusConfig
from tfds_camus.folds import fold_splits, load_folds
from tfds_camus.reader import CamusFormatError, MissingFilesError

__all__ = [
    "Builder",
    "CamusConfig",
    "CamusFormatError",
    "MissingFilesError",
    "fold_splits",
    "folds",
    "load_folds",
    "phantom",
    "reader",
]
