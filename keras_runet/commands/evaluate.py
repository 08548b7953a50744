"""``runet evaluate``: evaluate saved predictions against a CAMUS download.

Predictions are files named like the CAMUS images, in one folder per model (searched
recursively)::

    patient0001_2CH_ED.npy        a label map (rows, cols) on the native grid, or
                                  class probabilities (H, W, C) at any size
    patient0001_2CH_ED.npz        one array per output (e.g. "segmentation", "coarse"),
                                  each a label map or probabilities
    patient0001_2CH_ED.png        a label map (values 0..3)
    patient0001_2CH_ED.nii.gz     a label map (also .nii, .mhd), read like CAMUS files
    patient0001_2CH_ED_coarse.npy a suffix after the instant names the output

Probabilities are brought back to the native grid (resize, then argmax) before any
distance is measured. References, spacings, image quality and the ``Info_*.cfg`` volumes
come from the CAMUS folder (either release) through ``tfds_camus.reader``.

Writes ``report.md`` (also printed), ``report.json``, ``per_image.csv``,
``hd_distribution.png`` and ``worst_cases.png`` into ``--out``.

Or evaluate a trained model on a prepared dataset split (no prediction files)::

    runet evaluate --model-file best.keras --data-dir DATA [--fold K | --split S] --out DIR

which predicts the split, brings every output back to the native grid and writes the same
report (:func:`keras_runet.cross_validation.evaluate_model_on_split`).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from keras_runet.cli import UsageError

NAME = "evaluate"
HELP = "Evaluate saved predictions against CAMUS references (Dice, MAD, HD, outliers, EF)."

_FILE_RE = re.compile(
    r"^(?P<patient>patient\d{4})_(?P<view>2CH|4CH)_(?P<instant>ED|ES)"
    r"(?:_(?P<output>[A-Za-z0-9][A-Za-z0-9_-]*))?\.(?P<ext>npy|npz|png|nii\.gz|nii|mhd)$"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the options of ``runet evaluate``."""
    parser.add_argument(
        "--pred",
        action="append",
        metavar="[MODEL=]DIR",
        help="folder of predictions; repeat for several models (MODEL=DIR names each)",
    )
    parser.add_argument("--camus", metavar="DIR", help="CAMUS folder (either release)")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder of the report")
    parser.add_argument(
        "--model", help="model name of an unnamed --pred (default: the folder name)"
    )
    parser.add_argument(
        "--output",
        default="segmentation",
        help="output name of files without a suffix (default: segmentation)",
    )
    parser.add_argument(
        "--postprocess",
        action="store_true",
        help="apply the CAMUS post-processing (largest component, fill holes); default: raw",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="worker processes (0 or 1: serial; default: all cores)",
    )
    parser.add_argument(
        "--ef-reference",
        choices=("cfg", "masks"),
        default="cfg",
        help="compare EDV/ESV/EF with the Info_*.cfg values (default) or the reference masks",
    )
    parser.add_argument(
        "--distance-method",
        choices=("edt", "kdtree"),
        default="edt",
        help="contour distances by distance transform (default) or k-d tree (same numbers, faster)",
    )
    parser.add_argument(
        "--thresholds",
        metavar="JSON",
        help="JSON file overriding outlier thresholds (fields of OutlierThresholds)",
    )
    parser.add_argument(
        "--worst", type=int, default=6, help="worst cases drawn (default 6; 0: none)"
    )
    parser.add_argument("--no-figures", action="store_true", help="do not draw figures")
    g = parser.add_argument_group("a model on a dataset split (instead of --pred and --camus)")
    g.add_argument("--model-file", metavar="MODEL.keras", help="trained model (safe mode)")
    g.add_argument("--data-dir", help="TFDS data dir with the prepared camus dataset")
    g.add_argument("--config", default="256", help="camus builder config (default: 256)")
    g.add_argument("--fold", type=int, help="evaluate fold K's test patients (1..10)")
    g.add_argument("--split", help="or any TFDS split string, e.g. group1+group2")


def _parse_pred_args(preds: list[str], model: str | None) -> list[tuple[str, Path]]:
    out: list[tuple[str, Path]] = []
    for spec in preds:
        name, sep, path = spec.partition("=")
        if not sep:
            name, path = "", spec
        path = Path(path)
        if not path.is_dir():
            raise UsageError(f"--pred {spec}: {path} is not a directory")
        if not name:
            if model and len(preds) > 1:
                raise UsageError("--model names a single --pred; use --pred MODEL=DIR for several")
            name = model or path.resolve().name
        out.append((name, path))
    names = [n for n, _ in out]
    if len(set(names)) != len(names):
        raise UsageError(f"--pred: model names must differ, got {names}")
    return out


def _find_predictions(model: str, folder: Path, default_output: str) -> list[dict]:
    found: dict[tuple, dict] = {}
    seen: set[tuple] = set()
    for path in sorted(folder.rglob("*")):
        m = _FILE_RE.match(path.name)
        if not m or not path.is_file():
            continue
        if m["output"] == "gt":
            continue
        key = (m["patient"], m["view"], m["instant"], m["output"] or "", m["ext"])
        if key[:4] in seen:
            raise UsageError(f"{path}: more than one prediction file for {'_'.join(key[:3])}")
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
        raise UsageError(
            f"{folder}: no prediction files named like patient0001_2CH_ED.npy "
            "(.npy, .npz, .png, .nii.gz, .mhd)"
        )
    return list(found.values())


def _as_label_map(array: np.ndarray, native_shape, where: str) -> np.ndarray:
    from keras_runet.evaluation import to_native_grid

    a = np.asarray(array)
    if a.ndim == 3 and a.shape[0] == 1 and np.issubdtype(a.dtype, np.integer):
        a = a[0]
    if a.ndim == 3:
        if not np.issubdtype(a.dtype, np.floating):
            raise UsageError(
                f"{where}: a 3-D prediction must be float probabilities (H, W, C), got {a.dtype}"
            )
        try:
            return to_native_grid(a, native_shape)
        except ValueError as err:
            raise UsageError(f"{where}: {err}") from None
    if a.ndim != 2:
        raise UsageError(
            f"{where}: expected a label map (rows, cols) or probabilities (H, W, C), got shape {a.shape}"
        )
    if np.issubdtype(a.dtype, np.floating):
        if not np.all(np.isfinite(a)) or not np.all(a == np.round(a)):
            raise UsageError(f"{where}: a 2-D prediction must hold integer labels 0..3")
        a = a.astype(np.int64)
    if a.dtype == np.bool_ or not np.issubdtype(a.dtype, np.integer):
        raise UsageError(f"{where}: a label map must be integer, got dtype {a.dtype}")
    if a.size and (a.min() < 0 or a.max() > 3):
        raise UsageError(f"{where}: labels must be 0..3, got values in [{a.min()}, {a.max()}]")
    if a.shape != tuple(native_shape):
        raise UsageError(
            f"{where}: label map of shape {a.shape} but the CAMUS image is {tuple(native_shape)}; "
            "save label maps on the native grid, or probabilities (resized, then argmax, here)"
        )
    return a.astype(np.uint8)


def _load_prediction(entry: dict, native_shape) -> dict[str, np.ndarray]:
    """{output name: native label map} for one prediction file."""
    path: Path = entry["path"]
    name = path.name
    try:
        if name.endswith(".npz"):
            with np.load(path, allow_pickle=False) as z:
                keys = list(z.keys())
                if not keys:
                    raise UsageError(f"{path}: empty .npz")
                if len(keys) == 1 and keys[0].startswith("arr_"):
                    return {entry["output"]: _as_label_map(z[keys[0]], native_shape, str(path))}
                return {k: _as_label_map(z[k], native_shape, f"{path}[{k}]") for k in keys}
        if name.endswith(".npy"):
            array = np.load(path, allow_pickle=False)
        elif name.endswith(".png"):
            from PIL import Image

            with Image.open(path) as im:
                array = np.asarray(im)
            if array.ndim == 3:
                raise UsageError(
                    f"{path}: a PNG label map must be single-channel, got shape {array.shape}"
                )
        else:
            from tfds_camus import reader

            array, _ = reader.read_image(path)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        # a truncated .npy or .npz, an unreadable or truncated image
        raise UsageError(f"{path}: cannot read prediction ({err})") from None
    return {entry["output"]: _as_label_map(array, native_shape, str(path))}


def _load_reference(camus, patient_id: str, view: str, instant: str, cache: dict) -> dict:
    # The cache holds the last image only: entries are sorted by image, so every model of
    # one image reuses it, and memory stays flat on the 2000 images of CAMUS.
    key = (patient_id, view, instant)
    if key not in cache:
        cache.clear()
        from tfds_camus import reader

        try:
            data = reader.load_instant(camus, patient_id, view, instant)
        except (OSError, ValueError) as err:
            raise UsageError(f"reference for {patient_id} {view} {instant}: {err}") from None
        if data.get("gt") is None:
            raise UsageError(
                f"{patient_id} {view} {instant}: the CAMUS folder has no reference mask for it "
                "(a testing patient?)"
            )
        cache[key] = data
    return cache[key]


def _items(entries, camus, ref_cache, sources, references) -> Iterator[dict]:
    for entry in entries:
        ref = _load_reference(
            camus, entry["patient_id"], entry["view"], entry["instant"], ref_cache
        )
        info = ref.get("info") or {}
        references.setdefault(entry["patient_id"], info)
        for output, label_map in _load_prediction(entry, ref["gt"].shape).items():
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


def run(args: argparse.Namespace) -> int:
    """Runs ``runet evaluate``; returns the exit code."""
    from keras_runet import evaluation as ev
    from keras_runet.commands._common import output_dir
    from keras_runet.evaluation.figures import case_title, plot_worst_cases, worst_indices

    output_dir(args.out)
    if args.model_file:
        return _run_on_model(args)
    if not args.pred or not args.camus:
        raise UsageError("give --pred DIR and --camus DIR, or --model-file and --data-dir")
    camus = Path(args.camus)
    if not camus.is_dir():
        raise UsageError(f"--camus {camus}: not a directory")
    if args.workers < 0:
        raise UsageError(f"--workers must be >= 0, got {args.workers}")
    if args.worst < 0:
        raise UsageError(f"--worst must be >= 0, got {args.worst}")
    thresholds = ev.OutlierThresholds()
    if args.thresholds:
        try:
            with open(args.thresholds, encoding="utf-8") as fh:
                thresholds = ev.OutlierThresholds.from_dict(
                    {**thresholds.to_dict(), **json.load(fh)}
                )
        except (OSError, ValueError, TypeError) as err:
            raise UsageError(f"--thresholds {args.thresholds}: {err}") from None
    try:
        from tfds_camus import reader

        camus = reader.detect_layout(camus)  # once: every reference is read through it
    except (OSError, ValueError) as err:
        raise UsageError(f"--camus {camus}: {err}") from None

    entries = []
    for model, folder in _parse_pred_args(args.pred, args.model):
        entries.extend(_find_predictions(model, folder, args.output))
    # Sorted by image so that a reference is read once and reused by every model.
    entries.sort(key=lambda e: (e["patient_id"], e["view"], e["instant"], e["model"]))

    sources: list = []
    references: dict = {}
    ref_cache: dict = {}
    rows = ev.evaluate_label_maps(
        _items(entries, camus, ref_cache, sources, references),
        workers=args.workers,
        thresholds=thresholds,
        postprocess=args.postprocess,
        distance_method=args.distance_method,
    )
    out = Path(args.out)
    paths = ev.write_report(
        rows,
        out,
        thresholds=thresholds,
        references=references if args.ef_reference == "cfg" else None,
        figures=not args.no_figures,
    )
    if not args.no_figures and args.worst:
        cases = []
        for i in worst_indices(rows, args.worst):
            entry, output = sources[i]
            ref = _load_reference(camus, entry["patient_id"], entry["view"], entry["instant"], {})
            pred = _load_prediction(entry, ref["gt"].shape)[output]
            if args.postprocess:
                pred = ev.postprocess_label_map(pred)
            cases.append(
                {
                    "pred": pred,
                    "ref": ref["gt"],
                    "image": ref["image"],
                    "spacing": ref["spacing"],
                    "title": case_title(rows[i]),
                }
            )
        paths["worst_figure"] = plot_worst_cases(cases, out / "worst_cases.png")
    print(paths["markdown"].read_text(encoding="utf-8"))
    for kind, path in paths.items():
        print(f"{kind}: {path}")
    return 0


def _run_on_model(args: argparse.Namespace) -> int:
    """``runet evaluate --model-file M --data-dir D [--fold K | --split S]``."""
    from keras_runet import evaluation as ev

    if args.pred or args.camus:
        raise UsageError("--model-file evaluates a dataset split: drop --pred / --camus")
    if not args.data_dir:
        raise UsageError("--model-file needs --data-dir (the prepared camus dataset)")
    if (args.fold is None) == (args.split is None):
        raise UsageError("give one of --fold K or --split SPLIT with --model-file")
    model_path = Path(args.model_file)
    if not model_path.is_file():
        raise UsageError(f"--model-file {model_path}: no such file")
    thresholds = ev.OutlierThresholds()
    if args.thresholds:
        try:
            with open(args.thresholds, encoding="utf-8") as fh:
                thresholds = ev.OutlierThresholds.from_dict(
                    {**thresholds.to_dict(), **json.load(fh)}
                )
        except (OSError, ValueError, TypeError) as err:
            raise UsageError(f"--thresholds {args.thresholds}: {err}") from None
    from keras_runet.cross_validation import evaluate_model_on_split, fold_split_strings
    from keras_runet.data import load_builder
    from keras_runet.export import ExportError, load_model

    try:  # safe mode; a corrupt, foreign or non-runet file is one line, not a traceback
        model = load_model(model_path)
    except ExportError as err:
        raise UsageError(f"--model-file: {err}") from None
    try:
        builder = load_builder(args.data_dir, args.config)
    except FileNotFoundError as err:
        raise UsageError(str(err)) from None
    if args.fold is not None:
        try:
            split = fold_split_strings(builder, args.fold)["test"]
        except ValueError as err:
            raise UsageError(str(err)) from None
    else:
        split = args.split
        unknown = [p for p in split.split("[")[0].split("+") if p not in builder.info.splits]
        if unknown:
            raise UsageError(
                f"unknown split {', '.join(unknown)}; prepared: {', '.join(builder.info.splits)}"
            )
    _, paths = evaluate_model_on_split(
        model,
        builder,
        split,
        args.out,
        model_name=args.model,
        workers=args.workers,
        thresholds=thresholds,
        postprocess=args.postprocess,
        distance_method=args.distance_method,
        figures=not args.no_figures,
    )
    print(Path(paths["markdown"]).read_text(encoding="utf-8"))
    for kind, path in paths.items():
        print(f"{kind}: {path}")
    return 0
