"""``runet export MODEL EXPORT_BASE [--version N]``: a SavedModel for TF Serving.

Writes ``EXPORT_BASE/<version>/`` (TF Serving's layout) atomically, with the ``.keras`` file,
a metadata JSON and TF Serving's warmup requests (``tf_serving_warmup_requests``, when
tensorflow-serving-api is installed) under ``assets.extra/``. See :mod:`keras_runet.export`
and docs/serving.md for the signatures.
"""

from __future__ import annotations

import argparse

from keras_runet.commands import _common
from keras_runet.commands._common import UsageError

NAME = "export"
HELP = "export a trained model as a SavedModel for TF Serving (EXPORT_BASE/<version>/)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the options of ``runet export``."""
    parser.add_argument("model", metavar="MODEL", help="a .keras file or a .weights.h5 checkpoint")
    parser.add_argument("export_base", metavar="EXPORT_BASE", help="TF Serving's model base path")
    parser.add_argument(
        "--version", type=int, help="version number (default: one more than the highest)"
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace an existing version (atomically)"
    )
    parser.add_argument(
        "--training-data",
        metavar="TEXT",
        help="what the model was trained on (recorded in the metadata JSON)",
    )
    _common.add_architecture_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Runs ``runet export``."""
    _common.require_graph_backend("runet export")
    from keras_runet.export import (
        EXTRA_DIR,
        WARMUP_NAME,
        ExportError,
        export_metadata,
        export_model,
        stale_temporaries,
    )

    model = _common.load_model_from_args(args)
    try:
        version_dir = export_model(
            model,
            args.export_base,
            version=args.version,
            overwrite=args.overwrite,
            training_data=args.training_data,
            source=args.model,
        )
    except ExportError as err:
        raise UsageError(str(err)) from None
    for leftover in stale_temporaries(args.export_base):
        print(f"note: {leftover} is left from a killed export (TF Serving ignores it; delete it)")
    meta = export_metadata(model)
    print(f"exported {meta['model_kind']} ({meta['parameters']:,} parameters) to {version_dir}")
    for name, sig in meta["signatures"].items():
        inputs = ", ".join(f"{k}: {v}" for k, v in sig["inputs"].items())
        print(f"  {name}({inputs}) -> {', '.join(sig['outputs'])}")
    warmup = version_dir / EXTRA_DIR / WARMUP_NAME
    if warmup.is_file():
        print(f"  warmup: {warmup.relative_to(version_dir)} (one request per signature)")
    else:
        print(
            f"note: no {EXTRA_DIR}/{WARMUP_NAME} (needs tensorflow-serving-api): "
            "TF Serving's first request to this version pays the lazy initialisation"
        )
    return 0
