# %% [markdown]
# # Exporting RU-Net for TensorFlow Serving
#
# **Description:** export a trained RU-Net as a SavedModel in TF Serving's layout,
# inspect its signatures, answer REST requests the way the server does, and serve it
# with Docker.
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/keras-runet/keras-runet/blob/main/notebooks/03_export_and_serve.ipynb)

# %% [markdown]
# ## Introduction
#
# `keras_runet.export.export_model` writes one numbered version folder, the layout
# [TensorFlow Serving](https://www.tensorflow.org/tfx/guide/serving) watches:
#
# ```
# export/runet/                               the model base path
#   1/saved_model.pb  1/variables/            the SavedModel the server loads
#   1/assets.extra/model.keras                the Keras model, to reload with Keras
#   1/assets.extra/runet_export.json          what was exported, from which data
#   1/assets.extra/tf_serving_warmup_requests TF Serving's warmup requests (one per signature)
# ```
#
# The SavedModel has two signatures. `serving_default` takes float images in [0, 1] of
# any size, resizes them to the model's input size and returns the label map at the size
# of the request (with the class probabilities, and RU-Net's first segmentation under
# `coarse`). `serving_bytes` takes encoded PNG or JPEG images (base64 in JSON).
#
# This notebook checks the export the way the server uses it: it loads the SavedModel
# with plain TensorFlow (no keras-runet code is needed to run it), turns REST JSON
# bodies into signature calls with `keras_runet.serving`, and builds the server's JSON
# replies. The last section gives the Docker command that serves the same folder.

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

import base64
import io
import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import tensorflow as tf
from PIL import Image

import tfds_camus
from keras_runet import evaluation, export, notebook, serving, training
from keras_runet.config import train_config

# %% [markdown]
# ## Parameters
#
# The defaults suit a Colab GPU; in Colab, the next cell is also a form. Every value can
# also come from an environment variable `RUNET_NB_<NAME>` (`notebook.override_parameters`):
# the test suite runs this notebook with tiny values (64 x 64 images, quarter-width networks,
# one or two epochs, ten small synthetic patients) on a CPU.

# %% tags=["parameters"]
WORK_DIR = ""  # @param {type:"string"}
# Colab: keep the work folder on Google Drive (default /content/drive/MyDrive/runet), so
# that the dataset, runs and studies outlive the session.
WORK_ON_DRIVE = False  # @param {type:"boolean"}
# The model to export; empty: the best checkpoint of 01_train_runet.ipynb.
MODEL = ""  # @param {type:"string"}
MODEL_NAME = "runet"  # the name in the server's URLs

# The data, as in the first notebook (a test image for the requests; and the training
# data if there is no model yet and one has to be trained here).
CAMUS_DIR = ""  # @param {type:"string"}
PATIENTS = 100  # @param {type:"integer"}
SCALE = 0.5  # @param {type:"number"}
FOLD = 1  # @param {type:"integer"}
IMAGE_SIZE = 256  # @param {type:"integer"}
WIDTH = 1.0  # @param {type:"number"}
EPOCHS = 10  # @param {type:"integer"}
BATCH_SIZE = 8  # @param {type:"integer"}
SEED = 0  # @param {type:"integer"}

notebook.override_parameters(globals())  # the RUNET_NB_<NAME> environment variables
WORK_DIR = notebook.work_dir(WORK_DIR, on_drive=WORK_ON_DRIVE)
MODEL_PATH = Path(MODEL or WORK_DIR / "train" / "best.keras")
EXPORT_BASE = WORK_DIR / "export" / "runet"  # the model base path TF Serving watches

# %% [markdown]
# ## The data
#
# The same data as in the first notebook: CAMUS from your Drive if `CAMUS_DIR` is set,
# otherwise the synthetic CAMUS (reused if the first notebook already wrote it in
# `WORK_DIR`).

# %%
manual_dir, data_dir = notebook.locate_camus(
    CAMUS_DIR, WORK_DIR, patients=PATIENTS, scale=SCALE, seed=SEED
)

# %%
builder, splits, sizes = notebook.prepare_fold(manual_dir, data_dir, FOLD)

# %% [markdown]
# ## A trained model
#
# The best checkpoint of the first notebook, if it is there. Otherwise we train one here
# with `keras_runet.training.train`, the package's one-call training: the data pipeline
# and callbacks of the first notebook, in a run directory that a rerun resumes.

# %%
if MODEL_PATH.exists():
    print(f"Using {MODEL_PATH}")
else:
    print(f"{MODEL_PATH} does not exist: training RU-Net for {EPOCHS} epochs")
    config = train_config(
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

# %% [markdown]
# ## Export
#
# Each call writes the next free version (`1`, `2`, ...): TF Serving serves the highest
# one and switches to a new one when it appears. The version is written into a
# temporary folder and renamed into place when complete, so a running server never
# loads half a model.

# %%
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

# %% [markdown]
# ## The signatures
#
# `saved_model_cli` (installed with TensorFlow) shows what the server sees: the inputs
# and outputs of a signature, with their dtypes and shapes (-1: any size).

# %%
shown = subprocess.run(
    [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli", "show",
     "--dir", str(version_dir), "--tag_set", "serve", "--signature_def", "serving_default"],
    capture_output=True, text=True, check=True,
)  # fmt: skip
print(shown.stdout)

# %% [markdown]
# The same for both signatures from Python: `tf.saved_model.load` needs only TensorFlow,
# as the server does.

# %%
loaded = tf.saved_model.load(str(version_dir))
for name, function in loaded.signatures.items():
    print(name)
    for key, spec in function.structured_input_signature[1].items():
        print(f"  input  {key:<14} {spec.dtype.name:<8} {spec.shape}")
    for key, spec in function.structured_outputs.items():
        print(f"  output {key:<14} {spec.dtype.name:<8} {spec.shape}")

# %% [markdown]
# ## A REST request, answered as TF Serving would
#
# A client sends `POST /v1/models/runet:predict` with a JSON body. We take an image of a
# test patient (not seen in training) as the scanner gives it, at its native size, and
# send it in the *row* format: `{"instances": [{"image": ...}, ...]}`, one object per
# image.

# %%
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

# %% [markdown]
# What the server does with it: parse the JSON into tensors, call the signature the body
# names, and write the outputs back as JSON (`{"predictions": [...]}`, one object per
# instance). `keras_runet.serving` does each step as TF Serving does, including its
# checks (a wrong input name, dtype or rank is an HTTP 400 there, a
# `ServingRequestError` here).


# %%
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

# %% [markdown]
# The label map comes back at the size of the request, on the image's own grid, so it
# can be compared with the expert's mask directly (LV cavity in red, myocardium in
# green, left atrium in blue):

# %%
for structure, labels in (("LV cavity", [1]), ("LV epicardium", [1, 2]), ("atrium", [3])):
    dice = evaluation.dice(np.isin(segmentation, labels), np.isin(echo["gt"], labels))
    print(f"Dice {structure:<14} {dice:.3f}")

height, width = segmentation.shape
extent = (0, width * col_mm, height * row_mm, 0)
LABELS = notebook.label_colormap()
fig, axes = plt.subplots(1, 2, figsize=(10, 5))
for ax, (title, label_map) in zip(
    axes, (("Expert", echo["gt"]), ("Reply of the server", segmentation)), strict=True
):
    ax.imshow(image[..., 0], cmap="gray", extent=extent)
    ax.imshow(label_map, cmap=LABELS, vmin=0, vmax=3, alpha=0.35, extent=extent)
    ax.set(title=f"{title}: {patient_id} 4CH ED", xlabel="mm", ylabel="mm")
plt.show()

# %% [markdown]
# ### The columnar format and encoded images
#
# The same request in the *columnar* format, `{"inputs": {"image": batch}}`, gets
# `{"outputs": {...}}` back. And `serving_bytes` takes the PNG file itself, base64
# encoded as `{"b64": ...}`: a much smaller body, decoded on the server to the same
# pixels, hence the same answer.

# %%
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

# %% [markdown]
# ## Serving with Docker
#
# On a machine with Docker (not in Colab), TF Serving's image serves the export folder
# as it is: mount the model base path (the folder that holds the version folders) at
# `/models/runet`. The server loads the highest version, and a newer one as soon as it
# appears.

# %%
request_path = WORK_DIR / "request.json"
request_path.write_text(bytes_body)

print("docker run -p 8501:8501 \\")
print(f"  --mount type=bind,source={EXPORT_BASE.resolve()},target=/models/{MODEL_NAME} \\")
print(f"  -e MODEL_NAME={MODEL_NAME} -t tensorflow/serving")
print()
print("# then, from another shell: the PNG request written above")
print(f"curl -s -X POST -H 'Content-Type: application/json' -d @{request_path.resolve()} \\")
print(f"  http://localhost:8501/v1/models/{MODEL_NAME}:predict")

# %% [markdown]
# From Python, with `requests`:
#
# ```python
# import requests
#
# reply = requests.post(
#     "http://localhost:8501/v1/models/runet:predict", data=bytes_body, timeout=30
# ).json()
# segmentation = np.array(reply["predictions"][0]["segmentation"])
# ```
#
# The gRPC API (port 8500) takes the same tensors in a `PredictRequest`:
# `keras_runet.serving.make_predict_request` builds one (it needs the
# `tensorflow-serving-api` package). The Keras model itself is in the export too: reload
# it with `keras.saving.load_model(version_dir / "assets.extra" / "model.keras")` (after
# `import keras_runet`, which registers RU-Net's layers). More in the repository's
# `docs/serving.md`, including `runet export` and `runet predict` on the command line.
