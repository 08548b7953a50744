"""``runet evaluate``: evaluate saved predictions against a CAMUS download.

Predictions are files named like the CAMUS images (``patient0001_2CH_ED.npy``, ``.npz``,
``.png``, ``.nii.gz``, ``.mhd``; a suffix such as ``_coarse`` names the output), in one
folder per model, read by :mod:`keras_runet.prediction_files` (what each kind may hold).
References, spacings, image quality and the ``Info_*.cfg`` volumes come from the CAMUS
folder (either release).

Writes ``report.md`` (also printed), ``report.json``, ``per_image.csv``,
``hd_distribution.png`` and ``worst_cases.png`` into ``--out``; with ``--postprocess both``
also ``per_image_postprocessed.csv`` (the same predictions post-processed).

Or evaluate a trained model on a prepared dataset split (no prediction files)::

    runet evaluate --model-file best.keras --data-dir DATA [--fold K | --split S] --out DIR

which predicts the split, brings every output back to the native grid and writes the same
report (:func:`keras_runet.cross_validation.evaluate_model_on_split`); a RU-Net's rows carry
``roi_fraction``, the mean of its ROI mask.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from keras_runet.commands import _common
from keras_runet.commands._common import UsageError

NAME = "evaluate"
HELP = "Evaluate saved predictions against CAMUS references (Dice, MAD, HD, outliers, EF)."


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
    _common.add_postprocess_argument(parser)
    _common.add_workers_argument(parser)
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
    _common.add_thresholds_argument(parser)
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


def run(args: argparse.Namespace) -> int:
    """Runs ``runet evaluate``; returns the exit code."""
    _common.setup_logging()  # the evaluation's progress lines when stderr is not a terminal
    _common.output_dir(args.out)
    workers = _common.workers_from_args(args)
    if args.model_file:
        return _run_on_model(args, workers)
    if not args.pred or not args.camus:
        raise UsageError("give --pred DIR and --camus DIR, or --model-file and --data-dir")
    camus = Path(args.camus)
    if not camus.is_dir():
        raise UsageError(f"--camus {camus}: not a directory")
    if args.worst < 0:
        raise UsageError(f"--worst must be >= 0, got {args.worst}")
    from keras_runet.prediction_files import PredictionFileError

    thresholds = _common.thresholds_from_args(args)
    try:
        return _run_on_files(args, camus, workers, thresholds)
    except PredictionFileError as err:
        raise UsageError(str(err)) from None


def _run_on_files(args, camus: Path, workers: int, thresholds) -> int:
    from keras_runet import evaluation as ev
    from keras_runet import prediction_files as pf
    from keras_runet.evaluation.figures import case_title, plot_worst_cases, worst_indices
    from keras_runet.evaluation.reports import evaluate_modes

    try:
        from tfds_camus import reader

        camus = reader.detect_layout(camus)  # once: every reference is read through it
    except (OSError, ValueError) as err:
        raise UsageError(f"--camus {camus}: {err}") from None

    entries = []
    for model, folder in pf.parse_prediction_folders(args.pred, args.model):
        entries.extend(pf.find_predictions(model, folder, args.output))
    # Sorted by image so that a reference is read once and reused by every model.
    entries.sort(key=lambda e: (e["patient_id"], e["view"], e["instant"], e["model"]))

    sources: list = []
    references: dict = {}
    passes = iter([(sources, references)])  # the first pass notes the files and the cfgs

    def items():  # read again for each pass ("both"): the files are not all held
        noted = next(passes, ([], {}))
        return pf.evaluation_items(entries, camus, *noted)

    rows, post_rows = evaluate_modes(
        items,
        args.postprocess,
        workers=workers,
        thresholds=thresholds,
        distance_method=args.distance_method,
    )
    out = Path(args.out)
    paths = ev.write_report(
        rows,
        out,
        thresholds=thresholds,
        references=references if args.ef_reference == "cfg" else None,
        figures=not args.no_figures,
        postprocessed_rows=post_rows,
    )
    if not args.no_figures and args.worst:
        cases = []
        for i in worst_indices(rows, args.worst):
            entry, output = sources[i]
            ref = pf.load_reference(camus, entry["patient_id"], entry["view"], entry["instant"], {})
            pred = pf.load_prediction(entry, ref["gt"].shape)[output]
            if args.postprocess == "post":  # the primary rows are post-processed
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


def _run_on_model(args: argparse.Namespace, workers: int) -> int:
    """``runet evaluate --model-file M --data-dir D [--fold K | --split S]``."""
    if args.pred or args.camus:
        raise UsageError("--model-file evaluates a dataset split: drop --pred / --camus")
    if not args.data_dir:
        raise UsageError("--model-file needs --data-dir (the prepared camus dataset)")
    if (args.fold is None) == (args.split is None):
        raise UsageError("give one of --fold K or --split SPLIT with --model-file")
    model_path = Path(args.model_file)
    if not model_path.is_file():
        raise UsageError(f"--model-file {model_path}: no such file")
    thresholds = _common.thresholds_from_args(args)
    import keras_runet.models  # noqa: F401  (registers the custom objects before the load)
    from keras_runet.cross_validation import evaluate_model_on_split
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
        split = _common.fold_split(builder, args.fold, "test")
    else:
        split = _common.check_split(builder, args.split)
    _, paths = evaluate_model_on_split(
        model,
        builder,
        split,
        args.out,
        model_name=args.model,
        workers=workers,
        thresholds=thresholds,
        postprocess=args.postprocess,
        distance_method=args.distance_method,
        figures=not args.no_figures,
    )
    print(Path(paths["markdown"]).read_text(encoding="utf-8"))
    for kind, path in paths.items():
        print(f"{kind}: {path}")
    return 0
