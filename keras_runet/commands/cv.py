"""`runet cv`: the paper's 10-fold cross-validation of one or more models, with the report.

``--postprocess`` and ``--thresholds`` are evaluation settings: a rerun with other ones
evaluates the saved predictions of the finished folds again, without training
(:func:`keras_runet.cross_validation.run_fold`).
"""

from __future__ import annotations

from pathlib import Path

from keras_runet.commands import _common

NAME = "cv"
HELP = "cross-validate models on the paper's folds; writes the Table II style report"


def add_arguments(p):
    _common.add_data_arguments(p)
    p.add_argument(
        "--models", default="unet1,shg,runet", help="comma-separated (default: all three)"
    )
    p.add_argument("--folds", default="all", help="e.g. 1, 1,2 or 1-10 (default: all)")
    p.add_argument("--out", required=True, help="run directory (all artefacts)")
    _common.add_workers_argument(p)
    _common.add_postprocess_argument(p)
    _common.add_thresholds_argument(p)
    p.add_argument("--progress-bar", action="store_true", help="Keras progress bars too")
    p.add_argument(
        "--force",
        action="store_true",
        help="discard the folds of an earlier run in --out trained with other settings",
    )
    _common.add_training_arguments(p)


def run(args) -> int:
    from keras_runet.commands._common import RunFailed, UsageError

    _common.setup_logging()
    out = _common.output_dir(args.out)
    models = _common.parse_models(args.models)
    folds = _common.parse_folds(args.folds)
    workers = _common.workers_from_args(args)
    thresholds = _common.thresholds_from_args(args)
    config = _common.train_config_from_args(args, models[0])
    builder = _common.get_builder(args)
    from keras_runet.cross_validation import (
        SettingsMismatchError,
        cross_validate,
        fold_split_strings,
        format_fold_protocol,
        run_protocol,
    )
    from keras_runet.training import NonFiniteLossError

    for k in folds:
        try:
            fold_split_strings(builder, k)
        except ValueError as err:
            raise UsageError(str(err)) from None
    print(f"Patients per fold in {builder.info.full_name}, and the settings against the paper:")
    for line in format_fold_protocol(run_protocol(builder, folds, config)):
        print(f"  {line}")
    print(flush=True)
    try:
        result = cross_validate(
            builder,
            models,
            folds,
            out,
            config,
            workers=workers,
            postprocess=args.postprocess,
            thresholds=thresholds,
            verbose=_common.keras_verbosity(args.progress_bar),
            progress=lambda line: print(line, flush=True),
            force=args.force,
        )
    except SettingsMismatchError as err:
        raise UsageError(str(err)) from None
    except NonFiniteLossError as err:
        raise RunFailed(str(err)) from None
    print()
    print(Path(result["paths"]["markdown"]).read_text())
    for key, path in result["paths"].items():
        print(f"{key}: {path}")
    return 0
