# %% [markdown]
# # Tuning RU-Net's `dil` and `shift` with KerasTuner
#
# **Description:** search RU-Net's two hyper-parameters with KerasTuner, minimising the
# paper's outlier rate on the validation patients, then retrain the best setting.
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/keras-runet/keras-runet/blob/main/notebooks/02_tune_dil_shift.ipynb)

# %% [markdown]
# ## Introduction
#
# RU-Net has two hyper-parameters of its own: `dil`, the side of the box that dilates
# the first U-Net's segmentation into a region of interest, and `shift`, the threshold
# of the steep sigmoid that binarises it first. The paper tried `dil` 11 and 30 and
# `shift` 0.5 and 0.7, and found the outlier reduction stable across them.
#
# `keras_runet.tuning` runs that search with [KerasTuner](https://keras.io/keras_tuner/).
# Each trial trains RU-Net on the fold's training patients with
# `keras_runet.training.train` (resumable), reloads its best epoch, predicts the
# validation patients, evaluates them on their native grid in mm, and reports to the
# oracle the Keras validation Dice and the fraction of validation images that are
# geometric or anatomical outliers. The objective here is that outlier rate, to
# minimise: robustness is RU-Net's point.

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

import logging

import keras
import keras_tuner
from IPython.display import Markdown, display

from keras_runet import notebook, tuning
from keras_runet.config import train_config

# keras-runet logs one line per trial: show them.
logger = logging.getLogger("keras_runet")
logger.setLevel(logging.INFO)
if not logger.handlers:
    logger.addHandler(logging.StreamHandler())

# %% [markdown]
# ## Parameters
#
# The defaults suit a Colab GPU; in Colab, the next cell is also a form. Every value can
# also come from an environment variable `RUNET_NB_<NAME>` (`notebook.override_parameters`):
# the test suite runs this notebook with tiny values (64 x 64 images, quarter-width networks,
# one or two epochs, ten small synthetic patients) on a CPU.

# %% tags=["parameters"]
# The data, as in the first notebook.
CAMUS_DIR = ""  # @param {type:"string"}
WORK_DIR = ""  # @param {type:"string"}
# Colab: keep the work folder on Google Drive (default /content/drive/MyDrive/runet), so
# that the dataset, runs and studies outlive the session.
WORK_ON_DRIVE = False  # @param {type:"boolean"}
PATIENTS = 100  # @param {type:"integer"}
SCALE = 0.5  # @param {type:"number"}
FOLD = 1  # @param {type:"integer"}

IMAGE_SIZE = 256  # @param {type:"integer"}
WIDTH = 1.0  # @param {type:"number"}
BATCH_SIZE = 8  # @param {type:"integer"}
SEED = 0  # @param {type:"integer"}

# The search: trials, epochs of each trial, oracle and objective.
MAX_TRIALS = 8  # @param {type:"integer"}
TUNE_EPOCHS = 10  # @param {type:"integer"}
ORACLE = "bayesian"  # @param ["random", "grid", "hyperband", "bayesian"]
OBJECTIVE = "outliers"  # @param ["outliers", "geometric", "anatomical", "dice"]
# Epochs of the final retraining of the best setting.
EPOCHS = 30  # @param {type:"integer"}

notebook.override_parameters(globals())  # the RUNET_NB_<NAME> environment variables
WORK_DIR = notebook.work_dir(WORK_DIR, on_drive=WORK_ON_DRIVE)

# %% [markdown]
# ## The data
#
# The same data as in the first notebook (reused if it is already in `WORK_DIR`):
# CAMUS from your Drive if `CAMUS_DIR` is set, otherwise the synthetic CAMUS. The trials
# train on the fold's training patients and are compared on its validation patients;
# the test patients stay untouched until the end.

# %%
manual_dir, data_dir = notebook.locate_camus(
    CAMUS_DIR, WORK_DIR, patients=PATIENTS, scale=SCALE, seed=SEED
)

# %%
builder, splits, sizes = notebook.prepare_fold(manual_dir, data_dir, FOLD)

# %% [markdown]
# ## The search space
#
# `SearchSpace` declares `dil` and `shift` as KerasTuner hyper-parameters: here `dil`
# from 5 to 35 pixels (at 256 x 256 the paper's 11 and 30 are inside) and `shift` from
# 0.3 to 0.8 (`SearchSpace(dil_values=(11, 30), shift_values=(0.5, 0.7))` with
# `ORACLE = "grid"` is the paper's sweep). `RunetHyperModel` turns a trial's values into
# a `TrainConfig` and a compiled RU-Net; every other setting comes from the base config,
# built by `keras_runet.config.train_config` (which checks every value). Here, the
# configuration of the space's first point:

# %%
space = tuning.SearchSpace(dil_range=(5, 35), shift_range=(0.3, 0.8))
base_config = train_config(
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

# %% [markdown]
# ## The search
#
# `run_search` creates the oracle and the tuner and runs the trials. The objective's
# direction is always explicit (`Objective("val_outlier_rate", direction="min")`):
# KerasTuner would otherwise guess it from the name. The study lives in `study_dir`:
# rerunning this cell resumes it (finished trials are kept, an interrupted one
# continues at its last finished epoch). The same search runs from the command line
# (`runet tune`), and on several machines with KerasTuner's chief / worker mode (see
# docs/tuning.md).

# %%
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

# %% [markdown]
# ## The results
#
# One line per trial, best objective first (the same table is in `results.csv`).
# "ROI" is the fraction of the image RU-Net's mask keeps: at 1.00 the first U-Net
# does not predict background yet, the mask is all ones and `dil` and `shift` change
# nothing (train the trials longer; see docs/tuning.md).

# %%
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
display(Markdown("\n".join(table)))
print(result.paths["results_csv"])

# %% [markdown]
# The objective over the searched space, the best trial starred:

# %%
display(keras.utils.load_img(result.paths["figure"]))

# %% [markdown]
# ## Retraining the best setting
#
# The trials were short. `retrain_best` trains the best `dil` and `shift` again for
# `EPOCHS` epochs (in `study_dir/best_run`, resumable) and copies the best epoch to
# `study_dir/best.keras`. The held-out test patients, which no choice so far has seen,
# then give its outlier rates.

# %%
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

# %% [markdown]
# `study_dir/best.keras` is a regular RU-Net: evaluate it in full as in the first
# notebook, or export it for TF Serving with the third one
# (`RUNET_NB_MODEL=<study_dir>/best.keras`).
