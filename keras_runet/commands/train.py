"""`runet train`: train one model on one fold of the paper's cross-validation (resumable)."""

from __future__ import annotations

from keras_runet.commands import _common

NAME = "train"
HELP = "train one model on one fold (rerun the same command to resume after a kill)"


def add_arguments(p):
    _common.add_data_arguments(p)
    p.add_argument(
        "--model", default="runet", help=f"{', '.join(_common.model_choices())} (default: runet)"
    )
    p.add_argument("--fold", default="1", help="fold of the paper's 10 (1..10, default 1)")
    p.add_argument(
        "--split",
        nargs=2,
        metavar=("TRAIN", "VALIDATION"),
        help="explicit TFDS split strings instead of --fold (e.g. train validation: the "
        "2023 release's own split)",
    )
    p.add_argument("--out", required=True, help="run directory (checkpoints, logs)")
    p.add_argument("--force", action="store_true", help="start over even if finished")
    p.add_argument("--quiet", action="store_true", help="a log line per epoch, no bar")
    _common.add_training_arguments(p)


def run(args) -> int:
    from keras_runet.commands._common import RunFailed, UsageError

    _common.setup_logging()
    out = _common.output_dir(args.out)
    model = _common.parse_models(args.model)
    if len(model) != 1:
        raise UsageError("--model takes one model; use `runet cv` for several")
    config = _common.train_config_from_args(args, model[0])
    builder = _common.get_builder(args)
    if args.split:
        train_split, val_split = (_common.check_split(builder, s) for s in args.split)
    else:
        (fold,) = _common.parse_folds(args.fold) or [1]
        train_split = _common.fold_split(builder, fold, "train")
        val_split = _common.fold_split(builder, fold, "validation")
    from keras_runet.training import NonFiniteLossError, train

    try:
        result = train(
            config,
            builder.as_dataset(split=train_split),
            builder.as_dataset(split=val_split),
            out,
            verbose=2 if args.quiet else _common.keras_verbosity(),
            force=args.force,
        )
    except NonFiniteLossError as err:
        raise RunFailed(str(err)) from None
    except ValueError as err:
        if "another configuration" in str(err):
            raise UsageError(str(err)) from None
        raise
    state = "already finished" if result.skipped else "finished"
    if result.resumed_from and not result.skipped:
        state += f" (resumed after epoch {result.resumed_from})"
    print(
        f"{config.model} (preset {config.preset}): {state}, {result.epochs_run} epochs, best val_segmentation_dice "
        f"{result.best_score:.4f}; best model: {result.best_path}"
    )
    return 0
