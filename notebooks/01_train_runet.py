# %% [markdown]
# # Segmenting the heart in echocardiography with RU-Net
#
# **Description:** train RU-Net on CAMUS (or a synthetic CAMUS) with `model.fit`,
# then evaluate it the way the paper does: contour distances in mm, outliers, and
# overlays of the best and worst cases.
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/keras-runet/keras-runet/blob/main/notebooks/01_train_runet.ipynb)

# %% [markdown]
# ## Introduction
#
# [CAMUS](https://www.creatis.insa-lyon.fr/Challenge/camus/) holds 2D apical two- and
# four-chamber echocardiograms of 500 patients, with expert masks of the left-ventricle
# cavity (label 1), the myocardium (2) and the left atrium (3) at end diastole (ED) and
# end systole (ES).
#
# **RU-Net** (Refining U-Net, IEEE IUS 2019) chains two U-Nets. The first one's
# foreground probability is binarised by a steep sigmoid (threshold `shift`), dilated by
# a `dil x dil` box, and multiplies the image; the second U-Net segments the masked
# image. Both outputs are trained with a multi-class Dice loss, end to end. The point is
# robustness: fewer *geometric* outliers (contours far from the expert's) and fewer
# *anatomical* outliers (shapes no expert would draw).
#
# This notebook builds the dataset with TensorFlow Datasets and `tf.data`, trains RU-Net
# with `model.fit` and keras-runet's callbacks, plots the learning curves, evaluates the
# held-out patients on their native image grid with the paper's metrics, and shows the
# best and worst segmentations.

# %% [markdown]
# ## Setup
#
# In Colab, the next cell installs keras-runet from the project's repository, only if it is
# not installed yet. Its requirements accept Colab's own TensorFlow, Keras and
# scikit-image, so the install normally replaces nothing and needs no restart; the cell says
# so, or names what it replaced and asks for a restart (*Runtime > Restart session*), after
# which you run the notebook from the top again (this cell then skips the install).

# %%
import importlib.metadata
import importlib.util
import subprocess
import sys

IN_COLAB = "google.colab" in sys.modules
# In Colab, keras-runet is installed from the project's repository. Elsewhere, install the
# package first (`pip install -e .` in a clone) and this cell does nothing.
KERAS_RUNET = "keras-runet @ git+https://github.com/keras-runet/keras-runet"
# Libraries Colab preinstalls that keras-runet needs: if the install replaces one that this
# session already imported, the session must restart.
PREINSTALLED = ("tensorflow", "keras", "scikit-image", "protobuf", "h5py", "numpy")


def installed_versions():
    versions = {}
    for name in PREINSTALLED:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


if IN_COLAB and importlib.util.find_spec("keras_runet") is None:
    before = installed_versions()
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", KERAS_RUNET], check=True)
    replaced = [
        f"{name} {before[name]} -> {version}"
        for name, version in installed_versions().items()
        if before[name] and version != before[name]
    ]
    if replaced:
        print(
            "The install replaced " + ", ".join(replaced) + ". Restart the session "
            "(Runtime > Restart session), then run the notebook from the top again: "
            "this cell will skip the install."
        )
    else:
        print("keras-runet installed; Colab's libraries are unchanged: no restart needed.")
elif IN_COLAB:
    print("keras-runet is installed: nothing to do.")

# %%
import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import matplotlib.pyplot as plt
import numpy as np
import tensorflow as tf
from IPython.display import Markdown, display

import keras_runet
from keras_runet import cross_validation, data, evaluation, notebook, training
from keras_runet.evaluation import figures

# %% [markdown]
# Training is much faster on a GPU. In Colab: *Runtime > Change runtime type > GPU*.

# %%
print(f"TensorFlow {tf.__version__}, Keras {keras.__version__}")
print(f"keras-runet {keras_runet.__version__}")
gpus = tf.config.list_physical_devices("GPU")
if gpus:
    print("GPU:", ", ".join(gpu.name for gpu in gpus))
else:
    print("No GPU: training runs on the CPU (fine for the tiny test settings only).")

# %% [markdown]
# ## Parameters
#
# The defaults suit a Colab GPU; in Colab, the next cell is also a form. Every value can
# also come from an environment variable `RUNET_NB_<NAME>` (`notebook.override_parameters`):
# the test suite runs this notebook with tiny values (64 x 64 images, quarter-width networks,
# one or two epochs, ten small synthetic patients) on a CPU.

# %% tags=["parameters"]
# CAMUS on your Drive, e.g. "/content/drive/MyDrive/CAMUS"; empty: a synthetic CAMUS.
CAMUS_DIR = ""  # @param {type:"string"}
# The notebooks' shared folder; empty: /content/runet in Colab, runet_notebooks elsewhere.
WORK_DIR = ""  # @param {type:"string"}
# Colab: keep the work folder on Google Drive (default /content/drive/MyDrive/runet), so
# that the dataset, runs and studies outlive the session.
WORK_ON_DRIVE = False  # @param {type:"boolean"}
# Synthetic CAMUS: patients (<= 500, spread over the ten groups), image size (1.0: ~780 x 550).
PATIENTS = 100  # @param {type:"integer"}
SCALE = 0.5  # @param {type:"number"}
# The paper's fold: test group k, validation group k + 1.
FOLD = 1  # @param {type:"integer"}

# Model input (a multiple of 32) and filter multiplier (1.0: the paper's 3.9 M parameters).
IMAGE_SIZE = 256  # @param {type:"integer"}
WIDTH = 1.0  # @param {type:"number"}
# RU-Net's dilation box and first threshold (paper: 11 or 30, and 0.5 or 0.7).
DIL = 11  # @param {type:"integer"}
SHIFT = 0.5  # @param {type:"number"}
EPOCHS = 30  # @param {type:"integer"}
BATCH_SIZE = 8  # @param {type:"integer"}
# Early stopping on the validation Dice (epochs without improvement).
PATIENCE = 10  # @param {type:"integer"}
SEED = 0  # @param {type:"integer"}

notebook.override_parameters(globals())  # the RUNET_NB_<NAME> environment variables
WORK_DIR = notebook.work_dir(WORK_DIR, on_drive=WORK_ON_DRIVE)
keras.utils.set_random_seed(SEED)

# %% [markdown]
# ## The data: CAMUS from Google Drive, or a synthetic CAMUS
#
# CAMUS cannot be redistributed: download it from the
# [CAMUS site](https://www.creatis.insa-lyon.fr/Challenge/camus/) (free registration),
# put the zip file(s) as downloaded in a folder of your Google Drive (no need to extract
# them: `CAMUS_public.zip`, or `database_nifti.zip` with `database_split`, or the
# per-patient `patientXXXX.zip`, or the original release's `training.zip`), and set
# `CAMUS_DIR` (above) to that folder. Extracted folders work too. Drive is mounted only when
# `CAMUS_DIR` points into it. Every patient is checked before anything is written: a bad
# file is named, with what is wrong; `data.prepare_camus(..., skip_invalid_patients=True)`
# builds without such patients and lists them in `builder.info.metadata`.
#
# Without CAMUS, `tfds_camus.phantom` writes a *synthetic* CAMUS in the same layout:
# echo-like images drawn from known shapes, with their masks and `Info_*.cfg` files. The
# patients are spread over the ten test groups of the paper's folds, so that every fold has
# training, validation and test patients; a rerun reuses it. Synthetic images are easier
# than real ones: the numbers below show that the pipeline works, not how RU-Net does on
# CAMUS. `notebook.locate_camus` makes this choice (and mounts Drive) for the three
# notebooks.

# %%
manual_dir, data_dir = notebook.locate_camus(
    CAMUS_DIR, WORK_DIR, patients=PATIENTS, scale=SCALE, seed=SEED
)

# %% [markdown]
# The `camus` TFDS builder (registered by `import tfds_camus`) reads the folder once and
# writes TFRecords; later runs load them directly. Config `256` holds the ED and ES images
# of both views resized to 256 x 256, with the mask on the native grid for evaluation in
# mm. The splits are named after the paper's patient groups (`group1` ... `group10`), and
# `cross_validation.fold_split_strings` turns fold *k* into its training, validation and
# test splits (groups missing from a small dataset are left out). `notebook.prepare_fold`
# does both (with `data.prepare_camus`) and prints the size of each part.

# %%
builder, splits, sizes = notebook.prepare_fold(manual_dir, data_dir, FOLD)

# %% [markdown]
# A few training images with their masks: LV cavity in red, myocardium in green, left
# atrium in blue.

# %%
LABELS = notebook.label_colormap()

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

# %% [markdown]
# ## The `tf.data` pipeline
#
# `data.make_dataset` decodes the examples, scales the images to [0, 1], resizes them to
# the model's input size (the mask by nearest neighbour) and pairs each image with one
# integer label map per model output. The training set is shuffled, augmented (a random
# rotation, zoom and shift applied to image and mask alike, then gamma and contrast on
# the image) and repeated: `steps_per_epoch` makes one epoch one pass over the training
# patients. The randomness is keyed on the seed, so a run can be reproduced.

# %%
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

# %% [markdown]
# ## The model
#
# `build_runet` returns a functional Keras model with a dict of outputs: `coarse`, the
# first U-Net's softmax, and `segmentation`, the final one. `compile_model` compiles it
# the paper's way: Adam at 1e-3 and the multi-class Dice loss on every output, with Dice
# metrics per structure (`segmentation_dice` is the mean over LV, myocardium and atrium;
# with `val_` in front on the validation set).

# %%
model = keras_runet.build_runet(
    dil=DIL, shift=SHIFT, input_shape=(IMAGE_SIZE, IMAGE_SIZE, 1), width=WIDTH
)
keras_runet.compile_model(model)
assert sorted(model.output_names) == sorted(model_outputs)
print(f"{model.name}: {model.count_params():,} parameters")

# %% [markdown]
# ## Training
#
# Plain `model.fit`, with these callbacks:
#
# - `ModelCheckpoint` keeps the best epoch by `val_segmentation_dice` in `best.keras`:
#   the model we evaluate;
# - `CSVLogger` writes `history.csv`, `EarlyStopping` stops when the validation Dice has
#   not improved for `PATIENCE` epochs, `TerminateOnNaN` stops a diverging run;
# - keras-runet's `training.EpochCheckpoint` saves the full model (optimizer included)
#   to `last.keras` after every epoch, atomically, with the epoch number in
#   `state.json`: what `keras_runet.training.train` resumes from after an interruption.

# %%
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

# %% [markdown]
# ## Learning curves
#
# The loss is the sum of the two outputs' Dice losses. The Dice of the final output
# should end above the coarse one's: that gap is what the refinement buys.

# %%
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

# %% [markdown]
# ## Evaluation on the held-out patients
#
# We reload the best checkpoint and predict the fold's test patients.
# `predict_examples` brings every output back to each image's *native* grid (resize the
# probabilities, then argmax), where `evaluate_label_maps` measures, per image and per
# structure (LVendo: the cavity; LVepi: cavity and myocardium; LA: the atrium):
#
# - Dice, the mean absolute distance (MAD) and the Hausdorff distance (HD) between the
#   contours, in mm;
# - convexity and simplicity of the predicted shapes (the paper's eqs. 2 and 3);
# - the paper's outliers: *geometric* (MAD or HD above 3.5 / 8.2 mm at ED, 4.0 / 8.8 mm
#   at ES) and *anatomical* (convexity or simplicity below the lowest seen on expert
#   masks);
# - the LV volumes by Simpson's biplane rule, hence the ejection fraction per patient.
#
# `summarize` and `format_markdown` give the paper's tables, one line per output: the
# `coarse` and `segmentation` lines are the paper's Table III *o1* and *o2*.

# %%
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

# %% [markdown]
# The Hausdorff distance of every test image, per output, against the geometric outlier
# limits (the paper's Figure 3):

# %%
display(keras.utils.load_img(paths["hd_figure"]))

# %% [markdown]
# ### The outliers
#
# Every image of the final output that the paper would count as an outlier, worst first,
# with the metrics that flagged it.

# %%
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
    display(Markdown("\n".join(table)))

# %% [markdown]
# ## Best and worst cases
#
# The expert's contours in green, RU-Net's in red (LV cavity, epicardium and atrium), on
# the native grid in mm. Cases are ranked by their largest Hausdorff distance (LVendo or
# LVepi); a missing structure ranks worst.


# %%
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

# %% [markdown]
# ## What next
#
# - `02_tune_dil_shift.ipynb` searches RU-Net's `dil` and `shift` with KerasTuner.
# - `03_export_and_serve.ipynb` exports `best.keras` for TensorFlow Serving.
# - The paper's whole 10-fold cross-validation of U-Net 1, SHG and RU-Net (Table II) is
#   one command, printed below for this dataset (see `runet cv --help`).

# %%
for name in ("best.keras", "last.keras", "history.csv", "evaluation/report.md"):
    print(run_dir / name)
print(f"runet cv --data-dir {data_dir} --out {WORK_DIR / 'cv'} --models unet1,shg,runet")
