"""KerasTuner search over RU-Net's dil and shift: objectives, resume, reproducibility, CLI.

The distributed (chief + workers over loopback) test is in test_tuning_distributed.py.
Every search asserts that each trial's status is COMPLETED: KerasTuner's search returns
normally when every trial fails (docs/design.md, known traps).
"""

import dataclasses
import json
import math
import shutil
from pathlib import Path

import keras_tuner
import numpy as np
import pytest

from keras_runet import cli, tuning
from keras_runet.cross_validation import fold_split_strings
from keras_runet.training import TrainConfig

# Tiny trials: a 64 x 64 quarter-width RU-Net, one epoch, eager (no graph tracing, which
# costs more than such a training on CPU).
TINY = TrainConfig(
    width=0.25, image_size=(64, 64), epochs=1, batch_size=8, patience=0, seed=1, run_eagerly=True
)


@pytest.fixture(scope="session")
def camus_tune(tmp_path_factory):
    """A prepared synthetic CAMUS with fold 1's parts: groups 1 (test), 2 (val), 3 (train)."""
    import tfds_camus
    from keras_runet import data

    root_dir = tmp_path_factory.mktemp("camus_tune")
    ids = [p for k in (1, 2, 3) for p in tfds_camus.folds.group_patients(k)[:2]]
    root = tfds_camus.phantom.write_synthetic_camus(
        root_dir / "camus", patient_ids=ids, scale=0.3, seed=3
    )
    builder = data.prepare_camus(root, root_dir / "tfds")
    return {"root": root, "data_dir": root_dir / "tfds", "builder": builder}


def _splits(camus):
    builder = camus["builder"]
    s = fold_split_strings(builder, 1)
    return builder.as_dataset(split=s["train"]), builder.as_dataset(split=s["validation"])


def _search(camus, study_dir, **kwargs):
    options = dict(base_config=TINY, oracle="random", objective="outliers", max_trials=2)
    options.update(kwargs)
    return tuning.run_search(study_dir, *_splits(camus), figure=False, **options)


def _assert_all_completed(rows, n):
    assert len(rows) == n
    statuses = {r["trial_id"]: r["status"] for r in rows}
    assert all(s == "COMPLETED" for s in statuses.values()), statuses


def _read_hparams(folder):
    """The TensorBoard HParams data of the event files directly in ``folder``, read back
    with TensorBoard's own reader: {"experiment", "start", "end"} (parsed plugin data, or
    None), "scalars" (tag -> last value) and "files" (the event files)."""
    import tensorflow as tf
    from tensorboard.backend.event_processing import event_accumulator
    from tensorboard.plugins.hparams import metadata

    acc = event_accumulator.EventAccumulator(
        str(folder), size_guidance={event_accumulator.TENSORS: 0}
    )
    acc.Reload()
    content = acc.PluginTagToContent(metadata.PLUGIN_NAME)
    parsers = {
        "experiment": (metadata.EXPERIMENT_TAG, metadata.parse_experiment_plugin_data),
        "start": (metadata.SESSION_START_INFO_TAG, metadata.parse_session_start_info_plugin_data),
        "end": (metadata.SESSION_END_INFO_TAG, metadata.parse_session_end_info_plugin_data),
    }
    data = {
        k: parse(content[tag]) if tag in content else None for k, (tag, parse) in parsers.items()
    }
    data["scalars"] = {
        tag: float(tf.make_ndarray(acc.Tensors(tag)[-1].tensor_proto))
        for tag in acc.Tags()["tensors"]
        if tag not in content
    }
    data["files"] = sorted(p.name for p in Path(folder).glob("events.out.tfevents.*"))
    return data


def _hparam_values(start_info):
    """The session's hyper-parameters as Python values."""
    return {name: v.string_value if v.HasField("string_value") else v.number_value
            for name, v in start_info.hparams.items()}  # fmt: skip


@pytest.fixture(scope="module")
def study(camus_tune, tmp_path_factory):
    study_dir = tmp_path_factory.mktemp("tuning") / "study"
    result = tuning.run_search(study_dir, *_splits(camus_tune), base_config=TINY,
                               oracle="random", objective="outliers", max_trials=2)  # fmt: skip
    return result


# --------------------------------------------------------------------------- units


def test_tuning_objectives_have_explicit_directions():
    assert tuning.make_objective("dice") == keras_tuner.Objective(
        "val_segmentation_dice", direction="max"
    )
    for name in ("outliers", "geometric", "anatomical"):
        objective = tuning.make_objective(name)
        assert objective.direction == "min" and objective.name.endswith("outlier_rate")
    assert tuning.make_objective("val_outlier_rate").direction == "min"
    with pytest.raises(ValueError, match="'accuracy'"):
        tuning.make_objective("accuracy")


def test_tuning_search_space_checks_name_the_value():
    with pytest.raises(ValueError, match=r"dil_range.*\(40, 3\)"):
        tuning.SearchSpace(dil_range=(40, 3))
    with pytest.raises(ValueError, match=r"shift_range.*\(0.1, 1.5\)"):
        tuning.SearchSpace(shift_range=(0.1, 1.5))
    with pytest.raises(ValueError, match=r"shift_values.*1.2"):
        tuning.SearchSpace(shift_values=(0.5, 1.2))
    assert tuning.SearchSpace(dil_values=(11, 30), shift_values=(0.5, 0.7)).grid_size() == 4
    assert tuning.SearchSpace(dil_range=(3, 11), dil_step=4, shift_step=0.4).grid_size() == 3 * 3
    assert tuning.SearchSpace().grid_size() is None  # continuous shift
    objective = tuning.make_objective("outliers")
    with pytest.raises(ValueError, match="finite space"):
        tuning.make_oracle("grid", objective, space=tuning.SearchSpace())
    with pytest.raises(ValueError, match="'annealing'"):
        tuning.make_oracle("annealing", objective)
    for name in tuning.ORACLES:
        oracle = tuning.make_oracle(
            name, objective, space=tuning.SearchSpace(shift_step=0.2), max_epochs=4
        )
        assert oracle.objective == objective


def test_tuning_bayesian_oracle_proposes_from_its_gaussian_process(tmp_path):
    # No training: the oracle is fed a known objective (best at dil 20, shift 0.5).
    oracle = tuning.make_oracle(
        "bayesian", tuning.make_objective("outliers"), max_trials=5, seed=0,
        bayesian_initial_points=2,
    )  # fmt: skip
    oracle._set_project_dir(str(tmp_path), "bayesian")
    hp = oracle.get_space()
    tuning.SearchSpace().declare(hp)
    oracle.update_space(hp)
    for _ in range(5):
        trial = oracle.create_trial("tuner0")
        assert trial.status == "RUNNING"
        values = trial.hyperparameters.values
        rate = abs(values["dil"] - 20) / 40 + abs(values["shift"] - 0.5)
        oracle.update_trial(trial.trial_id, {"val_outlier_rate": rate})
        trial.status = "COMPLETED"
        oracle.end_trial(trial)
    assert oracle.create_trial("tuner0").status == "STOPPED"
    rows = tuning.trial_rows(oracle)
    _assert_all_completed(rows, 5)
    assert len({(r["dil"], r["shift"]) for r in rows}) == 5
    assert sum(r["is_best"] for r in rows) == 1
    best = next(r for r in rows if r["is_best"])
    assert best["score"] == min(r["score"] for r in rows)


def test_tuning_search_space_declares_the_hyperparameters():
    space = tuning.SearchSpace(
        dil_range=(3, 40), shift_range=(0.1, 0.9), tune_learning_rate=True, tune_loss_weights=True
    )
    hp = keras_tuner.HyperParameters()
    hypermodel = tuning.RunetHyperModel(space, TINY)
    config = hypermodel.train_config(hp)
    assert set(hp.values) == {"dil", "shift", "learning_rate", "coarse_loss_weight"}
    assert (config.dil, config.shift) == (hp.values["dil"], hp.values["shift"])
    assert config.learning_rate == hp.values["learning_rate"]
    assert config.loss_weights == {
        "coarse": hp.values["coarse_loss_weight"],
        "segmentation": 1.0,
    }
    hp.values.update({"dil": 30, "shift": 0.7})
    model = hypermodel.build(hp)
    roi = model.get_layer("roi_attention")
    assert (roi.dil, roi.shift) == (30, 0.7)
    assert set(model.output_names) == {"coarse", "segmentation"}
    with pytest.raises(ValueError, match="'unet1'"):
        tuning.RunetHyperModel(space, TrainConfig(model="unet1"))
    assert not model.loss["segmentation"].include_background
    with_background = tuning.RunetHyperModel(
        space, dataclasses.replace(TINY, include_background=True)
    )
    assert with_background.build(hp).loss["coarse"].include_background


def test_tuning_outlier_rates_count_either_kind():
    def row(geo, ana, dice=0.8):
        return {"geometric_outlier": geo, "anatomical_outlier": ana, "LVendo_dice": dice,
                "LVepi_dice": dice, "LA_dice": math.nan}  # fmt: skip

    rates = tuning.outlier_rates(
        [row(True, False), row(True, True), row(False, False), row(False, True)]
    )
    assert rates["val_outlier_rate"] == 0.75
    assert rates["val_geometric_outlier_rate"] == 0.5
    assert rates["val_anatomical_outlier_rate"] == 0.5
    assert rates["val_native_dice"] == pytest.approx(0.8 * 2 / 3)  # a missing LA scores 0
    assert rates["val_images"] == 4
    with pytest.raises(ValueError, match="no evaluation rows"):
        tuning.outlier_rates([])


def test_tuning_hyperparameters_map_to_one_train_config():
    # RunetHyperModel.train_config and best_train_config share train_config_for.
    config = tuning.train_config_for(
        {"dil": 30, "shift": 0.7, "learning_rate": None, "coarse_loss_weight": 0.5,
         "epochs": 9, "trial_id": "3"}, TINY,
    )  # fmt: skip
    assert (config.dil, config.shift, config.epochs) == (30, 0.7, TINY.epochs)
    assert config.learning_rate == TINY.learning_rate  # None: not tuned
    assert config.loss_weights == {"coarse": 0.5, "segmentation": 1.0}
    assert tuning.train_config_for({"dil": 5, "shift": 0.2}, TINY, epochs=4).epochs == 4


def test_tuning_best_train_config_reads_the_best_trial(tmp_path):
    best = {"trial_id": "1", "dil": 30, "shift": 0.7, "learning_rate": 0.002,
            "coarse_loss_weight": None, "epochs": None}  # fmt: skip
    (tmp_path / "best.json").write_text(json.dumps({"best": best}))
    (tmp_path / "study.json").write_text(json.dumps({"train": TINY.to_json()}))
    config = tuning.best_train_config(tmp_path, epochs=5)
    assert (config.dil, config.shift, config.learning_rate, config.epochs) == (30, 0.7, 0.002, 5)
    assert config.loss_weights == TINY.loss_weights and config.width == TINY.width
    (tmp_path / "best.json").write_text(json.dumps({"best": None}))
    with pytest.raises(ValueError, match="no completed trial"):
        tuning.best_train_config(tmp_path)


def _tiny_camus_examples(n=3, native_shape=(70, 60)):
    """A few camus examples in memory (the features the split evaluation reads): horizontal
    ramps of a different brightness each, so that the stub's ROI differs per image."""
    import tensorflow as tf

    h, w = native_shape
    masks = np.zeros((n, h, w, 1), np.uint8)
    masks[:, 20:50, 15:30] = 1
    masks[:, 20:50, 30:35] = 2
    masks[:, 50:62, 15:35] = 3
    ramp = np.linspace(0.0, 1.0, w)[None, None, :, None]
    gains = np.linspace(0.6, 1.0, n)[:, None, None, None]
    images = np.broadcast_to(255 * gains * ramp, (n, h, w, 1)).astype(np.uint8)
    return tf.data.Dataset.from_tensor_slices({
        "image": images, "mask": masks, "native_mask": masks,
        "native_shape": np.tile([h, w], (n, 1)).astype(np.int32),
        "patient_id": [f"patient{i:04d}".encode() for i in range(1, n + 1)],
        "view": np.zeros(n, np.int64), "instant": np.arange(n) % 2,
        "frame_index": np.zeros(n, np.int64), "image_quality": np.zeros(n, np.int64),
        "spacing": np.full((n, 2), 0.3, np.float32), "ef": np.full(n, 60.0, np.float32),
        "edv": np.full(n, 100.0, np.float32), "esv": np.full(n, 40.0, np.float32),
    })  # fmt: skip


class _StubRunet:
    """RU-Net's interface without its U-Nets (no build, no tracing): a real ``roi_attention``
    layer, and a ``coarse`` output whose foreground probability is the image itself."""

    name = "stub_runet"
    output_names = ["coarse", "segmentation"]

    def __init__(self):
        from keras_runet.layers import RoiAttention

        self.roi = RoiAttention(dil=3, shift=0.5, name="roi_attention")
        self.batches = 0

    def get_layer(self, name):
        if name != "roi_attention":
            raise ValueError(f"no layer {name!r}")
        return self.roi

    def predict_on_batch(self, images):
        self.batches += 1
        fg = np.asarray(images, np.float32)[..., 0]
        coarse = np.stack([1.0 - fg, 0.5 * fg, 0.3 * fg, 0.2 * fg], axis=-1)
        return {"coarse": coarse, "segmentation": coarse[..., [0, 3, 2, 1]]}


def test_split_evaluation_gives_the_roi_fraction_of_the_same_forward_pass():
    # Before: tuning ran a second pass (the training pipeline's batches, coarse output, then
    # roi_mask_means) just for the ROI fraction. The one pass must give the same value.
    from keras_runet import split_evaluation
    from keras_runet.data import make_dataset
    from keras_runet.models import roi_mask_means

    model, examples = _StubRunet(), _tiny_camus_examples()
    two_pass = []
    for images, _ in make_dataset(examples, ["coarse"], batch_size=2, image_size=(32, 32)):
        two_pass.extend(roi_mask_means(model, images, model.predict_on_batch(images)["coarse"]))
    assert len(two_pass) == 3 and 0.3 < min(two_pass) < max(two_pass) < 0.99  # not trivial
    model.batches = 0
    items = split_evaluation.predict_examples(
        model, examples, image_size=(32, 32), batch_size=2, outputs=["segmentation"]
    )["segmentation"]
    assert model.batches == 2  # 3 images in batches of 2: one forward pass
    assert [it["pred"].shape for it in items] == [(70, 60)] * 3  # native grid
    np.testing.assert_allclose([it["roi_fraction"] for it in items], two_pass, atol=1e-6)
    model.batches = 0
    metrics = tuning.evaluate_model(model, examples, image_size=(32, 32), batch_size=2)
    assert model.batches == 2 and metrics["val_images"] == 3
    assert metrics["val_roi_fraction"] == pytest.approx(np.mean(two_pass), abs=1e-6)
    assert tuning.roi_fraction(model, examples, image_size=(32, 32), batch_size=2) == (
        pytest.approx(np.mean(two_pass), abs=1e-6)
    )


# --------------------------------------------------------------------------- searches


def test_tuning_search_completes_every_trial_and_writes_the_table(study):
    _assert_all_completed(study.rows, 2)
    table = tuning.read_results_csv(study.paths["results_csv"])
    assert [r["trial_id"] for r in table] == [r["trial_id"] for r in study.rows]
    assert all(r["status"] == "COMPLETED" for r in table)
    for r in study.rows:
        assert 3 <= r["dil"] <= 40 and 0.1 <= r["shift"] <= 0.9
        assert 0.0 <= r["val_segmentation_dice"] <= 1.0
        for name in ("val_outlier_rate", "val_geometric_outlier_rate",
                     "val_anatomical_outlier_rate"):  # fmt: skip
            # 8 validation images: rates are multiples of 1/8
            assert r[name] * 8 == pytest.approx(round(r[name] * 8))
        assert r["val_outlier_rate"] >= max(
            r["val_geometric_outlier_rate"], r["val_anatomical_outlier_rate"]
        )
        assert r["score"] == r["val_outlier_rate"] and r["seconds"] > 0
        assert 0.0 < r["val_roi_fraction"] <= 1.0
    trial_dir = study.study_dir / "keras_tuner" / f"trial_{study.rows[0]['trial_id']}"
    result = json.loads((trial_dir / "result.json").read_text())
    assert result["val_images"] == 8
    assert (trial_dir / "run" / "best.keras").exists()
    assert study.paths["figure"].stat().st_size > 10_000
    best = json.loads(study.paths["best_json"].read_text())
    assert best["direction"] == "min" and best["best"]["trial_id"] == study.best["trial_id"]
    assert study.best["score"] == min(r["score"] for r in study.rows)
    assert study.trials_run == 2
    assert tuning.trial_rows(tuning.load_study(study.study_dir)) == study.rows


def test_tuning_a_failing_trial_is_reported_not_hidden(camus_tune, tmp_path, monkeypatch):
    # KerasTuner's search returns normally when every trial fails: the table must say so.
    def broken_train(*args, **kwargs):
        raise RuntimeError("out of memory (simulated)")

    monkeypatch.setattr(tuning.tuner, "train", broken_train)  # what run_trial calls
    result = _search(camus_tune, tmp_path / "broken", max_trials=1)
    assert [r["status"] for r in result.rows] == ["FAILED"]
    assert result.best is None and math.isnan(result.rows[0]["val_outlier_rate"])
    trial_json = tmp_path / "broken" / "keras_tuner" / "trial_0" / "trial.json"
    assert "out of memory (simulated)" in json.loads(trial_json.read_text())["message"]
    # The HParams dashboard shows it as failed, with its hyper-parameters and no metric.
    from tensorboard.plugins.hparams import api_pb2

    session = _read_hparams(trial_json.parent)
    assert session["end"].status == api_pb2.STATUS_FAILURE and session["scalars"] == {}
    assert set(_hparam_values(session["start"])) == {"dil", "shift"}


def test_tuning_rerun_resumes_without_repeating_finished_trials(study, camus_tune, tmp_path):
    study_dir = tmp_path / "study"
    shutil.copytree(study.study_dir, study_dir)
    again = _search(camus_tune, study_dir, max_trials=2)
    assert again.trials_run == 0  # everything was finished
    extended = _search(camus_tune, study_dir, max_trials=3)
    assert extended.trials_run == 1
    _assert_all_completed(extended.rows, 3)
    for before, after in zip(study.rows, extended.rows[:2], strict=False):
        assert before == {**after, "is_best": before["is_best"]}
    runs = [e["trial_id"] for e in tuning.read_executions(study_dir)]
    assert sorted(runs) == sorted(r["trial_id"] for r in extended.rows)  # each ran once
    # One HParams experiment summary, one session per trial (the resumes added none twice).
    assert len(_read_hparams(study_dir / "keras_tuner")["files"]) == 1
    for row in extended.rows:
        assert (
            len(_read_hparams(study_dir / "keras_tuner" / f"trial_{row['trial_id']}")["files"]) == 1
        )
    with pytest.raises(ValueError, match="another configuration.*oracle"):
        _search(camus_tune, study_dir, oracle="bayesian")


def test_tuning_rerun_retries_an_interrupted_trial(study, camus_tune, tmp_path):
    # A trial that was running when the process died: the oracle state says "ongoing".
    study_dir = tmp_path / "study"
    shutil.copytree(study.study_dir, study_dir)
    oracle_path = study_dir / "keras_tuner" / "oracle.json"
    state = json.loads(oracle_path.read_text())
    last = study.rows[-1]["trial_id"]
    state["ongoing_trials"] = {"tuner0": last}
    state["end_order"].remove(last)
    state["run_times"][last] = 0
    oracle_path.write_text(json.dumps(state))
    trial_path = study_dir / "keras_tuner" / f"trial_{last}" / "trial.json"
    trial = json.loads(trial_path.read_text())
    trial["status"], trial["score"] = "RUNNING", None
    trial["metrics"]["metrics"] = {}
    trial_path.write_text(json.dumps(trial))
    (study_dir / "keras_tuner" / f"trial_{last}" / "run" / "done.json").unlink()

    resumed = _search(camus_tune, study_dir, max_trials=2)
    assert resumed.trials_run == 1  # only the interrupted trial ran again
    _assert_all_completed(resumed.rows, 2)
    runs = [e["trial_id"] for e in tuning.read_executions(study_dir)]
    assert runs.count(last) == 2 and len(runs) == 3
    # The retried trial's new session replaced the one it had (one run per trial).
    retried = _read_hparams(study_dir / "keras_tuner" / f"trial_{last}")
    assert len(retried["files"]) == 1
    assert retried["scalars"]["val_segmentation_dice"] == pytest.approx(
        resumed.rows[-1]["val_segmentation_dice"], rel=1e-6
    )
    assert resumed.rows[-1]["val_segmentation_dice"] == pytest.approx(
        study.rows[-1]["val_segmentation_dice"]
    )


def test_tuning_is_reproducible_with_a_seed(study, camus_tune, tmp_path):
    again = _search(camus_tune, tmp_path / "same_seed")
    _assert_all_completed(again.rows, 2)
    for a, b in zip(study.rows, again.rows, strict=True):
        assert (a["dil"], a["shift"]) == (b["dil"], b["shift"])
        for name in ("val_segmentation_dice", "val_outlier_rate", "val_native_dice"):
            assert a[name] == pytest.approx(b[name], abs=1e-5), name
    other = tuning.make_oracle("random", tuning.make_objective("outliers"), seed=2)
    hp = other.get_space()
    tuning.SearchSpace().declare(hp)
    other.update_space(hp)
    other._set_project_dir(str(tmp_path), "other_seed")
    values = other.populate_space("0")["values"]
    assert (values["dil"], values["shift"]) != (study.rows[0]["dil"], study.rows[0]["shift"])


# --------------------------------------------------------------------------- KerasTuner's API


def test_tuning_trials_write_tensorboard_hparams(study):
    # `tensorboard --logdir STUDY_DIR`: the experiment summary in keras_tuner/, one session
    # per trial in its trial_<id>/, its values those of result.json.
    from tensorboard.plugins.hparams import api_pb2

    project = study.study_dir / "keras_tuner"
    experiment = _read_hparams(project)
    assert len(experiment["files"]) == 1
    config = experiment["experiment"]
    assert {h.name for h in config.hparam_infos} == {"dil", "shift"}  # the searched space
    dil = next(h for h in config.hparam_infos if h.name == "dil")
    assert (dil.domain_interval.min_value, dil.domain_interval.max_value) == (3, 40)
    assert [m.name.tag for m in config.metric_infos] == list(tuning.METRICS)
    for row in study.rows:
        trial_dir = project / f"trial_{row['trial_id']}"
        result = json.loads((trial_dir / "result.json").read_text())
        session = _read_hparams(trial_dir)
        assert len(session["files"]) == 1
        assert session["start"].group_name == row["trial_id"]
        assert _hparam_values(session["start"]) == pytest.approx(result["hyperparameters"])
        assert session["end"].status == api_pb2.STATUS_SUCCESS
        assert session["scalars"] == pytest.approx(result["metrics"], rel=1e-6)  # float32
        assert set(session["scalars"]) == set(tuning.METRICS)


def test_tuning_hparams_name_every_searched_hyperparameter(tmp_path):
    # Every kind of hyper-parameter of the space (Int, stepped Float, string and number
    # Choices, log Float), without a training: the session is written, then rewritten.
    from tensorboard.plugins.hparams import api_pb2

    space = tuning.SearchSpace(
        dil_values=(11, 30), shift_step=0.2, roi_classes_values=("all", "lvepi"),
        roi_kernel_values=("box", "disk"), roi_slope_values=(50, 100),
        tune_learning_rate=True, tune_loss_weights=True,
    )  # fmt: skip
    hp = keras_tuner.HyperParameters()
    space.declare(hp)
    hp.values.update(dil=30, shift=0.5, roi_classes="lvepi", roi_kernel="disk", roi_slope=100.0,
                     learning_rate=2e-3, coarse_loss_weight=0.5)  # fmt: skip
    objective = tuning.make_objective("outliers")
    assert tuning.hparams.write_experiment(tmp_path, hp, tuning.METRICS, objective) is not None
    assert tuning.hparams.write_experiment(tmp_path, hp, tuning.METRICS, objective) is None
    config = _read_hparams(tmp_path)["experiment"]
    infos = {h.name: h for h in config.hparam_infos}
    assert set(infos) == set(tuning.HP_NAMES)
    assert list(infos["roi_classes"].domain_discrete) == ["all", "lvepi"]
    assert list(infos["roi_slope"].domain_discrete) == [50, 100]
    assert list(infos["shift"].domain_discrete) == pytest.approx([0.1, 0.3, 0.5, 0.7, 0.9])
    described = {m.name.tag: m.description for m in config.metric_infos}
    assert "objective" in described["val_outlier_rate"] and not described["val_roi_fraction"]

    run = tmp_path / "trial_7"
    tuning.hparams.write_session(run, hp, "7", failed=True)  # a first try that failed
    metrics = {"val_outlier_rate": 0.25, "val_roi_fraction": 0.5}
    tuning.hparams.write_session(run, hp, "7", metrics, start_time=1000.0, end_time=1060.0)
    session = _read_hparams(run)
    assert len(session["files"]) == 1  # the retry replaced the failed session
    assert _hparam_values(session["start"]) == pytest.approx(hp.values)
    assert session["start"].start_time_secs == 1000.0 and session["end"].end_time_secs == 1060.0
    assert session["end"].status == api_pb2.STATUS_SUCCESS
    assert session["scalars"] == metrics


def test_tuning_load_tuner_gives_kerastuners_best_models_and_summary(study, capsys):
    import keras

    tuner = tuning.load_tuner(study.study_dir)
    assert isinstance(tuner, keras_tuner.Tuner)
    best_id = study.best["trial_id"]
    # KerasTuner's ranking agrees with best.json (ties: the earliest trial).
    assert [t.trial_id for t in tuner.oracle.get_best_trials(2)][0] == best_id
    assert tuner.get_best_hyperparameters(1)[0].values["dil"] == study.best["dil"]
    (model,) = tuner.get_best_models(1)
    assert isinstance(model, keras.Model)

    def weights(trial_id):
        path = study.study_dir / "keras_tuner" / f"trial_{trial_id}" / "run" / "best.keras"
        return keras.saving.load_model(path, compile=False).get_weights()

    got = model.get_weights()
    expected = weights(best_id)
    assert len(got) == len(expected)
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_array_equal(a, b)
    (other,) = (r["trial_id"] for r in study.rows if r["trial_id"] != best_id)
    assert any(not np.array_equal(a, b) for a, b in zip(got, weights(other), strict=True))

    tuner.results_summary()
    printed = capsys.readouterr().out
    assert printed.startswith("Results summary\n")
    assert printed.index(f"Trial {best_id} summary") < printed.index(f"Trial {other} summary")
    assert f"dil: {study.best['dil']}\n" in printed and f"Score: {study.best['score']}" in printed
    with pytest.raises(FileNotFoundError, match="holds no study"):
        tuning.load_tuner(study.study_dir / "keras_tuner")


def test_tuning_log_line_shows_every_searched_hyperparameter():
    values = {"dil": 30, "shift": 0.5, "roi_classes": "lvepi", "roi_kernel": "disk",
              "roi_slope": 100.0, "learning_rate": 2e-3, "coarse_loss_weight": 0.5,
              "tuner/epochs": 4, "tuner/trial_id": "0001"}  # fmt: skip
    text = tuning.tuner._hps_text(values)
    assert text == (
        "dil=30 shift=0.500 roi_classes=lvepi roi_kernel=disk roi_slope=100.0 "
        "learning_rate=2.00e-03 coarse_loss_weight=0.50 epochs=4"
    )
    for name in tuning.HP_NAMES:  # each alone: no searched one is left out
        assert tuning.tuner._hps_text({name: values[name]}).startswith(f"{name}=")
    assert tuning.tuner._hps_text({"dil": 11, "shift": 0.7, "learning_rate": None}) == (
        "dil=11 shift=0.700"
    )


# --------------------------------------------------------------------------- command line


@pytest.mark.slow
def test_tune_command_grid_retrain_and_export(camus_tune, tmp_path, capsys):
    out, export = tmp_path / "grid", tmp_path / "export"
    argv = ["tune", "--data-dir", str(camus_tune["data_dir"]), "--out", str(out),
            "--oracle", "grid", "--dil-values", "11,30", "--shift-values", "0.7",
            "--max-trials", "5", "--epochs", "1", "--width", "0.25", "--image-size", "64",
            "--seed", "1", "--run-eagerly", "--objective", "dice",
            "--retrain-best", "--export-best", str(export)]  # fmt: skip
    assert cli.main(argv) == 0
    printed = capsys.readouterr().out
    table = tuning.read_results_csv(out / "results.csv")
    assert [(r["dil"], r["shift"], r["status"]) for r in table] == [
        ("11", "0.7", "COMPLETED"),
        ("30", "0.7", "COMPLETED"),
    ]  # the grid is exhausted after 2 of the 5 trials
    best = json.loads((out / "best.json").read_text())["best"]
    assert f"best: trial {best['trial_id']}: dil={best['dil']} shift=0.7" in printed
    assert (out / "best.keras").exists() and (out / "objective.png").exists()
    assert (export / "1" / "saved_model.pb").exists()
    assert "exported:" in printed
    # A rerun resumes: nothing left to run, same table.
    assert cli.main(argv[:-3]) == 0
    assert len(tuning.read_executions(out)) == 2


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--dil-range", "40,3"], "bad --dil-range '40,3'"),
        (["--shift-range", "0.2,1.5"], "shift_range must satisfy"),
        (["--oracle", "grid"], "--oracle grid needs a finite grid"),
        (["--max-trials", "0"], "--max-trials must be at least 1, got 0"),
        (["--tuner-id", "tuner0"], "missing KERASTUNER_ORACLE_IP, KERASTUNER_ORACLE_PORT"),
        (["--oracle", "hyperband", "--epochs", "1"], "needs --epochs >= 2"),
    ],
)
def test_tune_command_usage_errors_are_one_line(tmp_path, capsys, monkeypatch, extra, message):
    for var in ("KERASTUNER_TUNER_ID", "KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT"):
        # set, then delete: monkeypatch restores "absent" after the command has set it
        monkeypatch.setenv(var, "")
        monkeypatch.delenv(var)
    argv = ["tune", "--data-dir", str(tmp_path), "--out", str(tmp_path / "s"), *extra]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err


def test_tune_command_summary_prints_kerastuners_results_summary(study, capsys):
    before = len(tuning.read_executions(study.study_dir))
    assert cli.main(["tune", "--summary", str(study.study_dir)]) == 0
    printed = capsys.readouterr().out
    assert (
        printed.startswith("Results summary\n") and 'Objective(name="val_outlier_rate"' in printed
    )
    for row in study.rows:
        assert f"Trial {row['trial_id']} summary\nHyperparameters:\ndil: {row['dil']}\n" in printed
    assert len(tuning.read_executions(study.study_dir)) == before  # nothing trained


def test_tune_command_summary_of_no_study_is_one_line(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    for folder, message in [
        (tmp_path / "missing", f"--summary '{tmp_path / 'missing'}' does not exist"),
        (tmp_path / "empty", f"{tmp_path / 'empty'} holds no study (no study.json)"),
    ]:
        assert cli.main(["tune", "--summary", str(folder)]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err, err
    assert cli.main(["tune", "--out", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "runet tune: error: the following arguments are required: --data-dir "
        "(or --summary STUDY_DIR)"
    )


def test_tuning_writes_a_figure_of_the_objective(tmp_path):
    rows = [
        {"trial_id": "0", "status": "COMPLETED", "dil": 11, "shift": 0.5,
         "val_outlier_rate": 0.2, "is_best": False},
        {"trial_id": "1", "status": "COMPLETED", "dil": 30, "shift": 0.7,
         "val_outlier_rate": 0.1, "is_best": True},
        {"trial_id": "2", "status": "FAILED", "dil": 20, "shift": 0.3,
         "val_outlier_rate": math.nan, "is_best": False},
    ]  # fmt: skip
    path = tuning.plot_objective(rows, tmp_path / "objective.png", space=tuning.SearchSpace())
    from PIL import Image

    image = np.asarray(Image.open(path).convert("RGB"))
    assert image.shape[0] > 300 and image.shape[1] > 400
    red = (image[..., 0] > 200) & (image[..., 1] < 60) & (image[..., 2] < 60)
    assert red.sum() > 50  # the best trial's star


KILL_SCRIPT = """
import os, signal, sys
from keras_runet import data, tuning
from keras_runet.cross_validation import fold_split_strings
from keras_runet.training import TrainConfig

data_dir, study_dir, oracle = sys.argv[1:4]
kill_at, max_trials = int(sys.argv[4]), int(sys.argv[5])
builder = data.load_builder(data_dir)
splits = fold_split_strings(builder, 1)
trainings = []
train = tuning.tuner.train


def train_then_maybe_die(*args, **kwargs):
    trainings.append(1)
    if len(trainings) == kill_at:  # the trial is created and RUNNING: kill -9 mid-trial
        os.kill(os.getpid(), signal.SIGKILL)
    return train(*args, **kwargs)


tuning.tuner.train = train_then_maybe_die
config = TrainConfig(width=0.25, image_size=(64, 64), epochs=1, batch_size=8, patience=0,
                     seed=1, run_eagerly=True, steps_per_epoch=1)
space = tuning.SearchSpace(dil_values=(5, 11), shift_values=(0.3, 0.6))
tuning.run_search(study_dir, builder.as_dataset(split=splits["train"]),
                  builder.as_dataset(split=splits["validation"]), base_config=config,
                  space=space, oracle=oracle, objective="outliers", max_trials=max_trials,
                  figure=False)
"""


# grid: our oracle (KerasTuner's loses points, #1055); random: KerasTuner's own resume (the
# retry queue in oracle.json), which the bayesian and hyperband oracles share.
@pytest.mark.parametrize("oracle", ["grid", "random"])
def test_a_search_killed_mid_trial_resumes_to_every_trial_exactly_once(
    camus_tune, tmp_path, oracle
):
    import os
    import subprocess
    import sys

    script = tmp_path / "search.py"
    script.write_text(KILL_SCRIPT)
    study = tmp_path / "study"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}

    n = 4 if oracle == "grid" else 3  # the grid: all of its 2 x 2 points

    def run(kill_at):
        argv = [sys.executable, str(script), str(camus_tune["data_dir"]), str(study), oracle]
        return subprocess.run([*argv, str(kill_at), str(n)], capture_output=True, text=True,
                              timeout=900, env=env)  # fmt: skip

    killed = run(kill_at=2)  # dies as the second trial starts training
    assert killed.returncode == -9, killed.stderr[-2000:]
    resumed = run(kill_at=0)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    rows = tuning.trial_rows(tuning.load_study(study))
    _assert_all_completed(rows, n)
    points = [(r["dil"], round(r["shift"], 6)) for r in rows]
    assert len(set(points)) == n  # no point twice
    if oracle == "grid":
        assert sorted(points) == [(5, 0.3), (5, 0.6), (11, 0.3), (11, 0.6)]  # the whole grid
    runs = [e["trial_id"] for e in tuning.read_executions(study)]
    killed_trial = runs[1]
    assert runs.count(killed_trial) == 2 and len(runs) == n + 1  # only the killed one twice
