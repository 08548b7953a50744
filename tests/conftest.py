"""Shared test set-up: quiet TensorFlow, a deterministic seed, small helpers."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def synthetic_heart_batch(n=6, size=64, seed=0):
    """Images and 4-class label maps of ellipse 'hearts' (LV, myocardium ring, atrium).

    Not the CAMUS phantom (that lives in tfds_camus): just a learnable toy batch for
    overfitting tests that depend on nothing but numpy.
    """
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:size, 0:size].astype("float32")
    images = np.zeros((n, size, size, 1), "float32")
    labels = np.zeros((n, size, size), "int32")
    for i in range(n):
        cy, cx = rng.uniform(0.35, 0.5) * size, rng.uniform(0.4, 0.6) * size
        a, b = rng.uniform(0.18, 0.25) * size, rng.uniform(0.1, 0.14) * size
        r = ((rows - cy) / a) ** 2 + ((cols - cx) / b) ** 2
        lab = np.zeros((size, size), "int32")
        lab[r <= 1.6] = 2
        lab[r <= 1.0] = 1
        la = ((rows - (cy + a * 1.5)) / (0.3 * a)) ** 2 + ((cols - cx) / (0.9 * b)) ** 2
        lab[(la <= 1.0) & (lab == 0)] = 3
        img = np.where(lab == 2, 0.8, np.where(lab == 1, 0.1, np.where(lab == 3, 0.2, 0.45)))
        img = img + rng.normal(0, 0.05, img.shape)
        images[i, ..., 0] = np.clip(img, 0, 1)
        labels[i] = lab
    return images, labels


@pytest.fixture(scope="session")
def camus_tiny(tmp_path_factory):
    """A prepared synthetic CAMUS: 2 patients in each of the fold groups 1-4 (32 images)."""
    import tfds_camus
    from keras_runet import data

    root_dir = tmp_path_factory.mktemp("camus_tiny")
    ids = [p for k in (1, 2, 3, 4) for p in tfds_camus.folds.group_patients(k)[:2]]
    root = tfds_camus.phantom.write_synthetic_camus(
        root_dir / "camus", patient_ids=ids, scale=0.3, seed=3
    )
    builder = data.prepare_camus(root, root_dir / "tfds")
    return {"root": root, "data_dir": root_dir / "tfds", "builder": builder, "ids": ids}
