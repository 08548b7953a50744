"""`runet demo`: the whole pipeline on a synthetic CAMUS, from nothing, on a CPU.

Steps (each a real code path of the package, nothing precomputed):

1. write a synthetic CAMUS (2023 NIfTI layout) with patients in all ten fold groups;
2. prepare it with the TFDS ``camus`` builder;
3. train U-Net 1 and RU-Net on fold 1 of the paper's split (training groups 3-10,
   model selection on group 2), resumable;
4. predict the held-out test patients (group 1), bring the predictions back to the native
   grid and evaluate them in mm (Dice, MAD, HD, convexity, simplicity, outliers, EF);
5. print the Table II style report; draw the training curves, the HD distribution and
   overlays of the worst cases;
6. export the RU-Net as a TF Serving SavedModel.

``--quick`` runs it at toy size (tiny images and networks, 2 epochs) in about a minute.
The synthetic images are not CAMUS: the numbers show that the pipeline works, not how the
models compare on real echocardiography.
"""

from __future__ import annotations

import time
from pathlib import Path

NAME = "demo"
HELP = "run the whole pipeline on a synthetic CAMUS (train, evaluate, report, export)"

# The two settings. Full: CAMUS-size images, 40 patients (4 per fold group), 128 x 128
# models of half width, mixed bfloat16 (fast on CPUs with AMX), ~5 minutes on 2 cores.
SETTINGS = {
    "full": dict(
        patients=40, scale=1.0, image_size=(128, 128), width=0.5, epochs=25, batch_size=8,
        dtype="mixed_bfloat16", config="256",
    ),
    "quick": dict(
        patients=10, scale=0.3, image_size=(64, 64), width=0.25, epochs=2, batch_size=8,
        dtype=None, config="256",
    ),
}  # fmt: skip


def add_arguments(p):
    p.add_argument("--out", default="runet_demo", help="run directory (default: ./runet_demo)")
    p.add_argument("--quick", action="store_true", help="toy size, about a minute")
    p.add_argument("--seed", type=int, default=0, help="random seed (0)")
    p.add_argument("--epochs", type=int, help="override the number of epochs")
    p.add_argument("--workers", type=int, default=2, help="evaluation processes (2)")


def _plot_curves(run_dir: Path, models, path: Path) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from keras_runet.training import read_history

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    drawn = False
    for model in models:
        hist = read_history(run_dir / model / "fold1" / "history.csv")
        if not hist:
            continue
        epochs = [int(h["epoch"]) + 1 for h in hist]
        axes[0].plot(epochs, [h["loss"] for h in hist], label=f"{model} train")
        axes[0].plot(epochs, [h["val_loss"] for h in hist], "--", label=f"{model} val")
        axes[1].plot(epochs, [h["segmentation_dice"] for h in hist], label=f"{model} train")
        axes[1].plot(epochs, [h["val_segmentation_dice"] for h in hist], "--", label=f"{model} val")
        drawn = True
    if not drawn:
        plt.close(fig)
        return None
    axes[0].set(xlabel="epoch", ylabel="loss (sum of outputs' Dice losses)", title="Loss")
    axes[1].set(xlabel="epoch", ylabel="Dice (LV, myocardium, LA)", title="Segmentation Dice")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
    return path


def run(args) -> int:
    from keras_runet.cli import UsageError
    from keras_runet.commands._common import setup_logging

    setup_logging()
    setting = dict(SETTINGS["quick" if args.quick else "full"])
    if args.epochs is not None:
        if args.epochs < 1:
            raise UsageError(f"--epochs must be at least 1, got {args.epochs}")
        setting["epochs"] = args.epochs
    out = Path(args.out).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()

    def step(text):
        print(f"[demo {time.perf_counter() - start:6.0f} s] {text}", flush=True)

    from keras_runet.commands.synth import patients_per_group
    from tfds_camus import phantom

    camus = out / "camus"
    marker = camus / ".complete"
    if marker.exists():
        step(f"synthetic CAMUS already in {camus}")
        root = Path(marker.read_text().strip())
    else:
        step(f"writing a synthetic CAMUS of {setting['patients']} patients to {camus}")
        root = phantom.write_synthetic_camus(
            camus,
            num_patients=setting["patients"],
            seed=args.seed,
            scale=setting["scale"],
            patient_ids=patients_per_group(setting["patients"]),
            workers=2,
        )
        marker.write_text(str(root))

    step("preparing the TFDS camus dataset")
    from keras_runet.data import prepare_camus

    builder = prepare_camus(root, out / "tfds", setting["config"])
    splits = {k: v.num_examples for k, v in builder.info.splits.items()}
    step(f"prepared {builder.info.full_name}: " + ", ".join(f"{k} {v}" for k, v in splits.items()))

    from keras_runet.cross_validation import cross_validate
    from keras_runet.training import TrainConfig

    config = TrainConfig(
        image_size=setting["image_size"],
        width=setting["width"],
        epochs=setting["epochs"],
        batch_size=setting["batch_size"],
        dtype=setting["dtype"],
        patience=0,
        seed=args.seed,
    )
    models = ["unet1", "runet"]
    step(
        f"training {' and '.join(models)} on fold 1 ({setting['epochs']} epochs, "
        f"{setting['image_size'][0]}x{setting['image_size'][1]}, width {setting['width']}), "
        "then evaluating the held-out patients on their native grid"
    )
    result = cross_validate(
        builder,
        models,
        [1],
        out / "cv",
        config,
        workers=args.workers,
        progress=step,
    )
    curves = _plot_curves(out / "cv", models, out / "cv" / "training_curves.png")

    step("exporting RU-Net for TF Serving")
    from keras_runet.export import export_model

    export_base = out / "export" / "runet"
    best = out / "cv" / "runet" / "fold1" / "best.keras"
    existing = (
        sorted(p for p in export_base.glob("[0-9]*") if p.is_dir()) if export_base.exists() else []
    )
    version_dir = (
        existing[-1]
        if existing
        else export_model(
            str(best),
            export_base,
            version=1,
            training_data=f"synthetic CAMUS ({setting['patients']} patients), fold 1",
        )
    )

    print()
    print(Path(result["paths"]["markdown"]).read_text())
    print("Artefacts:")
    paths = dict(result["paths"])
    if curves:
        paths["training_curves"] = curves
    paths["savedmodel"] = version_dir / "saved_model.pb"
    for key, path in paths.items():
        print(f"  {key}: {path}")
    step("done. Synthetic data: these numbers show the pipeline works, not how the models "
         "compare on real CAMUS.")  # fmt: skip
    return 0
