"""Reading what ``runet evaluate`` evaluates: saved prediction files, their CAMUS references,
and a JSON file of outlier thresholds.

Predictions are files named like the CAMUS images, in one folder per model (searched
recursively)::

    patient0001_2CH_ED.npy        a label map (rows, cols) on the native grid, or
                                  class probabilities (H, W, C) at any size
    patient0001_2CH_ED.npz        one array per output (e.g. "segmentation", "coarse"),
                                  each a label map or probabilities
    patient0001_2CH_ED.png        a label map (values 0..3)
    patient0001_2CH_ED.nii.gz     a label map (also .nii, .mhd), read like CAMUS files
    patient0001_2CH_ED_coarse.npy a suffix after the instant names the output

Probabilities are brought back to the native grid (resize, then argmax:
:func:`keras_runet.evaluation.to_native_grid`) before any distance is measured. References,
spacings, image quality and the ``Info_*.cfg`` volumes come from the CAMUS folder (either
release) through :mod:`tfds_camus.reader`.

Every problem with a file is a :class:`PredictionFileError` (a ``ValueError``) whose message
names the file and what is wrong; ``runet evaluate`` prints it as one line.

>>> import tempfile, pathlib
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> np.save(folder / "patient0001_2CH_ED.npy", np.zeros((6, 5), np.uint8))
>>> [(e["patient_id"], e["view"], e["instant"], e["output"])
...  for e in find_predictions("unet1", folder)]
[('patient0001', '2CH', 'ED', 'segmentation')]
>>> as_label_map(np.eye(4, dtype=np.float32)[[[1, 2], [3, 0]]], (4, 4), "x").shape
(4, 4)
"""

from __future__ import annotations

import json
import os
import re
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np

from tfds_camus.vocabulary import INSTANTS, NUM_LABELS, VIEWS

__all__ = [
    "FILE_RE",
    "PredictionFileError",
    "as_label_map",
    "evaluation_items",
    "find_predictions",
    "load_prediction",
    "load_reference",
    "parse_prediction_folders",
    "read_thresholds",
]

_MAX_LABEL = NUM_LABELS - 1

# patient0001_2CH_ED[_output].ext
FILE_RE = re.compile(
    r"^(?P<patient>patient\d{4})_(?P<view>" + "|".join(VIEWS) + r")_(?P<instant>"
    + "|".join(INSTANTS) + r")"
    r"(?:_(?P<output>[A-Za-z0-9][A-Za-z0-9_-]*))?\.(?P<ext>npy|npz|png|nii\.gz|nii|mhd)$"
)  # fmt: skip


class PredictionFileError(ValueError):
    """A prediction (or reference, or thresholds) file that cannot be evaluated; the
    message names the file and the reason."""


def parse_prediction_folders(
    specs: Sequence[str], model: str | None = None
) -> list[tuple[str, Path]]:
    """``--pred`` values (``DIR`` or ``MODEL=DIR``) -> ``[(model name, folder)]``.

    An unnamed folder is named ``model`` when given (one folder only), else after the
    folder. Names must differ.
    """
    out: list[tuple[str, Path]] = []
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep:
            name, path = "", spec
        path = Path(path)
        if not path.is_dir():
            raise PredictionFileError(f"--pred {spec}: {path} is not a directory")
        if not name:
            if model and len(specs) > 1:
                raise PredictionFileError(
                    "--model names a single --pred; use --pred MODEL=DIR for several"
                )
            name = model or path.resolve().name
        out.append((name, path))
    names = [n for n, _ in out]
    if len(set(names)) != len(names):
        raise PredictionFileError(f"--pred: model names must differ, got {names}")
    return out


def find_predictions(
    model: str, folder: str | os.PathLike, default_output: str = "segmentation"
) -> list[dict]:
    """The prediction files under ``folder`` (recursively), one entry per file.

    Each entry: ``model``, ``patient_id``, ``view``, ``instant``, ``output`` (the file's
    suffix, else ``default_output``), ``path`` and ``npz``. ``*_gt`` files are skipped; two
    files for one image and output, or none at all, are errors.
    """
    folder = Path(folder)
    found: dict[tuple, dict] = {}
    seen: set[tuple] = set()
    for path in sorted(folder.rglob("*")):
        m = FILE_RE.match(path.name)
        if not m or not path.is_file():
            continue
        if m["output"] == "gt":
            continue
        key = (m["patient"], m["view"], m["instant"], m["output"] or "", m["ext"])
        if key[:4] in seen:
            raise PredictionFileError(
                f"{path}: more than one prediction file for {'_'.join(key[:3])}"
            )
        seen.add(key[:4])
        found[key] = {
            "model": model,
            "patient_id": m["patient"],
            "view": m["view"],
            "instant": m["instant"],
            "output": m["output"] or default_output,
            "path": path,
            "npz": m["ext"] == "npz",
        }
    if not found:
        raise PredictionFileError(
            f"{folder}: no prediction files named like patient0001_2CH_ED.npy "
            "(.npy, .npz, .png, .nii.gz, .mhd)"
        )
    return list(found.values())


def as_label_map(array, native_shape, where: str) -> np.ndarray:
    """A prediction array -> a uint8 label map of ``native_shape``.

    ``(H, W, C)`` float probabilities at any size are brought to the native grid (resize,
    argmax); a 2-D array must already hold labels 0..3 on the native grid. ``where`` names
    the source in the error messages.
    """
    from keras_runet.evaluation import to_native_grid

    a = np.asarray(array)
    if a.ndim == 3 and a.shape[0] == 1 and np.issubdtype(a.dtype, np.integer):
        a = a[0]
    if a.ndim == 3:
        if not np.issubdtype(a.dtype, np.floating):
            raise PredictionFileError(
                f"{where}: a 3-D prediction must be float probabilities (H, W, C), got {a.dtype}"
            )
        try:
            return to_native_grid(a, native_shape)
        except ValueError as err:
            raise PredictionFileError(f"{where}: {err}") from None
    if a.ndim != 2:
        raise PredictionFileError(
            f"{where}: expected a label map (rows, cols) or probabilities (H, W, C), "
            f"got shape {a.shape}"
        )
    if np.issubdtype(a.dtype, np.floating):
        if not np.all(np.isfinite(a)) or not np.all(a == np.round(a)):
            raise PredictionFileError(
                f"{where}: a 2-D prediction must hold integer labels 0..{_MAX_LABEL}"
            )
        a = a.astype(np.int64)
    if a.dtype == np.bool_ or not np.issubdtype(a.dtype, np.integer):
        raise PredictionFileError(f"{where}: a label map must be integer, got dtype {a.dtype}")
    if a.size and (a.min() < 0 or a.max() > _MAX_LABEL):
        raise PredictionFileError(
            f"{where}: labels must be 0..{_MAX_LABEL}, got values in [{a.min()}, {a.max()}]"
        )
    if a.shape != tuple(native_shape):
        raise PredictionFileError(
            f"{where}: label map of shape {a.shape} but the CAMUS image is "
            f"{tuple(native_shape)}; save label maps on the native grid, or probabilities "
            "(resized, then argmax, here)"
        )
    return a.astype(np.uint8)


def load_prediction(entry: dict, native_shape) -> dict[str, np.ndarray]:
    """``{output name: native label map}`` of one file of :func:`find_predictions`."""
    path: Path = entry["path"]
    name = path.name
    try:
        if name.endswith(".npz"):
            with np.load(path, allow_pickle=False) as z:
                keys = list(z.keys())
                if not keys:
                    raise PredictionFileError(f"{path}: empty .npz")
                if len(keys) == 1 and keys[0].startswith("arr_"):
                    return {entry["output"]: as_label_map(z[keys[0]], native_shape, str(path))}
                return {k: as_label_map(z[k], native_shape, f"{path}[{k}]") for k in keys}
        if name.endswith(".npy"):
            array = np.load(path, allow_pickle=False)
        elif name.endswith(".png"):
            from PIL import Image

            with Image.open(path) as im:
                array = np.asarray(im)
            if array.ndim == 3:
                raise PredictionFileError(
                    f"{path}: a PNG label map must be single-channel, got shape {array.shape}"
                )
        else:
            from tfds_camus import reader

            array, _ = reader.read_image(path)
    except PredictionFileError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        # a truncated .npy or .npz, an unreadable or truncated image
        raise PredictionFileError(f"{path}: cannot read prediction ({err})") from None
    return {entry["output"]: as_label_map(array, native_shape, str(path))}


def load_reference(camus, patient_id: str, view: str, instant: str, cache: dict) -> dict:
    """One CAMUS image with its reference mask (:func:`tfds_camus.reader.load_instant`).

    ``cache`` holds the last image only: entries sorted by image reuse it for every model
    of one image, and memory stays flat on the 2000 images of CAMUS.
    """
    key = (patient_id, view, instant)
    if key not in cache:
        cache.clear()
        from tfds_camus import reader

        try:
            data = reader.load_instant(camus, patient_id, view, instant)
        except (OSError, ValueError) as err:
            raise PredictionFileError(
                f"reference for {patient_id} {view} {instant}: {err}"
            ) from None
        if data.get("gt") is None:
            raise PredictionFileError(
                f"{patient_id} {view} {instant}: the CAMUS folder has no reference mask for it "
                "(a testing patient?)"
            )
        cache[key] = data
    return cache[key]


def evaluation_items(
    entries: Iterable[dict], camus, sources: list, references: dict
) -> Iterator[dict]:
    """The items of :func:`keras_runet.evaluation.evaluate_label_maps`, one per prediction
    file and output, read lazily.

    Appends ``(entry, output)`` to ``sources`` for each item (to find a row's file again)
    and the patients' ``Info_*.cfg`` values to ``references`` (for the EF comparison).
    Sort ``entries`` by image first, so that each reference is read once.
    """
    cache: dict = {}
    for entry in entries:
        ref = load_reference(camus, entry["patient_id"], entry["view"], entry["instant"], cache)
        info = ref.get("info") or {}
        references.setdefault(entry["patient_id"], info)
        for output, label_map in load_prediction(entry, ref["gt"].shape).items():
            sources.append((entry, output))
            yield {
                "model": entry["model"],
                "output": output,
                "patient_id": entry["patient_id"],
                "view": entry["view"],
                "instant": entry["instant"],
                "image_quality": info.get("ImageQuality"),
                "pred": label_map,
                "ref": ref["gt"],
                "spacing": ref["spacing"],
            }


def read_thresholds(path: str | os.PathLike | None):
    """The :class:`~keras_runet.evaluation.OutlierThresholds` of a JSON file (its fields
    override the paper's Table I values); the defaults when ``path`` is None."""
    from keras_runet.evaluation import OutlierThresholds

    thresholds = OutlierThresholds()
    if path is None:
        return thresholds
    try:
        with open(path, encoding="utf-8") as fh:
            values = json.load(fh)
        if not isinstance(values, dict):
            raise ValueError(f"expected a JSON object, got {type(values).__name__}")
        return OutlierThresholds.from_dict({**thresholds.to_dict(), **values})
    except (OSError, ValueError, TypeError) as err:
        raise PredictionFileError(f"{path}: {err}") from None
