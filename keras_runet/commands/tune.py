"""`runet tune`: KerasTuner search over RU-Net's dil and shift, resumable, distributed.

Examples::

    runet tune --data-dir ~/tfds --fold 1 --out studies/fold1 --oracle bayesian \\
        --objective outliers --max-trials 20 --epochs 30
    runet tune ... --oracle grid --dil-values 11,30 --shift-values 0.5,0.7   # the paper's
    runet tune ... --retrain-best --export-best /models/runet               # then serve
    runet tune --summary studies/fold1      # KerasTuner's results summary; trains nothing
    tensorboard --logdir studies/fold1      # the HParams dashboard: every trial

Distributed (KerasTuner's chief / worker mode): the same command on every machine, plus
``--tuner-id chief`` (serves the oracle) or ``--tuner-id tuner0``, ``tuner1``, ... (run
trials) and ``--oracle-ip`` / ``--oracle-port`` of the chief; or the KERASTUNER_TUNER_ID,
KERASTUNER_ORACLE_IP and KERASTUNER_ORACLE_PORT environment variables. See docs/tuning.md.
"""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

from keras_runet.commands import _common

NAME = "tune"
HELP = "KerasTuner search over RU-Net's dil and shift (resumable; chief/worker distributed)"

OBJECTIVE_CHOICES = ("dice", "outliers", "geometric", "anatomical")
ORACLE_CHOICES = ("random", "grid", "hyperband", "bayesian")


def add_arguments(p):
    # --summary reads a study and needs no data: run() asks for --data-dir otherwise.
    _common.add_data_arguments(p, required=False)
    p.add_argument("--fold", default="1", help="fold whose train / validation split to use (1)")
    p.add_argument("--out", help="study directory (rerun to resume); required unless --summary")
    p.add_argument(
        "--summary",
        metavar="STUDY_DIR",
        help="print KerasTuner's results summary of that study (best trials, their "
        "hyper-parameters and scores) and exit: no data, no training",
    )
    g = p.add_argument_group("search")
    g.add_argument("--oracle", choices=ORACLE_CHOICES, default="random", help="(random)")
    g.add_argument(
        "--objective",
        choices=OBJECTIVE_CHOICES,
        default="outliers",
        help="dice: maximise val_segmentation_dice; outliers / geometric / anatomical: "
        "minimise the validation outlier rate of that kind (outliers: either kind) "
        "(default: outliers)",
    )
    g.add_argument("--max-trials", type=int, default=10, help="trials of the study (10)")
    g.add_argument("--dil-range", default="3,40", help="LOW,HIGH of dil (3,40)")
    g.add_argument("--dil-step", type=int, default=1, help="step of dil in its range (1)")
    g.add_argument("--dil-values", help="explicit dil values instead, e.g. 11,30")
    g.add_argument("--shift-range", default="0.1,0.9", help="LOW,HIGH of shift (0.1,0.9)")
    g.add_argument("--shift-step", type=float, help="step of shift (grid; default continuous)")
    g.add_argument("--shift-values", help="explicit shift values instead, e.g. 0.5,0.7")
    g.add_argument(
        "--roi-classes-values",
        help="also search RU-Net's ROI classes, e.g. all,lvepi (default: fixed, --roi-classes)",
    )
    g.add_argument(
        "--roi-kernel-values",
        help="also search the dilation kernel, e.g. box,disk (default: fixed, --roi-kernel)",
    )
    g.add_argument(
        "--roi-slope-values",
        help="also search the sigmoids' slope, e.g. 50,100 (default: fixed, --roi-slope)",
    )
    g.add_argument("--tune-lr", action="store_true", help="also tune the learning rate")
    g.add_argument("--lr-range", default="1e-4,1e-2", help="LOW,HIGH of the lr (1e-4,1e-2)")
    g.add_argument(
        "--tune-loss-weights", action="store_true", help="also tune the coarse output's weight"
    )
    g.add_argument(
        "--loss-weight-range", default="0.1,2.0", help="LOW,HIGH of that weight (0.1,2.0)"
    )
    g.add_argument("--hyperband-factor", type=int, default=3, help="Hyperband's factor (3)")
    g.add_argument("--overwrite", action="store_true", help="delete the study and start over")
    _common.add_workers_argument(g)
    # The spelling of versions <= 0.1, kept working, not listed.
    g.add_argument(
        "--eval-workers",
        type=int,
        dest="workers",
        default=argparse.SUPPRESS,
        help=argparse.SUPPRESS,
    )
    # The flags of TrainConfig, as in `runet train`; dil and shift are searched, and a trial
    # trains for fewer epochs than a run of `runet train` (Hyperband: its largest budget).
    _common.add_training_arguments(
        p, title="training of each trial", defaults={"epochs": 30}, exclude=("dil", "shift")
    )
    b = p.add_argument_group("best model")
    b.add_argument(
        "--retrain-best", action="store_true", help="retrain the best hps; save OUT/best.keras"
    )
    b.add_argument("--retrain-epochs", type=int, help="epochs of that retraining (--epochs)")
    b.add_argument(
        "--export-best",
        metavar="EXPORT_BASE",
        help="export the best model for TF Serving to EXPORT_BASE/<version>/",
    )
    b.add_argument("--export-version", type=int, help="version number (default: next free)")
    d = p.add_argument_group(
        "distributed (KerasTuner chief / workers; default: the KERASTUNER_* variables)"
    )
    d.add_argument("--tuner-id", help="chief (serves the oracle) or tuner0, tuner1, ... (workers)")
    d.add_argument(
        "--chief", dest="tuner_id", action="store_const", const="chief", help="= --tuner-id chief"
    )
    d.add_argument("--oracle-ip", help="the chief's address (KERASTUNER_ORACLE_IP)")
    d.add_argument("--oracle-port", type=int, help="the chief's port (KERASTUNER_ORACLE_PORT)")
    p.add_argument("--no-figure", action="store_true", help="no objective.png")
    p.add_argument("--verbose", action="store_true", help="Keras progress bars, debug logs")


def _pair(value: str, option: str, kind=float) -> tuple:
    from keras_runet.commands._common import UsageError

    try:
        parts = [kind(v) for v in value.split(",")]
    except ValueError:
        raise UsageError(f"bad {option} {value!r}: use LOW,HIGH, e.g. 3,40") from None
    if len(parts) != 2 or parts[0] > parts[1]:
        raise UsageError(f"bad {option} {value!r}: use LOW,HIGH with LOW <= HIGH")
    return tuple(parts)


def _values(value: str | None, option: str, kind=float):
    from keras_runet.commands._common import UsageError

    if value is None:
        return None
    try:
        parts = [kind(v.strip()) for v in value.split(",") if v.strip()]
    except ValueError:
        raise UsageError(f"bad {option} {value!r}: use comma-separated numbers") from None
    if not parts:
        raise UsageError(f"bad {option} {value!r}: give at least one value")
    return tuple(parts)


def _set_distributed_env(args) -> None:
    """Set KERASTUNER_* from the options (options win over the environment)."""
    from keras_runet.commands._common import UsageError

    given = {
        "KERASTUNER_TUNER_ID": args.tuner_id,
        "KERASTUNER_ORACLE_IP": args.oracle_ip,
        "KERASTUNER_ORACLE_PORT": None if args.oracle_port is None else str(args.oracle_port),
    }
    for var, value in given.items():
        if value is not None:
            os.environ[var] = value
    present = [v for v in given if os.environ.get(v)]
    if present and len(present) < 3:
        missing = [v for v in given if v not in present]
        raise UsageError(
            f"distributed tuning needs a tuner id, the oracle's ip and port; missing "
            f"{', '.join(missing)} (options --tuner-id, --oracle-ip, --oracle-port)"
        )
    if args.oracle_port is not None and not 0 < args.oracle_port < 65536:
        raise UsageError(f"bad --oracle-port {args.oracle_port}: use 1..65535")


def _space(args):
    from keras_runet.commands._common import UsageError
    from keras_runet.tuning import SearchSpace

    try:
        return SearchSpace(
            dil_range=_pair(args.dil_range, "--dil-range", int),
            dil_step=args.dil_step,
            dil_values=_values(args.dil_values, "--dil-values", int),
            shift_range=_pair(args.shift_range, "--shift-range"),
            shift_step=args.shift_step,
            shift_values=_values(args.shift_values, "--shift-values"),
            roi_classes_values=_values(args.roi_classes_values, "--roi-classes-values", str),
            roi_kernel_values=_values(args.roi_kernel_values, "--roi-kernel-values", str),
            roi_slope_values=_values(args.roi_slope_values, "--roi-slope-values"),
            tune_learning_rate=args.tune_lr,
            learning_rate_range=_pair(args.lr_range, "--lr-range"),
            tune_loss_weights=args.tune_loss_weights,
            coarse_loss_weight_range=_pair(args.loss_weight_range, "--loss-weight-range"),
        )
    except ValueError as err:
        raise UsageError(str(err)) from None


def _fmt(value) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def _summary(value: str) -> int:
    """``--summary STUDY_DIR``: KerasTuner's ``results_summary()`` of the study."""
    from keras_runet.commands._common import UsageError

    study_dir = _common.existing_dir(value, "--summary")
    from keras_runet import tuning

    try:
        tuner = tuning.load_tuner(study_dir)
    except FileNotFoundError as err:
        raise UsageError(f"--summary: {err}") from None
    tuner.results_summary()
    return 0


def run(args) -> int:
    from keras_runet.commands._common import UsageError

    _common.setup_logging(args.verbose)
    if args.summary is not None:
        return _summary(args.summary)
    missing = [f for f, v in (("--data-dir", args.data_dir), ("--out", args.out)) if v is None]
    if missing:
        raise UsageError(
            f"the following arguments are required: {', '.join(missing)} (or --summary STUDY_DIR)"
        )
    if args.max_trials < 1:
        raise UsageError(f"--max-trials must be at least 1, got {args.max_trials}")
    config = _common.train_config_from_args(args, "runet")
    workers = _common.workers_from_args(args)
    if args.oracle == "hyperband" and config.epochs < 2:
        raise UsageError(f"--oracle hyperband needs --epochs >= 2 (its largest budget), got {config.epochs}")  # fmt: skip
    space = _space(args)
    if args.oracle == "grid" and not space.is_finite():
        raise UsageError(
            "--oracle grid needs a finite grid: give --shift-step (e.g. 0.2) or --shift-values, "
            "without --tune-lr / --tune-loss-weights"
        )
    (fold,) = _common.parse_folds(args.fold)[:1]
    _set_distributed_env(args)

    from keras_runet import tuning

    try:
        role = tuning.distributed_role()
    except ValueError as err:
        raise UsageError(str(err)) from None
    out = _common.output_dir(args.out)
    splits, builder, train_ds, val_ds = None, None, None, None
    needs_data = role != "chief" or args.retrain_best
    if needs_data:
        builder = _common.get_builder(args)
        from keras_runet.cross_validation import fold_split_strings

        try:
            splits = fold_split_strings(builder, fold)
        except ValueError as err:
            raise UsageError(str(err)) from None
        train_ds = builder.as_dataset(split=splits["train"])
        val_ds = builder.as_dataset(split=splits["validation"])
    data = f"camus/{args.config} fold {fold}"
    try:
        result = tuning.run_search(
            out,
            train_ds,
            val_ds,
            base_config=config,
            space=space,
            oracle=args.oracle,
            objective=args.objective,
            max_trials=args.max_trials,
            seed=config.seed,
            eval_workers=workers,
            fit_verbose=_common.keras_verbosity(args.verbose),
            overwrite=args.overwrite,
            figure=not args.no_figure,
            data_description=data,
            hyperband_factor=args.hyperband_factor,
        )
    except ValueError as err:
        if "another configuration" in str(err):
            raise UsageError(str(err)) from None
        raise
    if role == "worker":
        print(f"worker {os.environ['KERASTUNER_TUNER_ID']}: ran {result.trials_run} trial(s)")
        return 0
    _print_table(result.rows)
    bad = [r["trial_id"] for r in result.rows if r["status"] != "COMPLETED"]
    if bad:
        print(f"not completed: trial(s) {', '.join(bad)} (see their trial.json messages)")
    print(f"results: {result.paths['results_csv']}")
    if "figure" in result.paths:
        print(f"figure: {result.paths['figure']}")
    best = result.best
    if best is None:
        print("no completed trial: no best hyper-parameters")
        return 1
    hps = [f"dil={best['dil']}", f"shift={_fmt(best['shift'])}"]
    for name in ("roi_classes", "roi_kernel", "roi_slope"):
        if best.get(name) is not None:
            hps.append(f"{name}={_fmt(best[name])}")
    if best.get("learning_rate") is not None:
        hps.append(f"learning_rate={_fmt(best['learning_rate'])}")
    if best.get("coarse_loss_weight") is not None:
        hps.append(f"coarse_loss_weight={_fmt(best['coarse_loss_weight'])}")
    objective = tuning.make_objective(args.objective)
    print(
        f"best: trial {best['trial_id']}: {' '.join(hps)} "
        f"({objective.name} {_fmt(best[objective.name])}, {objective.direction}imised)"
    )
    model_path = None
    if args.retrain_best:
        model_path = tuning.retrain_best(
            out,
            train_ds,
            val_ds,
            epochs=args.retrain_epochs,
            fit_verbose=_common.keras_verbosity(args.verbose),
        )
        print(f"retrained best model: {model_path}")
    if args.export_best:
        from keras_runet.export import ExportError, export_model

        if model_path is None:
            model_path = (
                out / tuning.PROJECT_NAME / f"trial_{best['trial_id']}" / "run" / "best.keras"
            )
            if not model_path.exists():
                raise UsageError(
                    f"the best trial's model {model_path} is not on this machine; "
                    "add --retrain-best"
                )
        try:
            version_dir = export_model(
                model_path,
                Path(args.export_best).expanduser(),
                version=args.export_version,
                training_data=f"{data}; runet tune {args.out} trial {best['trial_id']}",
            )
        except ExportError as err:
            raise UsageError(str(err)) from None
        print(f"exported: {version_dir}")
    return 0


def _print_table(rows) -> None:
    cols = [
        ("trial", "trial_id"),
        ("status", "status"),
        ("dil", "dil"),
        ("shift", "shift"),
        ("roi_classes", "roi_classes"),
        ("kernel", "roi_kernel"),
        ("slope", "roi_slope"),
        ("lr", "learning_rate"),
        ("coarse_w", "coarse_loss_weight"),
        ("epochs", "epochs"),
        ("val_dice", "val_segmentation_dice"),
        ("outliers", "val_outlier_rate"),
        ("geometric", "val_geometric_outlier_rate"),
        ("anatomical", "val_anatomical_outlier_rate"),
        ("roi", "val_roi_fraction"),
        ("seconds", "seconds"),
    ]
    used = [(h, k) for h, k in cols if any(r.get(k) is not None for r in rows)]
    cells = [[h for h, _ in used]] + [[_fmt(r.get(k)) + ("*" if k == "trial_id" and r["is_best"] else "") for _, k in used] for r in rows]  # fmt: skip
    widths = [max(len(row[i]) for row in cells) for i in range(len(used))]
    for row in cells:
        print("  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)))
