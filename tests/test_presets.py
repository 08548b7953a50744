"""keras_runet.presets (issue 15): the presets, each value's provenance, the deviations from
the paper, --preset on the command line, and where the run records them. No TensorFlow."""

import argparse
import dataclasses
import json
import types

import pytest

from keras_runet import config as cfg
from keras_runet import presets
from keras_runet.commands import _common


def _parser(command):
    from keras_runet.cli import build_parser

    parser = build_parser([command])
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[command]


REQUIRED = {"train": ["--data-dir", "d", "--out", "o"], "cv": ["--data-dir", "d", "--out", "o"],
            "tune": ["--data-dir", "d", "--out", "o"]}  # fmt: skip


def _config(command, *flags, model="runet"):
    args = _parser(command).parse_args([*REQUIRED[command], *flags])
    return _common.train_config_from_args(args, model)


def test_every_preset_sets_every_training_field_with_a_source_and_a_reason():
    trained = {f.name for f in dataclasses.fields(cfg.TrainConfig)} - {"model", "preset"}
    for name, settings in presets.PRESETS.items():
        assert set(settings) == trained - set(presets.EXECUTION_FIELDS), name
        for field, s in settings.items():
            assert s.source in presets.SOURCES and len(s.reason) > 15, (name, field)
        assert name in presets.PRESET_DESCRIPTIONS
        cfg.train_config(**presets.preset_values(name))  # every preset is a valid config
        table = presets.provenance_table(name)
        assert len(table) == 2 + len(settings) and all(s.source in "".join(table)
                                                       for s in settings.values())  # fmt: skip


def test_the_paper_preset_is_what_the_papers_state():
    paper = presets.PRESETS["paper"]
    config = presets.preset_config("paper")
    stated = {
        "dil": (11, presets.RUNET_PAPER), "shift": (0.5, presets.RUNET_PAPER),
        "roi_slope": (100.0, presets.RUNET_PAPER), "width": (1.0, presets.RUNET_PAPER),
        "loss_weights": (None, presets.RUNET_PAPER),
        "image_size": ((256, 256), presets.CAMUS_PAPER),
        "learning_rate": (1e-3, presets.CAMUS_PAPER),
    }  # fmt: skip
    for field, (value, source) in stated.items():
        assert getattr(config, field) == value and paper[field].source == source, field
    silent = {"epochs", "batch_size", "augment", "patience", "include_background",
              "roi_classes", "roi_kernel", "seed", "dtype", "steps_per_epoch"}  # fmt: skip
    assert {f for f, s in paper.items() if s.source == presets.PACKAGE} == silent
    assert (config.augment, config.patience, config.preset) == (False, 0, "paper")
    table3 = presets.preset_config("paper-table3")
    assert (table3.dil, table3.shift) == (30, 0.7) and "Table III" in (
        presets.PRESETS["paper-table3"]["dil"].reason
    )


def test_the_default_preset_is_todays_behaviour():
    assert presets.preset_config("default") == cfg.TrainConfig() == cfg.train_config()
    assert cfg.TrainConfig().preset == presets.DEFAULT_PRESET
    with pytest.raises(ValueError, match="unknown preset 'papr'"):
        presets.preset_config("papr")
    with pytest.raises(cfg.ConfigError, match="preset must be one of paper, paper-table3"):
        cfg.train_config(preset="papr")


def test_the_paper_preset_deviates_only_where_the_papers_are_silent():
    lines = presets.deviations(presets.preset_config("paper"))
    assert not any("differs from" in line for line in lines)
    assert not any("would choose" in line for line in lines)
    fields = [line.split(" ")[0] for line in lines if "this package's choice" in line]
    assert {"epochs", "batch_size", "augment", "patience", "include_background"} <= set(fields)
    assert lines[-len(presets.FIXED_CHOICES) :] == list(presets.FIXED_CHOICES)
    assert any(line.startswith("model selection") for line in lines)


def test_the_default_presets_deviations_name_each_choice():
    lines = presets.deviations(presets.preset_config("default"))
    text = "\n".join(lines)
    for field in ("augment on", "patience 20", "epochs 100", "batch_size 8",
                  "include_background off", "roi_classes all", "roi_kernel box"):  # fmt: skip
        assert any(line.startswith(field + ":") for line in lines), field
    # Where the default chose otherwise than the paper preset: both values and the reason.
    (augment,) = [line for line in lines if line.startswith("augment")]
    assert "paper preset would choose off" in augment and "preset default" in augment
    assert "differs from" not in text


def test_explicit_flags_override_the_preset_and_count_as_deviations():
    config = _config("cv", "--preset", "paper", "--dil", "30", "--epochs", "5", "--roi-kernel",
                     "disk", "--no-augment")  # fmt: skip
    assert (config.preset, config.dil, config.epochs, config.roi_kernel) == ("paper", 30, 5, "disk")
    assert (config.shift, config.augment, config.patience) == (0.5, False, 0)  # from the preset
    lines = presets.deviations(config)
    assert lines[0] == "dil 30: differs from the RU-Net paper, 11 (Table II: RU-Net with dil = 11)"
    assert any(line.startswith("epochs 5: the papers are silent; the paper preset would "
                               "choose 100") for line in lines)  # fmt: skip
    assert any(line.startswith("roi_kernel disk: the papers are silent") for line in lines)
    # Against Table III, dil 30 is the paper's, shift 0.5 is not.
    table3 = presets.deviations(config, "paper-table3")
    assert table3[0].startswith("shift 0.5: differs from the RU-Net paper, 0.7")
    # Without --preset: today's defaults; a flag equal to the preset's value changes nothing.
    assert _config("train") == cfg.TrainConfig()
    assert _config("train", "--preset", "paper", "--dil", "11") == presets.preset_config("paper")
    assert _config("train", "--preset", "paper", "--no-augment").augment is False


def test_tune_keeps_its_trial_budget_under_a_preset():
    assert _config("tune").epochs == 30 and _config("tune").patience == 20
    paper = _config("tune", "--preset", "paper")
    assert (paper.epochs, paper.patience, paper.augment, paper.preset) == (30, 0, False, "paper")
    assert _config("tune", "--preset", "paper", "--epochs", "7").epochs == 7
    with pytest.raises(_common.UsageError, match="--roi-slope must be a positive number"):
        _config("tune", "--roi-slope", "-1")


@pytest.mark.parametrize("command", ["train", "cv", "tune"])
def test_preset_help_parses(command, capsys):
    with pytest.raises(SystemExit) as info:
        _parser(command).parse_args([*REQUIRED[command], "--preset", "paper", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "--preset {paper,paper-table3,default}" in out and "--roi-kernel" in out
    with pytest.raises(SystemExit):
        _parser(command).parse_args([*REQUIRED[command], "--preset", "papr"])


def test_the_config_records_the_preset_and_old_configs_read_as_today():
    config = presets.preset_config("paper", roi_classes="lvepi")
    saved = json.loads(json.dumps(config.to_json()))
    assert saved["preset"] == "paper" and saved["roi_classes"] == "lvepi"
    assert cfg.TrainConfig.from_json(saved) == config
    old = {k: v for k, v in cfg.TrainConfig().to_json().items()
           if k not in ("preset", "roi_classes", "roi_slope", "roi_kernel")}  # fmt: skip
    assert cfg.TrainConfig.from_json(old) == cfg.TrainConfig()
    kwargs = config.build_kwargs()
    assert (kwargs["foreground_classes"], kwargs["slope"], kwargs["kernel"]) == (
        (1, 2),
        100.0,
        "box",
    )


def _fake_builder(groups=10, patients=50):
    counts = {f"group{i}": patients for i in range(1, groups + 1)}
    info = types.SimpleNamespace(
        metadata={"patients_per_split": counts, "release": "nifti"},
        splits=dict.fromkeys(counts),
        full_name="camus/256/2.0.0",
    )
    return types.SimpleNamespace(info=info)


def test_the_cv_protocol_lists_the_preset_and_merges_the_deviations():
    from keras_runet.cross_validation import format_fold_protocol, run_protocol

    config = presets.preset_config("paper", epochs=3)
    protocol = run_protocol(_fake_builder(), [1, 2], config)
    assert protocol["preset"] == "paper" and protocol["fold_deviations"] == []
    assert protocol["deviations"] == presets.deviations(config)
    lines = format_fold_protocol(protocol)
    assert lines[0].startswith("Preset: paper (the RU-Net and CAMUS papers")
    assert "- epochs 3: the papers are silent; the paper preset would choose 100" in "\n".join(
        lines
    )
    short = run_protocol(_fake_builder(patients=40), [1], config)
    assert short["deviations"][0].startswith("fold 1: 320 / 40 / 40")  # folds first
    assert short["deviations"][1:] == presets.deviations(config)


def test_a_cv_run_of_an_earlier_version_is_not_a_settings_mismatch(tmp_path):
    from keras_runet.cross_validation import SettingsMismatchError, _previous_settings

    train = {k: v for k, v in cfg.TrainConfig().to_json().items()
             if k not in ("preset", "roi_classes", "roi_slope", "roi_kernel")}  # fmt: skip
    old = {"dataset": "camus/256", "dataset_fingerprint": None, "train": train}
    (tmp_path / "cv_config.json").write_text(json.dumps(old))
    new = {**old, "train": cfg.TrainConfig().to_json(), "models": ["runet"]}
    assert _previous_settings(tmp_path, new, force=False) == {"postprocess": False}
    paper = {**new, "train": presets.preset_config("paper").to_json()}
    with pytest.raises(SettingsMismatchError, match="preset 'default' -> 'paper'"):
        _previous_settings(tmp_path, paper, force=False)


def test_the_search_space_can_search_the_attentions_choices():
    from keras_runet.tuning.space import HP_NAMES, SearchSpace, train_config_for

    space = SearchSpace(dil_values=(11,), shift_values=(0.5,), roi_classes_values=("lvepi", "all"),
                        roi_kernel_values=("box", "disk"), roi_slope_values=(100, 50))  # fmt: skip
    assert space.grid_size() == 8 and space.is_finite()
    assert space.roi_classes_values == ("lvepi", "all") and space.roi_slope_values == (50.0, 100.0)
    assert SearchSpace().grid_size() is None and SearchSpace(shift_step=0.5).grid_size() == 38 * 2
    assert {"roi_classes", "roi_kernel", "roi_slope"} <= set(HP_NAMES)
    base = presets.preset_config("paper")
    config = train_config_for({"dil": 11, "shift": 0.5, "roi_kernel": "disk", "roi_slope": 50},
                              base)  # fmt: skip
    assert (config.roi_kernel, config.roi_slope, config.roi_classes) == ("disk", 50.0, "all")
    assert train_config_for({"dil": 11, "shift": 0.5}, base) == base  # fixed by default
    with pytest.raises(ValueError, match="roi_kernel_values must be some of box, disk"):
        SearchSpace(roi_kernel_values=("ring",))
    with pytest.raises(ValueError, match="roi_slope_values must be positive"):
        SearchSpace(roi_slope_values=(0,))


def test_the_attention_settings_reach_the_trained_model():
    from keras_runet.config import train_config
    from keras_runet.training import build_and_compile

    config = train_config(
        model="runet", width=0.25, image_size=(64, 64), dil=7, roi_kernel="disk",
        roi_classes="lvepi", roi_slope=50.0,
    )  # fmt: skip
    attention = build_and_compile(config).get_layer("roi_attention")
    cfg = attention.get_config()
    assert (cfg["dil"], cfg["kernel"], cfg["slope"]) == (7, "disk", 50.0)
    assert cfg["foreground_classes"] == [1, 2]  # LV cavity + myocardium, no atrium
    kinds = {layer.name: type(layer).__name__ for layer in attention._flatten_layers()}
    assert kinds["dilate"] == "DiskDilation"
