"""CAMUS as a TensorFlow Datasets builder, the paper's folds, and a synthetic CAMUS.

``import tfds_camus`` registers the ``camus`` builder with TFDS (at once if TFDS is already
imported, else as soon as it is; the TFDS-free modules stay light: vocabulary, atomic,
errors, folds). This package never
imports ``keras_runet`` (docs/design.md: the one-way arrow).

Modules:
    vocabulary: the names (releases, subsets, views, instants, labels, structures,
        qualities, models), once, for both packages.
    layout: where the patients of a download are, however it was unpacked.
    archives: the zip files as downloaded, extracted through TFDS.
    checks: every patient checked before a preparation writes anything.
    images, textfiles: image files (headers, pixels, truncation) and Info_*.cfg / split lists.
    reader: reads one patient's files (Info_*.cfg, images, frames in ED -> ES order).
    atomic: atomic file writes (temp file + os.replace), for both packages.
    folds: the paper's 10 patient-level folds, shipped as text files.
    phantom: writes a synthetic CAMUS in either release layout (``camus-synth``).
    camus: the TFDS builder ``camus`` (configs ``256``, ``native``, ``half_sequence_256``).

Example (a synthetic CAMUS, prepared and read as fold 1's test split)::

    import tensorflow_datasets as tfds
    import tfds_camus
    root = tfds_camus.phantom.write_synthetic_camus("/tmp/camus", 20, scale=0.25, per_group=True)
    builder = tfds.builder("camus")
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=root))
    ds = builder.as_dataset(split=tfds_camus.fold_splits(1)["test"])
"""

import importlib
import importlib.abc
import importlib.util
import logging
import sys

# Light modules (the standard library only): importing them, or anything that needs just the
# names, the folds or the atomic writes (keras_runet.metrics on a JAX-only GPU machine),
# costs no TFDS, SimpleITK or scipy import.
from tfds_camus import atomic, errors, folds, vocabulary
from tfds_camus.errors import CamusFormatError, InvalidPatientsError, MissingFilesError, Problem
from tfds_camus.folds import fold_splits, load_folds

# The others are imported on first use (PEP 562).
_LAZY_MODULES = (
    "archives",
    "camus",
    "checks",
    "images",
    "layout",
    "phantom",
    "reader",
    "textfiles",
)
_LAZY_NAMES = {
    "Builder": "tfds_camus.camus",
    "CamusConfig": "tfds_camus.camus",
    "source_layout": "tfds_camus.archives",
}


def __getattr__(name: str):
    if name in _LAZY_MODULES:
        return importlib.import_module(f"tfds_camus.{name}")
    if name in _LAZY_NAMES:
        return getattr(importlib.import_module(_LAZY_NAMES[name]), name)
    raise AttributeError(f"module 'tfds_camus' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY_MODULES) | set(_LAZY_NAMES))


def _register_builder() -> None:
    """Defines (registers) the ``camus`` builder; a missing TFDS stack is logged, not raised
    (the names, folds and synthetic writer have other uses)."""
    try:
        importlib.import_module("tfds_camus.camus")
    except ImportError as err:
        logging.getLogger(__name__).debug("camus builder not registered: %s", err)


class _RegisterWithTfds(importlib.abc.MetaPathFinder):
    """Registers the builder right after ``tensorflow_datasets`` is first imported, so that
    ``import tfds_camus`` then ``import tensorflow_datasets as tfds; tfds.builder("camus")``
    works in either order without making ``import tfds_camus`` pay for TFDS."""

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow_datasets":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        loader_exec = spec.loader.exec_module

        def exec_module(module):
            loader_exec(module)
            _register_builder()

        spec.loader.exec_module = exec_module
        return spec


if "tensorflow_datasets" in sys.modules:
    _register_builder()
elif not any(isinstance(f, _RegisterWithTfds) for f in sys.meta_path):
    sys.meta_path.insert(0, _RegisterWithTfds())

__all__ = [
    "Builder",
    "CamusConfig",
    "CamusFormatError",
    "InvalidPatientsError",
    "MissingFilesError",
    "Problem",
    "archives",
    "atomic",
    "checks",
    "errors",
    "fold_splits",
    "folds",
    "images",
    "layout",
    "load_folds",
    "phantom",
    "reader",
    "source_layout",
    "textfiles",
    "vocabulary",
]
