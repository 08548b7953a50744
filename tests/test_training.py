"""Data pipeline, resumable training, distribution, fold splits (the `runet cv`, `demo` and
`evaluate` runs are in test_commands.py)."""

import json
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_runet import data, training
from keras_runet.cross_validation import fold_split_strings

TINY = dict(width=0.25, image_size=(64, 64), batch_size=8, patience=0)


# --------------------------------------------------------------------------- data


def test_make_dataset_batches_images_in_unit_range_and_int_labels(camus_tiny):
    ds = camus_tiny["builder"].as_dataset(split="group1")
    batches = data.make_dataset(ds, ["coarse", "segmentation"], batch_size=4, image_size=(64, 64))
    image, targets = next(iter(batches))
    assert image.shape == (4, 64, 64, 1) and image.dtype == tf.float32
    assert set(targets) == {"coarse", "segmentation"}
    labels = targets["segmentation"].numpy()
    assert labels.shape == (4, 64, 64) and labels.dtype == np.int32
    assert set(np.unique(labels)) <= {0, 1, 2, 3} and len(np.unique(labels)) == 4
    assert 0.0 <= float(tf.reduce_min(image)) and float(tf.reduce_max(image)) <= 1.0
    assert data.dataset_size(ds) == 8  # 2 patients x 2 views x 2 instants


def test_augmentation_moves_image_and_mask_together():
    size = 96
    rows, cols = np.mgrid[0:size, 0:size]
    mask = np.zeros((size, size), np.int32)
    mask[((rows - 40) / 20.0) ** 2 + ((cols - 50) / 12.0) ** 2 <= 1] = 1
    mask[((rows - 70) / 8.0) ** 2 + ((cols - 50) / 10.0) ** 2 <= 1] = 3
    image = (mask == 1).astype(np.float32)
    geometric = data.Augmentation(rotation_deg=20, scale=0.15, shift=0.1, gamma=0, contrast=0,
                                  brightness=0)  # fmt: skip
    moved = 0
    for n in range(6):
        img, msk = data.augment_pair(
            tf.constant(image[..., None]), tf.constant(mask[..., None]), tf.constant([7, n]),
            geometric,
        )  # fmt: skip
        img, msk = img.numpy()[..., 0], msk.numpy()[..., 0]
        assert set(np.unique(msk)) <= {0, 1, 3}  # nearest neighbour: no new labels
        from_image, from_mask = img > 0.5, msk == 1
        iou = (from_image & from_mask).sum() / (from_image | from_mask).sum()
        assert iou > 0.95
        moved += int((from_mask != (mask == 1)).sum() > 20)
    assert moved >= 5  # the transforms are not the identity


def test_training_batches_are_deterministic_with_a_seed(camus_tiny):
    ds = camus_tiny["builder"].as_dataset(split="group1+group2", shuffle_files=False)

    def first_batches(seed):
        batches = data.make_dataset(
            ds, ["segmentation"], batch_size=4, training=True, seed=seed,
            augmentation=data.Augmentation(), image_size=(64, 64),
        )  # fmt: skip
        return [b[0].numpy() for b in batches.take(5)]

    a, b, c = first_batches(1), first_batches(1), first_batches(2)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    assert any(not np.array_equal(x, z) for x, z in zip(a, c, strict=True))
    # Epochs differ: batch 4 (second pass over 16 images) is not batch 0 again.
    assert not np.array_equal(a[0], a[4])


# --------------------------------------------------------------------------- training


class StopAtEpoch(keras.callbacks.Callback):
    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            raise KeyboardInterrupt(f"simulated interruption at epoch {epoch}")


def test_train_config_lives_in_keras_runet_config_and_is_still_here():
    from keras_runet import config

    assert training.TrainConfig is config.TrainConfig
    assert training.train_config is config.train_config


def test_history_helpers_write_atomically_and_plot(tmp_path):
    path = tmp_path / "history.csv"
    path.write_text(
        "epoch,loss,segmentation_dice,val_loss,val_segmentation_dice\n"
        "0,1.5,0.2,1.6,0.1\n1,1.2,0.4,1.3,0.3\n2,1.0,0.5,1.1,0.4\n"
    )
    training.truncate_history(path, 2)  # a kill after epoch 3's row, before its checkpoint
    assert [int(r["epoch"]) for r in training.read_history(path)] == [0, 1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["history.csv"]  # no temporary
    training.atomic_write_json(tmp_path / "sub" / "state.json", {"epoch": 2})
    assert json.loads((tmp_path / "sub" / "state.json").read_text()) == {"epoch": 2}
    png = training.plot_history(
        {"unet1": path, "runet": tmp_path / "missing.csv"}, tmp_path / "curves.png"
    )
    assert png == tmp_path / "curves.png" and png.stat().st_size > 10_000
    assert training.plot_history({"x": tmp_path / "missing.csv"}, tmp_path / "none.png") is None
    assert not (tmp_path / "none.png").exists()


def test_atomic_save_model_leaves_the_file_only(tmp_path):
    inp = keras.Input((4,))
    model = keras.Model(inp, keras.layers.Dense(1)(inp))
    training.atomic_save_model(model, tmp_path / "best.keras")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.keras"]
    assert keras.saving.load_model(tmp_path / "best.keras").count_params() == 5


def test_training_resumes_from_the_last_finished_epoch(camus_tiny, tmp_path):
    b = camus_tiny["builder"]
    config = training.TrainConfig(model="unet1", epochs=4, **TINY)
    run = tmp_path / "run"
    args = (config, b.as_dataset(split="group3+group4"), b.as_dataset(split="group2"), run)
    with pytest.raises(KeyboardInterrupt):
        training.train(*args, callbacks=[StopAtEpoch(2)], verbose=0)
    assert json.loads((run / "state.json").read_text()) == {"epoch": 2}
    assert not (run / "done.json").exists()
    weights_at_2 = keras.saving.load_model(run / "last.keras").get_weights()

    seen = []

    class Record(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            # The resumed model starts from the saved weights, not from a new init.
            for w, saved in zip(self.model.get_weights(), weights_at_2, strict=True):
                np.testing.assert_array_equal(w, saved)

        def on_epoch_begin(self, epoch, logs=None):
            seen.append(epoch)

    result = training.train(*args, callbacks=[Record()], verbose=0)
    assert seen == [2, 3]  # continued, did not start over
    assert result.resumed_from == 2 and result.epochs_run == 4
    assert [int(r["epoch"]) for r in result.history] == [0, 1, 2, 3]
    assert (run / "best.keras").exists() and (run / "done.json").exists()
    # A third run of the same command finds the run finished and skips it.
    again = training.train(*args, verbose=0)
    assert again.skipped and again.epochs_run == 4
    # The same directory with another configuration is refused.
    other = training.TrainConfig(model="unet1", epochs=5, **TINY)
    with pytest.raises(ValueError, match="another configuration"):
        training.train(other, *args[1:], verbose=0)


def test_history_keeps_each_epoch_once_after_a_kill_between_row_and_checkpoint(
    camus_tiny, tmp_path
):
    b = camus_tiny["builder"]
    config = training.TrainConfig(model="unet1", epochs=3, steps_per_epoch=1, **TINY)
    run = tmp_path / "run"
    args = (config, b.as_dataset(split="group3+group4"), b.as_dataset(split="group2"), run)
    with pytest.raises(KeyboardInterrupt):
        training.train(*args, callbacks=[StopAtEpoch(2)], verbose=0)
    # A kill after CSVLogger wrote epoch 2's row, before the checkpoint saved epoch 2: the
    # row is there, state.json still says 2 epochs.
    history = run / "history.csv"
    rows = history.read_text().splitlines()
    history.write_text("\n".join([*rows, rows[-1].replace("1,", "2,", 1)]) + "\n")
    result = training.train(*args, verbose=0)
    epochs = [line.split(",")[0] for line in history.read_text().splitlines()[1:]]
    assert epochs == ["0", "1", "2"] and result.epochs_run == 3


class PoisonWeights(keras.callbacks.Callback):
    """Puts a NaN into the first kernel at the start of ``epoch``: the loss turns NaN."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            w = self.model.trainable_weights[0]
            w.assign(np.full(w.shape, np.nan, dtype="float32"))


def test_a_non_finite_loss_stops_with_an_error_and_keeps_the_last_finite_epoch(
    camus_tiny, tmp_path
):
    b = camus_tiny["builder"]
    config = training.TrainConfig(model="unet1", epochs=4, steps_per_epoch=1, **TINY)
    run = tmp_path / "run"
    args = (config, b.as_dataset(split="group3+group4"), b.as_dataset(split="group2"), run)
    with pytest.raises(training.NonFiniteLossError, match=r"loss became nan at epoch 2.*epoch 1"):
        training.train(*args, callbacks=[PoisonWeights(1)], verbose=0)
    assert not (run / "done.json").exists()  # not reported as finished
    assert json.loads((run / "state.json").read_text()) == {"epoch": 1}
    for name in ("last.keras", "best.keras"):
        weights = keras.saving.load_model(run / name).get_weights()
        assert all(np.all(np.isfinite(w)) for w in weights), name


MIRRORED_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from keras_runet import data, training
    builder = data.load_builder(sys.argv[1])
    config = training.TrainConfig(model="runet", epochs=1, width=0.125, image_size=(32, 32),
                                  batch_size=8, patience=0, distribute="mirrored")
    strategy = training.get_strategy("mirrored")
    result = training.train(config, builder.as_dataset(split="group1+group3"),
                            builder.as_dataset(split="group2"), sys.argv[2], verbose=0)
    print(json.dumps({"replicas": strategy.num_replicas_in_sync,
                      "epochs": result.epochs_run, "score": result.best_score}))
    """
)


def test_mirrored_strategy_over_two_logical_cpus(camus_tiny, tmp_path):
    script = tmp_path / "mirrored.py"
    script.write_text(MIRRORED_SCRIPT)
    proc = subprocess.run(
        [sys.executable, str(script), str(camus_tiny["data_dir"]), str(tmp_path / "run")],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["replicas"] == 2
    assert out["epochs"] == 1 and 0.0 <= out["score"] <= 1.0


# --------------------------------------------------------------------------- CV and CLI


def test_fold_splits_are_limited_to_prepared_groups(camus_tiny):
    splits = fold_split_strings(camus_tiny["builder"], 1)
    assert splits == {"train": "group3+group4", "validation": "group2", "test": "group1"}
    with pytest.raises(ValueError, match="no validation patients"):
        fold_split_strings(camus_tiny["builder"], 4)  # validation would be group 5
    with pytest.raises(ValueError, match="1..10"):
        fold_split_strings(camus_tiny["builder"], 11)


def test_fold_split_strings_of_a_complete_dataset_are_the_papers_folds():
    import tfds_camus

    builder = _Builder({f"group{g}": 50 for g in range(1, 11)}, "nifti")
    builder.info.splits = dict.fromkeys(builder.info.metadata["patients_per_split"])
    for k in range(1, 11):  # one fold -> groups mapping: tfds_camus.fold_splits
        assert fold_split_strings(builder, k) == tfds_camus.fold_splits(k)


class _Info:
    def __init__(self, counts, release):
        self.metadata = {"patients_per_split": counts, "release": release}
        self.splits = {}


class _Builder:
    def __init__(self, counts, release):
        self.info = _Info(counts, release)


def test_fold_protocol_on_the_original_release_names_every_fold():
    import tfds_camus
    from keras_runet.cross_validation import fold_protocol

    # The original release's training/ holds patients 1..450 of the paper's 500.
    counts = {
        f"group{k}": sum(int(p[-4:]) <= 450 for p in tfds_camus.folds.group_patients(k))
        for k in range(1, 11)
    }
    assert counts["group10"] == 4 and counts["group9"] == 46  # issue 12's count
    protocol = fold_protocol(_Builder(counts, "original"), range(1, 11))
    rows = {r["fold"]: r for r in protocol["folds"]}
    assert (rows[10]["train"], rows[10]["validation"], rows[10]["test"]) == (396, 50, 4)
    assert (rows[9]["train"], rows[9]["validation"], rows[9]["test"]) == (400, 4, 46)
    assert (rows[1]["train"], rows[1]["validation"], rows[1]["test"]) == (350, 50, 50)
    assert not any(r["as_paper"] for r in rows.values())
    assert (
        len(protocol["deviations"]) == 11
        and "original challenge release" in protocol["deviations"][-1]
    )
    full = fold_protocol(_Builder({f"group{k}": 50 for k in range(1, 11)}, "nifti"), [1, 10])
    assert all(r["as_paper"] for r in full["folds"]) and full["deviations"] == []
