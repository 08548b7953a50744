"""The steps the notebooks in ``notebooks/`` share, written once and tested.

Each notebook is a tutorial: its cells show the package's public functions one step at a
time. The steps the three notebooks take before their own story begins are here:

- :func:`override_parameters`: a notebook's parameters cell declares plain values (Colab
  ``# @param`` forms); any of them can be replaced by an environment variable
  ``RUNET_NB_<NAME>`` (the test suite runs the notebooks with tiny values that way);
- :func:`work_dir`: the folder the notebooks share (``/content/runet`` in Colab);
- :func:`locate_camus`: CAMUS from a folder (Google Drive is mounted when the folder is in
  it), or else a synthetic CAMUS written by :func:`tfds_camus.phantom.write_synthetic_camus`
  (patients spread over the paper's ten fold groups, reused when already written);
- :func:`prepare_fold`: the TFDS ``camus`` dataset prepared once, and one fold's splits;
- :func:`label_colormap`: the colours of the label maps in the figures.

The install cell cannot be here: it runs before keras-runet is installed. Importing this
module does not import TensorFlow.

>>> namespace = {"EPOCHS": 30, "SCALE": 0.5, "CAMUS_DIR": ""}
>>> override_parameters(namespace, environ={"RUNET_NB_EPOCHS": "2"}, verbose=False)
{'EPOCHS': 2}
>>> namespace["EPOCHS"]
2
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, MutableMapping
from pathlib import Path
from typing import NamedTuple

ENV_PREFIX = "RUNET_NB_"
COLAB_WORK_DIR = "/content/runet"
LOCAL_WORK_DIR = "runet_notebooks"
DRIVE = "/content/drive"
DRIVE_WORK_DIR = DRIVE + "/MyDrive/runet"
# The colour of each label of tfds_camus.vocabulary.LABELS in the figures.
LABEL_COLOURS = ("none", "tab:red", "tab:green", "tab:blue")

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def in_colab() -> bool:
    """Whether this runs in a Google Colab kernel."""
    return "google.colab" in sys.modules


def _cast(name: str, text: str, default):
    key = ENV_PREFIX + name
    try:
        if isinstance(default, bool):
            if text.lower() in _TRUE:
                return True
            if text.lower() in _FALSE:
                return False
            raise ValueError
        if isinstance(default, int):
            return int(text)
        if isinstance(default, float):
            return float(text)
    except ValueError:
        kind = type(default).__name__
        raise ValueError(f"{key}={text!r}: {name} takes a {kind} value") from None
    return text


def override_parameters(
    namespace: MutableMapping[str, object],
    *,
    environ: Mapping[str, str] | None = None,
    verbose: bool = True,
) -> dict[str, object]:
    """Replaces parameters by the environment variables ``RUNET_NB_<NAME>`` that are set.

    The parameters are the names of ``namespace`` (a notebook's ``globals()``) written in
    capitals whose value is a ``str``, ``int``, ``float`` or ``bool``. A variable set to a
    non-empty value replaces the parameter, converted to the type of the value it replaces
    (``bool``: 1/0, true/false, yes/no, on/off); an empty one, or one that names no
    parameter, is ignored.

    Args:
        namespace: the parameters, replaced in place.
        environ: the environment (default: ``os.environ``).
        verbose: print each replaced value.

    Returns:
        ``{name: new value}`` of the replaced parameters.

    Raises:
        ValueError: a value that does not convert, naming the variable and the type.
    """
    environ = os.environ if environ is None else environ
    replaced = {}
    for name, default in list(namespace.items()):
        if not (name.isupper() and isinstance(default, str | int | float | bool)):
            continue
        text = environ.get(ENV_PREFIX + name, "")
        if text:
            replaced[name] = namespace[name] = _cast(name, text, default)
    if verbose:
        for name, value in replaced.items():
            print(f"{name} = {value!r}  (from {ENV_PREFIX}{name})")
    return replaced


def _mount_drive() -> None:
    from google.colab import drive  # only in Colab

    drive.mount(DRIVE)


def work_dir(path: str | os.PathLike = "", *, on_drive: bool = False) -> Path:
    """The notebooks' shared work folder, created: ``path``, or by default
    ``/content/runet`` in Colab and ``runet_notebooks`` (in the current folder) elsewhere.

    ``on_drive`` (Colab): keep it on Google Drive, so that the prepared dataset, the runs and
    the study survive the end of the Colab session: Drive is mounted and the default becomes
    ``/content/drive/MyDrive/runet`` (a ``path`` outside Drive is then an error, not silently
    lost). Outside Colab ``on_drive`` changes nothing but a note.
    """
    if on_drive and in_colab():
        _mount_drive()
        path = path or DRIVE_WORK_DIR
        if not str(path).startswith(DRIVE + "/"):
            raise ValueError(
                f"WORK_DIR {str(path)!r} is not on Google Drive ({DRIVE}/...): clear it to use "
                f"{DRIVE_WORK_DIR}, or untick WORK_ON_DRIVE"
            )
    elif on_drive:
        print("WORK_ON_DRIVE: not in Colab, the work folder stays local")
    folder = Path(path or (COLAB_WORK_DIR if in_colab() else LOCAL_WORK_DIR))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def synthetic_name(patients: int, scale: float) -> str:
    """The folder name of a synthetic CAMUS of ``patients`` at ``scale`` in the work folder.

    >>> synthetic_name(10, 0.3)
    'synthetic_10p_scale0.3'
    """
    return f"synthetic_{patients}p_scale{scale}"


def locate_camus(
    camus_dir: str | os.PathLike,
    work: str | os.PathLike,
    *,
    patients: int,
    scale: float,
    seed: int = 0,
) -> tuple[Path, Path]:
    """The CAMUS folder to read and the TFDS data folder to prepare it in.

    ``camus_dir``, when it is a folder (the downloads as they are, zipped or not; in Colab,
    Google Drive is mounted first when ``camus_dir`` is under ``/content/drive/``). Otherwise
    a synthetic CAMUS of ``patients`` patients in ``work``, spread over the paper's ten fold
    groups so that every fold has training, validation and test patients; a synthetic CAMUS
    already written there with the same arguments is reused.

    Returns:
        ``(manual_dir, data_dir)``: the folder to give ``data.prepare_camus`` and its TFDS
        data folder (one per synthetic CAMUS, so that different ones do not mix).
    """
    work = Path(work)
    camus_dir = str(camus_dir or "")
    if camus_dir and in_colab() and camus_dir.startswith(DRIVE + "/"):
        _mount_drive()
    if camus_dir and Path(camus_dir).is_dir():
        print(f"Using CAMUS from {camus_dir}")
        return Path(camus_dir), work / "tfds" / "camus"
    if camus_dir:
        print(f"{camus_dir} does not exist: using a synthetic CAMUS instead")
    from tfds_camus import phantom

    name = synthetic_name(patients, scale)
    manual_dir = phantom.write_synthetic_camus(
        work / name, patients, seed=seed, scale=scale, per_group=True, reuse=True
    )
    print(f"Using a synthetic CAMUS of {patients} patients in {manual_dir}")
    return Path(manual_dir), work / "tfds" / name


class Fold(NamedTuple):
    """A prepared dataset and one of its folds."""

    builder: object  # the TFDS camus builder
    splits: dict[str, str]  # {"train", "validation", "test"}: split strings
    sizes: dict[str, int]  # images per part


def prepare_fold(
    manual_dir: str | os.PathLike,
    data_dir: str | os.PathLike,
    fold: int,
    *,
    config: str = "256",
    verbose: bool = True,
) -> Fold:
    """Prepares (once) the TFDS ``camus`` dataset of ``manual_dir`` and splits fold ``fold``.

    The splits are those of :func:`keras_runet.cross_validation.fold_split_strings`
    (groups missing from a small dataset are left out); ``verbose`` prints the dataset's
    name and the size of each part.
    """
    from keras_runet import cross_validation, data

    builder = data.prepare_camus(manual_dir, data_dir, config=config)
    splits = cross_validation.fold_split_strings(builder, fold)
    sizes = {part: builder.info.splits[split].num_examples for part, split in splits.items()}
    if verbose:
        print(builder.info.full_name)
        for part, split in splits.items():
            print(f"  {part:<10} {sizes[part]:4d} images  ({split})")
    return Fold(builder, splits, sizes)


def label_colormap():
    """A matplotlib colormap of the label values (0 transparent), for ``vmin=0``,
    ``vmax=len(LABELS) - 1``."""
    from matplotlib.colors import ListedColormap

    from tfds_camus.vocabulary import LABELS

    return ListedColormap([colour for _, colour in zip(LABELS, LABEL_COLOURS, strict=True)])
