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
The training flags are those of ``runet train`` (:class:`keras_runet.config.TrainConfig`);
their defaults here are the setting's (:data:`SETTINGS`).
The synthetic images are not CAMUS: the numbers show that the pipeline works, not how the
models compare on real echocardiography.
"""

from __future__ import annotations

import time
from pathlib import Path

NAME = "demo"
HELP = "run the whole pipeline on a synthetic CAMUS (train, evaluate, report, export)"

AUTO_DTYPE = "auto"
# The two settings. Full: CAMUS-size images, 40 patients (4 per fold group), 128 x 128
# models of half width, ~5 minutes on 2 cores; mixed bfloat16 where the CPU multiplies
# bfloat16 in hardware (AVX512_BF16 / AMX: ~1.8x float32), else float32 (emulated bfloat16 is
# several times slower): "auto", resolved by config.cpu_has_fast_bfloat16.
# The training values override TrainConfig's defaults; a training flag given overrides them.
SETTINGS = {
    "full": dict(
        data=dict(patients=40, scale=1.0, config="256"),
        train=dict(image_size=(128, 128), width=0.5, epochs=25, batch_size=8,
                   dtype=AUTO_DTYPE, patience=0),
    ),
    "quick": dict(
        data=dict(patients=10, scale=0.3, config="256"),
        train=dict(image_size=(64, 64), width=0.25, epochs=2, batch_size=8, dtype=None,
                   patience=0),
    ),
}  # fmt: skip
MODELS = ("unet1", "runet")


def add_arguments(p):
    from keras_runet.commands import _common

    p.add_argument("--out", default="runet_demo", help="run directory (default: ./runet_demo)")
    p.add_argument("--quick", action="store_true", help="toy size, about a minute")
    _common.add_workers_argument(p)
    _common.add_training_arguments(
        p,
        title="training (defaults: the full or --quick setting, see keras_runet.commands.demo)",
        default_note="the setting's",
    )


def run(args) -> int:
    from keras_runet.commands import _common

    _common.setup_logging()
    setting = SETTINGS["quick" if args.quick else "full"]
    data = setting["data"]
    train = dict(setting["train"])
    if train["dtype"] == AUTO_DTYPE:
        from keras_runet.config import cpu_has_fast_bfloat16

        train["dtype"] = "mixed_bfloat16" if cpu_has_fast_bfloat16() else None
    config = _common.train_config_from_args(args, MODELS[0], **train)
    workers = _common.workers_from_args(args)
    out = _common.output_dir(args.out)
    start = time.perf_counter()

    def step(text):
        print(f"[demo {time.perf_counter() - start:6.0f} s] {text}", flush=True)

    from tfds_camus import phantom

    camus = out / "camus"
    step(f"writing a synthetic CAMUS of {data['patients']} patients to {camus} (kept for reruns)")
    root = phantom.write_synthetic_camus(
        camus,
        num_patients=data["patients"],
        seed=config.seed,
        scale=data["scale"],
        per_group=True,
        reuse=True,
        workers=2,
    )

    step("preparing the TFDS camus dataset")
    from keras_runet.data import prepare_camus

    builder = prepare_camus(root, out / "tfds", data["config"])
    splits = {k: v.num_examples for k, v in builder.info.splits.items()}
    step(f"prepared {builder.info.full_name}: " + ", ".join(f"{k} {v}" for k, v in splits.items()))

    from keras.config import backend as keras_backend

    from keras_runet.cross_validation import cross_validate
    from keras_runet.training import plot_history

    height, width = config.image_size
    step(
        f"training {' and '.join(MODELS)} on fold 1 ({config.epochs} epochs, "
        f"{height}x{width}, width {config.width}, {config.dtype or 'float32'}, Keras on "
        f"{keras_backend()}), "
        "then evaluating the held-out patients on their native grid"
    )
    result = cross_validate(
        builder,
        list(MODELS),
        [1],
        out / "cv",
        config,
        workers=workers,
        progress=step,
    )
    curves = plot_history(
        {m: out / "cv" / m / "fold1" / "history.csv" for m in MODELS},
        out / "cv" / "training_curves.png",
    )

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
            training_data=f"synthetic CAMUS ({data['patients']} patients), fold 1",
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
