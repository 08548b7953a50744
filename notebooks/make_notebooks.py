"""Write the notebooks of this folder from the cells below.

The ``.ipynb`` files are generated: edit this script, not the notebooks, then run

    python notebooks/make_notebooks.py           # rewrite the notebooks
    python notebooks/make_notebooks.py --check   # exit 1 if a notebook is out of date

and commit both. The notebooks are written without outputs or execution counts, with
fixed cell ids, so the same cells always give the same files (tests/test_notebooks.py
checks that the committed notebooks are what this script writes). Code cells must pass
``ruff check`` and ``ruff format --check`` as they are.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
REPO = "keras-runet/keras-runet"
BRANCH = "main"


def colab_url(name: str) -> str:
    """The "Open in Colab" address of notebook ``name``."""
    return f"https://colab.research.google.com/github/{REPO}/blob/{BRANCH}/notebooks/{name}"


def colab_badge(name: str) -> str:
    return (
        "[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
        f"({colab_url(name)})"
    )


def _text(source: str) -> str:
    return textwrap.dedent(source).strip("\n")


def md(source: str) -> tuple[str, str, list[str]]:
    return ("markdown", _text(source), [])


def code(*parts: str, tags: tuple[str, ...] = ()) -> tuple[str, str, list[str]]:
    """A code cell; several parts are joined by two blank lines (after a function)."""
    return ("code", "\n\n\n".join(_text(p) for p in parts), list(tags))


# --------------------------------------------------------------------------- shared cells

INSTALL = code(
    """
    import sys

    IN_COLAB = "google.colab" in sys.modules
    # The project's repository: in Colab, keras-runet (and its pinned TensorFlow, Keras,
    # TFDS and KerasTuner) is installed from it. Elsewhere, install the package first
    # (`pip install -e .` in a clone) and this cell does nothing.
    KERAS_RUNET_REPO = "https://github.com/keras-runet/keras-runet"

    if IN_COLAB:
        %pip install -q "keras-runet @ git+{KERAS_RUNET_REPO}"
    """
)

INSTALL_NOTE = md(
    """
    ## Setup

    In Colab, the next cell installs keras-runet from the project's repository. If Colab
    then asks to restart the session (it does when the install replaces a library that was
    already imported), restart it and run the notebook again from the top.
    """
)

PARAM_FUNCTION = '''
def param(name, default, cast=str):
    """`default`, unless the environment variable RUNET_NB_<name> is set."""
    value = os.environ.get(f"RUNET_NB_{name}", "")
    return cast(value) if value else default
'''

PARAMETERS_NOTE = md(
    """
    ## Parameters

    The defaults suit a Colab GPU. Every value can also come from an environment variable
    `RUNET_NB_<NAME>`: the test suite runs this notebook with tiny values (64 x 64 images,
    quarter-width networks, one or two epochs, ten small synthetic patients) on a CPU.
    """
)

DATA_NOTE = md(
    """
    ## The data: CAMUS from Google Drive, or a synthetic CAMUS

    CAMUS cannot be redistributed: download it from the
    [CAMUS site](https://www.creatis.insa-lyon.fr/Challenge/camus/) (free registration),
    put the zip file(s) as downloaded in a folder of your Google Drive (no need to extract
    them: `CAMUS_public.zip`, or `database_nifti.zip` with `database_split`, or the
    per-patient `patientXXXX.zip`, or the original release's `training.zip`), and set
    `CAMUS_DIR` (above) to that folder. Extracted folders work too. Drive is mounted only when
    `CAMUS_DIR` points into it. Every patient is checked before anything is written: a bad
    file is named, with what is wrong; `data.prepare_camus(..., skip_invalid_patients=True)`
    builds without such patients and lists them in `builder.info.metadata`.

    Without CAMUS, `tfds_camus.phantom` writes a *synthetic* CAMUS in the same layout:
    echo-like images drawn from known shapes, with their masks and `Info_*.cfg` files. The
    patients are spread over the ten test groups of the paper's folds, so that every fold has
    training, validation and test patients. Synthetic images are easier than real ones: the
    numbers below show that the pipeline works, not how RU-Net does on CAMUS.
    """
)

DATA = code(
    """
    if IN_COLAB and CAMUS_DIR.startswith("/content/drive/"):
        from google.colab import drive

        drive.mount("/content/drive")

    if CAMUS_DIR and Path(CAMUS_DIR).is_dir():
        manual_dir = Path(CAMUS_DIR)
        data_dir = WORK_DIR / "tfds" / "camus"
        print(f"Using CAMUS from {manual_dir}")
    else:
        if CAMUS_DIR:
            print(f"{CAMUS_DIR} does not exist: using a synthetic CAMUS instead")
        name = f"synthetic_{PATIENTS}p_scale{SCALE}"
        manual_dir = WORK_DIR / name
        data_dir = WORK_DIR / "tfds" / name
        complete = manual_dir / ".complete"  # written last: a rerun reuses a finished folder
        if not complete.exists():
            # Patient i goes to fold group i % 10 + 1 (the groups are the paper's test sets).
            groups = [tfds_camus.folds.group_patients(k) for k in range(1, 11)]
            patient_ids = [groups[i % 10][i // 10] for i in range(PATIENTS)]
            tfds_camus.phantom.write_synthetic_camus(
                manual_dir, patient_ids=patient_ids, scale=SCALE, seed=SEED
            )
            complete.touch()
        print(f"Using a synthetic CAMUS of {PATIENTS} patients in {manual_dir}")
    """
)

PREPARE_NOTE = md(
    """
    The `camus` TFDS builder (registered by `import tfds_camus`) reads the folder once and
    writes TFRecords; later runs load them directly. Config `256` holds the ED and ES images
    of both views resized to 256 x 256, with the mask on the native grid for evaluation in
    mm. The splits are named after the paper's patient groups (`group1` ... `group10`), and
    `fold_split_strings` turns fold *k* into its training, validation and test splits
    (groups missing from a small dataset are left out).
    """
)

PREPARE = code(
    """
    builder = data.prepare_camus(manual_dir, data_dir, config="256")
    splits = cross_validation.fold_split_strings(builder, FOLD)
    sizes = {part: builder.info.splits[split].num_examples for part, split in splits.items()}
    print(builder.info.full_name)
    for part, split in splits.items():
        print(f"  {part:<10} {sizes[part]:4d} images  ({split})")
    """
)

# --------------------------------------------------------------------------- notebook 1

TRAIN_NAME = "01_train_runet.ipynb"

TRAIN = [
    md(
        f"""
        # Segmenting the heart in echocardiography with RU-Net

        **Description:** train RU-Net on CAMUS (or a synthetic CAMUS) with `model.fit`,
        then evaluate it the way the paper does: contour distances in mm, outliers, and
        overlays of the best and worst cases.

        {colab_badge(TRAIN_NAME)}
        """
    ),
    md(
        """
        ## Introduction

        [CAMUS](https://www.creatis.insa-lyon.fr/Challenge/camus/) holds 2D apical two- and
        four-chamber echocardiograms of 500 patients, with expert masks of the left-ventricle
        cavity (label 1), the myocardium (2) and the left atrium (3) at end diastole (ED) and
        end systole (ES).

        **RU-Net** (Refining U-Net, IEEE IUS 2019) chains two U-Nets. The first one's
        foreground probability is binarised by a steep sigmoid (threshold `shift`), dilated by
        a `dil x dil` box, and multiplies the image; the second U-Net segments the masked
        image. Both outputs are trained with a multi-class Dice loss, end to end. The point is
        robustness: fewer *geometric* outliers (contours far from the expert's) and fewer
        *anatomical* outliers (shapes no expert would draw).

        This notebook builds the dataset with TensorFlow Datasets and `tf.data`, trains RU-Net
        with `model.fit` and keras-runet's callbacks, plots the learning curves, evaluates the
        held-out patients on their native image grid with the paper's metrics, and shows the
        best and worst segmentations.
        """
    ),
    INSTALL_NOTE,
    INSTALL,
    code(
        """
        import os

        os.environ.setdefault("KERAS_BACKEND", "tensorflow")
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

        from pathlib import Path

        import keras
        import matplotlib.pyplot as plt
        import numpy as np
        import tensorflow as tf
        from IPython.display import Markdown, display
        from matplotlib.colors import ListedColormap

        import keras_runet
        import tfds_camus
        from keras_runet import cross_validation, data, evaluation, training
        from keras_runet.evaluation import figures
        """
    ),
    md(
        """
        Training is much faster on a GPU. In Colab: *Runtime > Change runtime type > GPU*.
        """
    ),
    code(
        """
        print(f"TensorFlow {tf.__version__}, Keras {keras.__version__}")
        print(f"keras-runet {keras_runet.__version__}")
        gpus = tf.config.list_physical_devices("GPU")
        if gpus:
            print("GPU:", ", ".join(gpu.name for gpu in gpus))
        else:
            print("No GPU: training runs on the CPU (fine for the tiny test settings only).")
        """
    ),
    PARAMETERS_NOTE,
    code(
        PARAM_FUNCTION,
        """

        WORK_DIR = Path(param("WORK_DIR", "/content/runet" if IN_COLAB else "runet_notebooks"))
        # CAMUS on your Drive, e.g. "/content/drive/MyDrive/CAMUS"; empty: a synthetic CAMUS.
        CAMUS_DIR = param("CAMUS_DIR", "")
        PATIENTS = param("PATIENTS", 100, int)  # synthetic CAMUS: patients (<= 500), 10 per group
        SCALE = param("SCALE", 0.5, float)  # synthetic CAMUS: image size (1.0: ~780 x 550)
        FOLD = param("FOLD", 1, int)  # the paper's fold: test group k, validation group k + 1

        IMAGE_SIZE = param("IMAGE_SIZE", 256, int)  # model input, a multiple of 32
        WIDTH = param("WIDTH", 1.0, float)  # filter multiplier (1.0: the paper's 3.9 M parameters)
        DIL = param("DIL", 11, int)  # RU-Net's dilation box (paper: 11 or 30)
        SHIFT = param("SHIFT", 0.5, float)  # RU-Net's first threshold (paper: 0.5 or 0.7)
        EPOCHS = param("EPOCHS", 30, int)
        BATCH_SIZE = param("BATCH_SIZE", 8, int)
        PATIENCE = param("PATIENCE", 10, int)  # early stopping on the validation Dice
        SEED = param("SEED", 0, int)

        WORK_DIR.mkdir(parents=True, exist_ok=True)
        keras.utils.set_random_seed(SEED)
        """,
        tags=("parameters",),
    ),
    DATA_NOTE,
    DATA,
    PREPARE_NOTE,
    PREPARE,
    md(
        """
        A few training images with their masks: LV cavity in red, myocardium in green, left
        atrium in blue.
        """
    ),
    code(
        """
        LABELS = ListedColormap(["none", "tab:red", "tab:green", "tab:blue"])

        examples = builder.as_dataset(split=splits["train"]).take(4)
        fig, axes = plt.subplots(1, 4, figsize=(14, 3.8))
        for i, ex in enumerate(examples.as_numpy_iterator()):
            ax = axes[i]
            ax.imshow(ex["image"][..., 0], cmap="gray")
            ax.imshow(ex["mask"][..., 0], cmap=LABELS, vmin=0, vmax=3, alpha=0.35)
            view = builder.info.features["view"].int2str(ex["view"])
            instant = builder.info.features["instant"].int2str(ex["instant"])
            ax.set_title(f"{ex['patient_id'].decode()} {view} {instant}")
            ax.axis("off")
        plt.show()
        """
    ),
    md(
        """
        ## The `tf.data` pipeline

        `data.make_dataset` decodes the examples, scales the images to [0, 1], resizes them to
        the model's input size (the mask by nearest neighbour) and pairs each image with one
        integer label map per model output. The training set is shuffled, augmented (a random
        rotation, zoom and shift applied to image and mask alike, then gamma and contrast on
        the image) and repeated: `steps_per_epoch` makes one epoch one pass over the training
        patients. The randomness is keyed on the seed, so a run can be reproduced.
        """
    ),
    code(
        """
        model_outputs = ["coarse", "segmentation"]  # RU-Net's two outputs (see below)
        common = dict(batch_size=BATCH_SIZE, image_size=(IMAGE_SIZE, IMAGE_SIZE))
        train_ds = data.make_dataset(
            builder.as_dataset(split=splits["train"]),
            model_outputs,
            training=True,
            augmentation=data.Augmentation(),
            seed=SEED,
            **common,
        )
        val_examples = builder.as_dataset(split=splits["validation"])
        val_ds = data.make_dataset(val_examples, model_outputs, **common)
        steps = data.steps_per_epoch(sizes["train"], BATCH_SIZE)

        images, targets = next(iter(train_ds))
        print("images:", images.shape, images.dtype.name)
        print("labels:", {name: tuple(labels.shape) for name, labels in targets.items()})
        """
    ),
    md(
        """
        ## The model

        `build_runet` returns a functional Keras model with a dict of outputs: `coarse`, the
        first U-Net's softmax, and `segmentation`, the final one. `compile_model` compiles it
        the paper's way: Adam at 1e-3 and the multi-class Dice loss on every output, with Dice
        metrics per structure (`segmentation_dice` is the mean over LV, myocardium and atrium;
        with `val_` in front on the validation set).
        """
    ),
    code(
        """
        model = keras_runet.build_runet(
            dil=DIL, shift=SHIFT, input_shape=(IMAGE_SIZE, IMAGE_SIZE, 1), width=WIDTH
        )
        keras_runet.compile_model(model)
        assert sorted(model.output_names) == sorted(model_outputs)
        print(f"{model.name}: {model.count_params():,} parameters")
        """
    ),
    md(
        """
        ## Training

        Plain `model.fit`, with these callbacks:

        - `ModelCheckpoint` keeps the best epoch by `val_segmentation_dice` in `best.keras`:
          the model we evaluate;
        - `CSVLogger` writes `history.csv`, `EarlyStopping` stops when the validation Dice has
          not improved for `PATIENCE` epochs, `TerminateOnNaN` stops a diverging run;
        - keras-runet's `training.EpochCheckpoint` saves the full model (optimizer included)
          to `last.keras` after every epoch, atomically, with the epoch number in
          `state.json`: what `keras_runet.training.train` resumes from after an interruption.
        """
    ),
    code(
        """
        run_dir = WORK_DIR / "train"
        run_dir.mkdir(parents=True, exist_ok=True)
        best_path = run_dir / "best.keras"
        callbacks = [
            keras.callbacks.ModelCheckpoint(
                best_path, monitor=training.MONITOR, mode="max", save_best_only=True
            ),
            keras.callbacks.CSVLogger(run_dir / "history.csv"),
            keras.callbacks.EarlyStopping(monitor=training.MONITOR, mode="max", patience=PATIENCE),
            keras.callbacks.TerminateOnNaN(),
            training.EpochCheckpoint(run_dir),
        ]
        history = model.fit(
            train_ds,
            validation_data=val_ds,
            epochs=EPOCHS,
            steps_per_epoch=steps,
            callbacks=callbacks,
        )
        """
    ),
    md(
        """
        ## Learning curves

        The loss is the sum of the two outputs' Dice losses. The Dice of the final output
        should end above the coarse one's: that gap is what the refinement buys.
        """
    ),
    code(
        """
        h = history.history
        epochs = np.arange(1, len(h["loss"]) + 1)
        fig, axes = plt.subplots(1, 2, figsize=(12, 4))
        axes[0].plot(epochs, h["loss"], "o-", color="black", label="training")
        axes[0].plot(epochs, h["val_loss"], "o--", color="black", label="validation")
        axes[0].set(title="Loss (sum of the outputs' Dice losses)", xlabel="epoch")
        for output, colour in (("coarse", "tab:blue"), ("segmentation", "tab:orange")):
            axes[1].plot(epochs, h[f"{output}_dice"], "o-", color=colour, label=f"{output}, train")
            axes[1].plot(epochs, h[f"val_{output}_dice"], "o--", color=colour, label=f"{output}, val")
        axes[1].set(title="Dice (mean of LV, myocardium, atrium)", xlabel="epoch")
        for ax in axes:
            ax.grid(alpha=0.3)
            ax.legend()
        plt.show()
        """
    ),
    md(
        """
        ## Evaluation on the held-out patients

        We reload the best checkpoint and predict the fold's test patients.
        `predict_examples` brings every output back to each image's *native* grid (resize the
        probabilities, then argmax), where `evaluate_label_maps` measures, per image and per
        structure (LVendo: the cavity; LVepi: cavity and myocardium; LA: the atrium):

        - Dice, the mean absolute distance (MAD) and the Hausdorff distance (HD) between the
          contours, in mm;
        - convexity and simplicity of the predicted shapes (the paper's eqs. 2 and 3);
        - the paper's outliers: *geometric* (MAD or HD above 3.5 / 8.2 mm at ED, 4.0 / 8.8 mm
          at ES) and *anatomical* (convexity or simplicity below the lowest seen on expert
          masks);
        - the LV volumes by Simpson's biplane rule, hence the ejection fraction per patient.

        `summarize` and `format_markdown` give the paper's tables, one line per output: the
        `coarse` and `segmentation` lines are the paper's Table III *o1* and *o2*.
        """
    ),
    code(
        """
        best_model = keras.saving.load_model(best_path)
        test_examples = builder.as_dataset(split=splits["test"], shuffle_files=False)
        predictions = cross_validation.predict_examples(
            best_model, test_examples, keep_image=True, **common
        )
        items = [dict(item, model="runet") for out in predictions.values() for item in out]
        rows = evaluation.evaluate_label_maps(items)
        references = cross_validation.references_from_items(items)
        summary = evaluation.summarize(rows, references=references)
        paths = evaluation.write_report(rows, run_dir / "evaluation", summary=summary)
        display(Markdown(evaluation.format_markdown(summary)))
        """
    ),
    md(
        """
        The Hausdorff distance of every test image, per output, against the geometric outlier
        limits (the paper's Figure 3):
        """
    ),
    code(
        """
        display(keras.utils.load_img(paths["hd_figure"]))
        """
    ),
    md(
        """
        ### The outliers

        Every image of the final output that the paper would count as an outlier, worst first,
        with the metrics that flagged it.
        """
    ),
    code(
        """
        # The final output's items and rows (the coarse output is evaluated too, above).
        final = [(it, row) for it, row in zip(items, rows, strict=True) if row["output"] == "segmentation"]
        final_rows = [row for _, row in final]
        outliers = [r for r in final_rows if r["geometric_outlier"] or r["anatomical_outlier"]]
        table = [
            "| Image | Quality | LVendo MAD / HD (mm) | LVepi MAD / HD (mm) | LVendo Cx / Sp "
            "| LVepi Cx / Sp | Geometric | Anatomical |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in (outliers[i] for i in figures.worst_indices(outliers, k=20)):
            table.append(
                f"| {r['patient_id']} {r['view']} {r['instant']} | {r['image_quality']} "
                f"| {r['LVendo_mad_mm']:.1f} / {r['LVendo_hd_mm']:.1f} "
                f"| {r['LVepi_mad_mm']:.1f} / {r['LVepi_hd_mm']:.1f} "
                f"| {r['LVendo_convexity']:.3f} / {r['LVendo_simplicity']:.3f} "
                f"| {r['LVepi_convexity']:.3f} / {r['LVepi_simplicity']:.3f} "
                f"| {r['geometric_reasons'] or '-'} | {r['anatomical_reasons'] or '-'} |"
            )
        print(f"{len(outliers)} outliers among {len(final_rows)} test images")
        if outliers:
            display(Markdown("\\n".join(table)))
        """
    ),
    md(
        """
        ## Best and worst cases

        The expert's contours in green, RU-Net's in red (LV cavity, epicardium and atrium), on
        the native grid in mm. Cases are ranked by their largest Hausdorff distance (LVendo or
        LVepi); a missing structure ranks worst.
        """
    ),
    code(
        """
        def show_cases(indices, title):
            fig, axes = plt.subplots(1, len(indices), figsize=(3.8 * len(indices), 4.6), squeeze=False)
            for ax, i in zip(axes[0], indices, strict=True):
                item, row = final[i]
                (row_mm, col_mm), (height, width) = item["spacing"], item["ref"].shape
                x, y = (np.arange(width) + 0.5) * col_mm, (np.arange(height) + 0.5) * row_mm
                ax.imshow(item["image"], cmap="gray", extent=(0, width * col_mm, height * row_mm, 0))
                for labels in ([1], [1, 2], [3]):  # LVendo, LVepi, LA
                    for label_map, colour in ((item["ref"], "lime"), (item["pred"], "red")):
                        mask = np.isin(label_map, labels)
                        if mask.any():
                            ax.contour(x, y, mask, levels=[0.5], colors=colour, linewidths=1)
                ax.set_title(figures.case_title(row), fontsize=8)
                ax.set_xlabel("mm")
            fig.suptitle(title)
            plt.show()


        ranked = figures.worst_indices(final_rows, k=len(final_rows))  # worst first
        n_cases = min(4, len(ranked))
        show_cases(ranked[::-1][:n_cases], "Best cases")
        show_cases(ranked[:n_cases], "Worst cases")
        """
    ),
    md(
        """
        ## What next

        - `02_tune_dil_shift.ipynb` searches RU-Net's `dil` and `shift` with KerasTuner.
        - `03_export_and_serve.ipynb` exports `best.keras` for TensorFlow Serving.
        - The paper's whole 10-fold cross-validation of U-Net 1, SHG and RU-Net (Table II) is
          one command, printed below for this dataset (see `runet cv --help`).
        """
    ),
    code(
        """
        for name in ("best.keras", "last.keras", "history.csv", "evaluation/report.md"):
            print(run_dir / name)
        print(f"runet cv --data-dir {data_dir} --out {WORK_DIR / 'cv'} --models unet1,shg,runet")
        """
    ),
]

# --------------------------------------------------------------------------- notebook 2

TUNE_NAME = "02_tune_dil_shift.ipynb"

TUNE = [
    md(
        f"""
        # Tuning RU-Net's `dil` and `shift` with KerasTuner

        **Description:** search RU-Net's two hyper-parameters with KerasTuner, minimising the
        paper's outlier rate on the validation patients, then retrain the best setting.

        {colab_badge(TUNE_NAME)}
        """
    ),
    md(
        """
        ## Introduction

        RU-Net has two hyper-parameters of its own: `dil`, the side of the box that dilates
        the first U-Net's segmentation into a region of interest, and `shift`, the threshold
        of the steep sigmoid that binarises it first. The paper tried `dil` 11 and 30 and
        `shift` 0.5 and 0.7, and found the outlier reduction stable across them.

        `keras_runet.tuning` runs that search with [KerasTuner](https://keras.io/keras_tuner/).
        Each trial trains RU-Net on the fold's training patients with
        `keras_runet.training.train` (resumable), reloads its best epoch, predicts the
        validation patients, evaluates them on their native grid in mm, and reports to the
        oracle the Keras validation Dice and the fraction of validation images that are
        geometric or anatomical outliers. The objective here is that outlier rate, to
        minimise: robustness is RU-Net's point.
        """
    ),
    INSTALL_NOTE,
    INSTALL,
    code(
        """
        import os

        os.environ.setdefault("KERAS_BACKEND", "tensorflow")
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

        import logging
        from pathlib import Path

        import keras
        import keras_tuner
        from IPython.display import Markdown, display

        import tfds_camus
        from keras_runet import cross_validation, data, training, tuning

        # keras-runet logs one line per trial: show them.
        logger = logging.getLogger("keras_runet")
        logger.setLevel(logging.INFO)
        if not logger.handlers:
            logger.addHandler(logging.StreamHandler())
        """
    ),
    PARAMETERS_NOTE,
    code(
        PARAM_FUNCTION,
        """
        WORK_DIR = Path(param("WORK_DIR", "/content/runet" if IN_COLAB else "runet_notebooks"))
        # The data, as in the first notebook.
        CAMUS_DIR = param("CAMUS_DIR", "")
        PATIENTS = param("PATIENTS", 100, int)
        SCALE = param("SCALE", 0.5, float)
        FOLD = param("FOLD", 1, int)

        IMAGE_SIZE = param("IMAGE_SIZE", 256, int)
        WIDTH = param("WIDTH", 1.0, float)
        BATCH_SIZE = param("BATCH_SIZE", 8, int)
        SEED = param("SEED", 0, int)

        MAX_TRIALS = param("MAX_TRIALS", 8, int)  # trials of the search
        TUNE_EPOCHS = param("TUNE_EPOCHS", 10, int)  # epochs of each trial
        ORACLE = param("ORACLE", "bayesian")  # random, grid, hyperband or bayesian
        OBJECTIVE = param("OBJECTIVE", "outliers")  # outliers, geometric, anatomical or dice
        EPOCHS = param("EPOCHS", 30, int)  # epochs of the final retraining of the best setting

        WORK_DIR.mkdir(parents=True, exist_ok=True)
        """,
        tags=("parameters",),
    ),
    md(
        """
        ## The data

        The same data as in the first notebook (reused if it is already in `WORK_DIR`):
        CAMUS from your Drive if `CAMUS_DIR` is set, otherwise the synthetic CAMUS. The trials
        train on the fold's training patients and are compared on its validation patients;
        the test patients stay untouched until the end.
        """
    ),
    DATA,
    PREPARE,
    md(
        """
        ## The search space

        `SearchSpace` declares `dil` and `shift` as KerasTuner hyper-parameters: here `dil`
        from 5 to 35 pixels (at 256 x 256 the paper's 11 and 30 are inside) and `shift` from
        0.3 to 0.8 (`SearchSpace(dil_values=(11, 30), shift_values=(0.5, 0.7))` with
        `ORACLE = "grid"` is the paper's sweep). `RunetHyperModel` turns a trial's values into
        a `TrainConfig` and a compiled RU-Net; every other setting comes from the base
        config. Here, the configuration of the space's first point:
        """
    ),
    code(
        """
        space = tuning.SearchSpace(dil_range=(5, 35), shift_range=(0.3, 0.8))
        base_config = training.TrainConfig(
            model="runet",
            image_size=(IMAGE_SIZE, IMAGE_SIZE),
            width=WIDTH,
            epochs=TUNE_EPOCHS,
            batch_size=BATCH_SIZE,
            patience=0,
            seed=SEED,
        )
        hypermodel = tuning.RunetHyperModel(space, base_config)
        hp = keras_tuner.HyperParameters()
        print(hypermodel.train_config(hp))
        for declared in hp.space:
            print(declared)
        """
    ),
    md(
        """
        ## The search

        `run_search` creates the oracle and the tuner and runs the trials. The objective's
        direction is always explicit (`Objective("val_outlier_rate", direction="min")`):
        KerasTuner would otherwise guess it from the name. The study lives in `study_dir`:
        rerunning this cell resumes it (finished trials are kept, an interrupted one
        continues at its last finished epoch). The same search runs from the command line
        (`runet tune`), and on several machines with KerasTuner's chief / worker mode (see
        docs/tuning.md).
        """
    ),
    code(
        """
        study_dir = WORK_DIR / "tuning" / f"fold{FOLD}"
        train_examples = builder.as_dataset(split=splits["train"])
        val_examples = builder.as_dataset(split=splits["validation"])
        result = tuning.run_search(
            study_dir,
            train_examples,
            val_examples,
            base_config=base_config,
            space=space,
            oracle=ORACLE,
            objective=OBJECTIVE,
            max_trials=MAX_TRIALS,
            fit_verbose=2,
            data_description=f"{builder.info.full_name} from {manual_dir}, fold {FOLD}",
        )
        # A trial that raises is recorded as FAILED while the search goes on: check.
        failed = [row for row in result.rows if row["status"] != "COMPLETED"]
        if failed:
            raise RuntimeError(f"{len(failed)} trial(s) did not complete: {failed}")
        print(f"{len(result.rows)} trials completed in {study_dir}")
        """
    ),
    md(
        """
        ## The results

        One line per trial, best objective first (the same table is in `results.csv`).
        "ROI" is the fraction of the image RU-Net's mask keeps: at 1.00 the first U-Net
        does not predict background yet, the mask is all ones and `dil` and `shift` change
        nothing (train the trials longer; see docs/tuning.md).
        """
    ),
    code(
        """
        objective = tuning.make_objective(OBJECTIVE)
        ranked = sorted(result.rows, key=lambda row: row["score"], reverse=objective.direction == "max")
        table = [
            "| Trial | dil | shift | Val Dice (Keras) | Val Dice (native) | Outlier rate "
            "| Geometric | Anatomical | ROI | Seconds |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for row in ranked:
            star = " ★" if row["is_best"] else ""
            table.append(
                f"| {row['trial_id']}{star} | {row['dil']} | {row['shift']:.2f} "
                f"| {row['val_segmentation_dice']:.3f} | {row['val_native_dice']:.3f} "
                f"| {row['val_outlier_rate']:.2f} | {row['val_geometric_outlier_rate']:.2f} "
                f"| {row['val_anatomical_outlier_rate']:.2f} | {row['val_roi_fraction']:.2f} "
                f"| {row['seconds']:.0f} |"
            )
        display(Markdown("\\n".join(table)))
        print(result.paths["results_csv"])
        """
    ),
    md(
        """
        The objective over the searched space, the best trial starred:
        """
    ),
    code(
        """
        display(keras.utils.load_img(result.paths["figure"]))
        """
    ),
    md(
        """
        ## Retraining the best setting

        The trials were short. `retrain_best` trains the best `dil` and `shift` again for
        `EPOCHS` epochs (in `study_dir/best_run`, resumable) and copies the best epoch to
        `study_dir/best.keras`. The held-out test patients, which no choice so far has seen,
        then give its outlier rates.
        """
    ),
    code(
        """
        print(f"best: dil={result.best['dil']}, shift={result.best['shift']:.2f}")
        best_path = tuning.retrain_best(
            study_dir, train_examples, val_examples, epochs=EPOCHS, fit_verbose=2
        )
        best_model = keras.saving.load_model(best_path)
        test = tuning.evaluate_model(
            best_model,
            builder.as_dataset(split=splits["test"], shuffle_files=False),
            image_size=(IMAGE_SIZE, IMAGE_SIZE),
            batch_size=BATCH_SIZE,
        )
        print(f"{best_path}: on the {test['val_images']} test images")
        for name in ("val_native_dice", "val_outlier_rate", "val_geometric_outlier_rate",
                     "val_anatomical_outlier_rate"):  # fmt: skip
            print(f"  {name.removeprefix('val_'):<26} {test[name]:.3f}")
        """
    ),
    md(
        """
        `study_dir/best.keras` is a regular RU-Net: evaluate it in full as in the first
        notebook, or export it for TF Serving with the third one
        (`RUNET_NB_MODEL=<study_dir>/best.keras`).
        """
    ),
]

# --------------------------------------------------------------------------- notebook 3

SERVE_NAME = "03_export_and_serve.ipynb"

SERVE = [
    md(
        f"""
        # Exporting RU-Net for TensorFlow Serving

        **Description:** export a trained RU-Net as a SavedModel in TF Serving's layout,
        inspect its signatures, answer REST requests the way the server does, and serve it
        with Docker.

        {colab_badge(SERVE_NAME)}
        """
    ),
    md(
        """
        ## Introduction

        `keras_runet.export.export_model` writes one numbered version folder, the layout
        [TensorFlow Serving](https://www.tensorflow.org/tfx/guide/serving) watches:

        ```
        export/runet/                               the model base path
          1/saved_model.pb  1/variables/            the SavedModel the server loads
          1/assets.extra/model.keras                the Keras model, to reload with Keras
          1/assets.extra/runet_export.json          what was exported, from which data
        ```

        The SavedModel has two signatures. `serving_default` takes float images in [0, 1] of
        any size, resizes them to the model's input size and returns the label map at the size
        of the request (with the class probabilities, and RU-Net's first segmentation under
        `coarse`). `serving_bytes` takes encoded PNG or JPEG images (base64 in JSON).

        This notebook checks the export the way the server uses it: it loads the SavedModel
        with plain TensorFlow (no keras-runet code is needed to run it), turns REST JSON
        bodies into signature calls with `keras_runet.serving`, and builds the server's JSON
        replies. The last section gives the Docker command that serves the same folder.
        """
    ),
    INSTALL_NOTE,
    INSTALL,
    code(
        """
        import os

        os.environ.setdefault("KERAS_BACKEND", "tensorflow")
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

        import base64
        import io
        import json
        import subprocess
        from pathlib import Path

        import matplotlib.pyplot as plt
        import numpy as np
        import tensorflow as tf
        from matplotlib.colors import ListedColormap
        from PIL import Image

        import tfds_camus
        from keras_runet import cross_validation, data, evaluation, export, serving, training
        """
    ),
    PARAMETERS_NOTE,
    code(
        PARAM_FUNCTION,
        """
        WORK_DIR = Path(param("WORK_DIR", "/content/runet" if IN_COLAB else "runet_notebooks"))
        # The model to export: by default the best checkpoint of 01_train_runet.ipynb.
        MODEL_PATH = Path(param("MODEL", str(WORK_DIR / "train" / "best.keras")))
        EXPORT_BASE = WORK_DIR / "export" / "runet"  # the model base path TF Serving watches
        MODEL_NAME = "runet"  # the name in the server's URLs

        # The data, as in the first notebook (a test image for the requests; and the training
        # data if MODEL_PATH does not exist and a model has to be trained here).
        CAMUS_DIR = param("CAMUS_DIR", "")
        PATIENTS = param("PATIENTS", 100, int)
        SCALE = param("SCALE", 0.5, float)
        FOLD = param("FOLD", 1, int)
        IMAGE_SIZE = param("IMAGE_SIZE", 256, int)
        WIDTH = param("WIDTH", 1.0, float)
        EPOCHS = param("EPOCHS", 10, int)
        BATCH_SIZE = param("BATCH_SIZE", 8, int)
        SEED = param("SEED", 0, int)

        WORK_DIR.mkdir(parents=True, exist_ok=True)
        """,
        tags=("parameters",),
    ),
    md(
        """
        ## The data

        The same data as in the first notebook: CAMUS from your Drive if `CAMUS_DIR` is set,
        otherwise the synthetic CAMUS (reused if the first notebook already wrote it in
        `WORK_DIR`).
        """
    ),
    DATA,
    PREPARE,
    md(
        """
        ## A trained model

        The best checkpoint of the first notebook, if it is there. Otherwise we train one here
        with `keras_runet.training.train`, the package's one-call training: the data pipeline
        and callbacks of the first notebook, in a run directory that a rerun resumes.
        """
    ),
    code(
        """
        if MODEL_PATH.exists():
            print(f"Using {MODEL_PATH}")
        else:
            print(f"{MODEL_PATH} does not exist: training RU-Net for {EPOCHS} epochs")
            config = training.TrainConfig(
                model="runet",
                image_size=(IMAGE_SIZE, IMAGE_SIZE),
                width=WIDTH,
                epochs=EPOCHS,
                batch_size=BATCH_SIZE,
                patience=0,
                seed=SEED,
            )
            result = training.train(
                config,
                builder.as_dataset(split=splits["train"]),
                builder.as_dataset(split=splits["validation"]),
                WORK_DIR / "train_for_export",
                verbose=2,
            )
            MODEL_PATH = result.best_path
            print(f"best validation Dice {result.best_score:.3f}: {MODEL_PATH}")
        """
    ),
    md(
        """
        ## Export

        Each call writes the next free version (`1`, `2`, ...): TF Serving serves the highest
        one and switches to a new one when it appears. The version is written into a
        temporary folder and renamed into place when complete, so a running server never
        loads half a model.
        """
    ),
    code(
        """
        version_dir = export.export_model(
            MODEL_PATH,
            EXPORT_BASE,
            training_data=f"{builder.info.full_name} from {manual_dir}, fold {FOLD}",
        )
        for path in sorted(version_dir.rglob("*")):
            if path.is_file():
                size = path.stat().st_size / 1e6
                print(f"{str(path.relative_to(EXPORT_BASE)):<50} {size:8.2f} MB")

        metadata = json.loads((version_dir / "assets.extra" / "runet_export.json").read_text())
        keys = ("model_kind", "dil", "shift", "input_size", "parameters", "label_names", "version")
        print(json.dumps({key: metadata[key] for key in keys}, indent=1))
        """
    ),
    md(
        """
        ## The signatures

        `saved_model_cli` (installed with TensorFlow) shows what the server sees: the inputs
        and outputs of a signature, with their dtypes and shapes (-1: any size).
        """
    ),
    code(
        """
        shown = subprocess.run(
            [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli", "show",
             "--dir", str(version_dir), "--tag_set", "serve", "--signature_def", "serving_default"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        print(shown.stdout)
        """
    ),
    md(
        """
        The same for both signatures from Python: `tf.saved_model.load` needs only TensorFlow,
        as the server does.
        """
    ),
    code(
        """
        loaded = tf.saved_model.load(str(version_dir))
        for name, function in loaded.signatures.items():
            print(name)
            for key, spec in function.structured_input_signature[1].items():
                print(f"  input  {key:<14} {spec.dtype.name:<8} {spec.shape}")
            for key, spec in function.structured_outputs.items():
                print(f"  output {key:<14} {spec.dtype.name:<8} {spec.shape}")
        """
    ),
    md(
        """
        ## A REST request, answered as TF Serving would

        A client sends `POST /v1/models/runet:predict` with a JSON body. We take an image of a
        test patient (not seen in training) as the scanner gives it, at its native size, and
        send it in the *row* format: `{"instances": [{"image": ...}, ...]}`, one object per
        image.
        """
    ),
    code(
        """
        test_patient = next(builder.as_dataset(split=splits["test"]).as_numpy_iterator())
        patient_id = test_patient["patient_id"].decode()
        camus = tfds_camus.source_layout(builder)  # the download, zipped or not
        echo = tfds_camus.reader.load_instant(camus, patient_id, "4CH", "ED")
        image = echo["image"].astype("float32")[..., None] / 255.0  # (rows, cols, 1) in [0, 1]
        row_mm, col_mm = echo["spacing"]
        print(f"{patient_id} 4CH ED: {image.shape}, pixels of {row_mm:.2f} x {col_mm:.2f} mm")

        row_body = json.dumps(
            {"signature_name": "serving_default", "instances": [{"image": image.tolist()}]}
        )
        print(f"request body: {len(row_body) / 1e6:.1f} MB: {row_body[:90]}...")
        """
    ),
    md(
        """
        What the server does with it: parse the JSON into tensors, call the signature the body
        names, and write the outputs back as JSON (`{"predictions": [...]}`, one object per
        instance). `keras_runet.serving` does each step as TF Serving does, including its
        checks (a wrong input name, dtype or rank is an HTTP 400 there, a
        `ServingRequestError` here).
        """
    ),
    code(
        '''
        def answer(body):
            """The reply of `POST /v1/models/runet:predict` to `body`, as TF Serving builds it."""
            signature_name, inputs, request_format = serving.rest_request_to_inputs(body)
            outputs = serving.call_signature(loaded.signatures[signature_name], inputs)
            return json.dumps(serving.rest_response(outputs, request_format))


        reply = json.loads(answer(row_body))
        prediction = reply["predictions"][0]
        for key, value in prediction.items():
            print(f"{key:<14} {np.shape(value)}")
        segmentation = np.array(prediction["segmentation"])
        '''
    ),
    md(
        """
        The label map comes back at the size of the request, on the image's own grid, so it
        can be compared with the expert's mask directly (LV cavity in red, myocardium in
        green, left atrium in blue):
        """
    ),
    code(
        """
        for structure, labels in (("LV cavity", [1]), ("LV epicardium", [1, 2]), ("atrium", [3])):
            dice = evaluation.dice(np.isin(segmentation, labels), np.isin(echo["gt"], labels))
            print(f"Dice {structure:<14} {dice:.3f}")

        height, width = segmentation.shape
        extent = (0, width * col_mm, height * row_mm, 0)
        LABELS = ListedColormap(["none", "tab:red", "tab:green", "tab:blue"])
        fig, axes = plt.subplots(1, 2, figsize=(10, 5))
        for ax, (title, label_map) in zip(
            axes, (("Expert", echo["gt"]), ("Reply of the server", segmentation)), strict=True
        ):
            ax.imshow(image[..., 0], cmap="gray", extent=extent)
            ax.imshow(label_map, cmap=LABELS, vmin=0, vmax=3, alpha=0.35, extent=extent)
            ax.set(title=f"{title}: {patient_id} 4CH ED", xlabel="mm", ylabel="mm")
        plt.show()
        """
    ),
    md(
        """
        ### The columnar format and encoded images

        The same request in the *columnar* format, `{"inputs": {"image": batch}}`, gets
        `{"outputs": {...}}` back. And `serving_bytes` takes the PNG file itself, base64
        encoded as `{"b64": ...}`: a much smaller body, decoded on the server to the same
        pixels, hence the same answer.
        """
    ),
    code(
        """
        columnar_body = json.dumps({"inputs": {"image": image[None].tolist()}})
        columnar = json.loads(answer(columnar_body))["outputs"]
        assert np.array_equal(np.array(columnar["segmentation"][0]), segmentation)

        png = io.BytesIO()
        Image.fromarray(echo["image"]).save(png, format="PNG")
        bytes_body = json.dumps(
            {
                "signature_name": "serving_bytes",
                "instances": [{"image_bytes": {"b64": base64.b64encode(png.getvalue()).decode()}}],
            }
        )
        from_png = json.loads(answer(bytes_body))["predictions"][0]
        assert np.array_equal(np.array(from_png["segmentation"]), segmentation)
        print(f"row body {len(row_body) / 1e6:.2f} MB, columnar body {len(columnar_body) / 1e6:.2f} MB, "
              f"PNG body {len(bytes_body) / 1e6:.3f} MB: the same label map")  # fmt: skip

        """
    ),
    md(
        """
        ## Serving with Docker

        On a machine with Docker (not in Colab), TF Serving's image serves the export folder
        as it is: mount the model base path (the folder that holds the version folders) at
        `/models/runet`. The server loads the highest version, and a newer one as soon as it
        appears.
        """
    ),
    code(
        """
        request_path = WORK_DIR / "request.json"
        request_path.write_text(bytes_body)

        print("docker run -p 8501:8501 \\\\")
        print(f"  --mount type=bind,source={EXPORT_BASE.resolve()},target=/models/{MODEL_NAME} \\\\")
        print(f"  -e MODEL_NAME={MODEL_NAME} -t tensorflow/serving")
        print()
        print("# then, from another shell: the PNG request written above")
        print(f"curl -s -X POST -H 'Content-Type: application/json' -d @{request_path.resolve()} \\\\")
        print(f"  http://localhost:8501/v1/models/{MODEL_NAME}:predict")
        """
    ),
    md(
        """
        From Python, with `requests`:

        ```python
        import requests

        reply = requests.post(
            "http://localhost:8501/v1/models/runet:predict", data=bytes_body, timeout=30
        ).json()
        segmentation = np.array(reply["predictions"][0]["segmentation"])
        ```

        The gRPC API (port 8500) takes the same tensors in a `PredictRequest`:
        `keras_runet.serving.make_predict_request` builds one (it needs the
        `tensorflow-serving-api` package). The Keras model itself is in the export too: reload
        it with `keras.saving.load_model(version_dir / "assets.extra" / "model.keras")` (after
        `import keras_runet`, which registers RU-Net's layers). More in the repository's
        `docs/serving.md`, including `runet export` and `runet predict` on the command line.
        """
    ),
]


NOTEBOOKS = {
    TRAIN_NAME: (TRAIN, True),
    TUNE_NAME: (TUNE, True),
    SERVE_NAME: (SERVE, False),
}


def build_notebook(cells, gpu: bool, stem: str) -> nbformat.NotebookNode:
    """A notebook of ``cells`` (no outputs, fixed ids), with Colab's metadata."""
    nb = nbformat.v4.new_notebook()
    for i, (kind, source, tags) in enumerate(cells):
        if kind == "markdown":
            cell = nbformat.v4.new_markdown_cell(source)
        else:
            cell = nbformat.v4.new_code_cell(source)
        cell["id"] = f"{stem}-{i:02d}"
        if tags:
            cell["metadata"]["tags"] = list(tags)
        nb.cells.append(cell)
    nb.metadata = {
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"},
        "colab": {"provenance": [], "toc_visible": True},
    }
    if gpu:
        nb.metadata["accelerator"] = "GPU"
        nb.metadata["colab"]["gpuType"] = "T4"
    return nb


def render(name: str) -> str:
    """The text of notebook ``name`` as this script writes it."""
    cells, gpu = NOTEBOOKS[name]
    nb = build_notebook(cells, gpu, Path(name).stem.split("_")[0])
    nbformat.validate(nb)
    return nbformat.writes(nb) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="only check that the notebooks are up to date"
    )
    parser.add_argument("--out", type=Path, default=HERE, help="folder to write (default: here)")
    args = parser.parse_args(argv)
    stale = []
    for name in NOTEBOOKS:
        path = args.out / name
        text = render(name)
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(name)
        else:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path}")
    if stale:
        print(
            "out of date (run python notebooks/make_notebooks.py): " + ", ".join(stale),
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
