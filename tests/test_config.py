"""keras_runet.config (TrainConfig, train_config) and the command-line flags generated from it:
one declaration, the same names and defaults in every command (issue 14). No TensorFlow."""

import argparse
import dataclasses
import json
import os
import subprocess
import sys

import pytest

from keras_runet import config as cfg
from keras_runet.commands import _common


def _parser(command):
    from keras_runet.cli import build_parser

    parser = build_parser([command])
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[command]


def _options(parser) -> dict:
    """dest -> the listed option (a hidden alias, help SUPPRESS, does not count)."""
    return {a.dest: a for a in parser._actions if a.option_strings and a.help != argparse.SUPPRESS}


def test_train_config_defaults_are_the_dataclass_and_json_round_trips():
    config = cfg.train_config()
    assert config == cfg.TrainConfig()
    assert (config.patience, config.epochs, config.image_size) == (20, 100, (256, 256))
    again = cfg.TrainConfig.from_json(json.loads(json.dumps(config.to_json())))
    assert again == config
    import keras_runet

    assert keras_runet.TrainConfig is cfg.TrainConfig  # (training.TrainConfig: test_training)


@pytest.mark.parametrize(
    ("values", "field", "fragment"),
    [
        ({"epochs": 0}, "epochs", "at least 1"),
        ({"batch_size": -1}, "batch_size", "at least 1"),
        ({"dil": 0}, "dil", "at least 1"),
        ({"learning_rate": float("nan")}, "learning_rate", "positive number"),
        ({"learning_rate": 0.0}, "learning_rate", "positive number"),
        ({"width": float("inf")}, "width", "positive number"),
        ({"shift": 0.0}, "shift", "within (0, 1)"),
        ({"shift": 1.0}, "shift", "within (0, 1)"),
        ({"patience": -1}, "patience", "0 (off) or more"),
        ({"image_size": (100, 128)}, "image_size", "multiples of 32"),
        ({"image_size": (64,)}, "image_size", "multiples of 32"),
        ({"steps_per_epoch": 0}, "steps_per_epoch", "at least 1"),
        ({"dtype": "float16"}, "dtype", "mixed_bfloat16"),
        ({"distribute": "tpu"}, "distribute", "mirrored"),
        ({"model": "vnet"}, "model", "unet1, shg, runet"),
        ({"epochs": 2.5}, "epochs", "at least 1"),
        ({"augment": "no"}, "augment", "True or False"),
        ({"loss_weights": {"coarse": -1}}, "loss_weights", ">= 0"),
        ({"learnig_rate": 1e-3}, "learnig_rate", "not a TrainConfig field"),
    ],
)
def test_train_config_names_the_field_and_the_value(values, field, fragment):
    with pytest.raises(cfg.ConfigError) as info:
        cfg.train_config(**values)
    err = info.value
    assert isinstance(err, ValueError) and err.field == field
    text = str(err)
    assert text.startswith(f"{field} ") and fragment in text
    assert repr(values[field]) in text


def test_train_config_normalises_what_json_and_argparse_give():
    config = cfg.train_config(image_size=[64, 64], width=1, loss_weights={"coarse": 1})
    assert config.image_size == (64, 64) and isinstance(config.width, float)
    assert config.loss_weights == {"coarse": 1.0}
    assert cfg.parse_image_size("64") == (64, 64) == cfg.parse_image_size("64x64")


def test_the_command_line_takes_the_vocabulary_model_names_and_no_other():
    from tfds_camus.vocabulary import MODELS

    assert _common.parse_models(",".join(MODELS).upper()) == list(MODELS)
    with pytest.raises(_common.UsageError, match="unknown model unet2; choose from unet1, shg"):
        _common.parse_models("unet1,unet2")


def test_training_flags_are_generated_from_the_fields_with_the_same_defaults():
    fields = {f.name: f for f in cfg.cli_fields()}
    assert "model" not in fields and "loss_weights" not in fields
    assert cfg.flag_of("learning_rate") == "--lr"
    assert cfg.flag_of("dtype") == "--mixed-precision"
    assert cfg.flag_of("augment") == "--no-augment"
    assert cfg.flag_of("steps_per_epoch") == "--steps-per-epoch"
    for command in ("train", "cv"):
        options = _options(_parser(command))
        for name, field in fields.items():
            action = options[name]
            assert action.option_strings == [cfg.flag_of(name)], (command, name)
            assert action.default == field.default, (command, name)
            assert action.help.startswith(field.metadata["help"])
    tune = _options(_parser("tune"))
    assert "dil" not in tune and "shift" not in tune  # searched, not set
    assert tune["epochs"].default == 30  # a trial's budget: the one visible override
    assert tune["patience"].default == cfg.TrainConfig.patience  # same as train (was 0)
    assert tune["include_background"].default is False
    train = _options(_parser("train"))
    for name in ("include_background", "steps_per_epoch", "run_eagerly"):
        assert name in train  # runet train could not set them before


def test_train_config_from_args_maps_errors_to_the_flag():
    parser = argparse.ArgumentParser()
    _common.add_training_arguments(parser)
    args = parser.parse_args(["--lr", "-1"])
    with pytest.raises(_common.UsageError, match=r"^--lr must be a positive number, got -1.0$"):
        _common.train_config_from_args(args, "runet")
    args = parser.parse_args(["--no-augment", "--image-size", "64x64", "--steps-per-epoch", "2"])
    config = _common.train_config_from_args(args, "unet1")
    assert (config.model, config.augment, config.image_size) == ("unet1", False, (64, 64))
    assert config.steps_per_epoch == 2 and config.patience == 20
    with pytest.raises(_common.UsageError, match="model must be one of"):
        _common.train_config_from_args(args, "vnet")
    with pytest.raises(SystemExit):
        parser.parse_args(["--image-size", "100"])


def test_demo_flags_default_to_its_setting_and_a_given_flag_wins():
    from keras_runet.commands import demo

    parser = _parser("demo")
    args = parser.parse_args(["--quick"])
    quick = demo.SETTINGS["quick"]["train"]
    config = _common.train_config_from_args(args, "unet1", **quick)
    assert config.image_size == (64, 64) and config.epochs == 2 and config.patience == 0
    args = parser.parse_args(["--quick", "--epochs", "3", "--seed", "5"])
    config = _common.train_config_from_args(args, "unet1", **quick)
    assert (config.epochs, config.seed, config.width) == (3, 5, 0.25)
    args = parser.parse_args(["--epochs", "0"])
    with pytest.raises(_common.UsageError, match="--epochs must be at least 1"):
        _common.train_config_from_args(args, "unet1", **demo.SETTINGS["full"]["train"])


def test_one_workers_flag_with_one_default():
    for command in ("cv", "evaluate", "tune", "demo"):
        action = _options(_parser(command))["workers"]
        assert action.option_strings == ["--workers"], command
        assert action.default == _common.DEFAULT_WORKERS, command
    args = _parser("tune").parse_args(["--data-dir", "d", "--out", "o", "--eval-workers", "3"])
    assert args.workers == 3  # the old spelling still works
    assert not any("eval-workers" in (a.help or "") for a in _parser("tune")._actions)


def test_export_and_predict_spell_the_image_size_as_everywhere():
    for command in ("export", "predict"):
        parser = _parser(command)
        args = parser.parse_args(["m.keras", "x", *(["--out", "o"] * (command == "predict")),
                                  "--image-size", "64x64"])  # fmt: skip
        assert args.image_size == (64, 64) and args.input_size is None
        old = parser.parse_args(["m.keras", "x", *(["--out", "o"] * (command == "predict")),
                                 "--input-size", "32", "32"])  # fmt: skip
        assert old.input_size == [32, 32]
        assert _options(parser)["dil"].default == cfg.TrainConfig.dil


def test_no_command_named_info_and_every_command_exists():
    from keras_runet import cli

    assert "info" not in cli.COMMANDS
    parser = cli.build_parser()  # every command module imports and declares its options
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert list(sub.choices) == cli.COMMANDS


def test_the_parser_imports_no_tensorflow():
    """``runet --help`` must not import TensorFlow (issue 14: it took ~10 s)."""
    code = (
        "import keras_runet.cli, sys; keras_runet.cli.build_parser(); "
        "print('tensorflow' in sys.modules, 'keras' in sys.modules)"
    )  # every command's options declared
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["False", "False"]
    help_proc = subprocess.run(
        [sys.executable, "-m", "keras_runet.cli", "--help"], capture_output=True, text=True,
        timeout=120, env=env,
    )  # fmt: skip
    assert help_proc.returncode == 0 and "demo" in help_proc.stdout
    assert help_proc.stderr == ""  # no TensorFlow log lines


def test_config_module_needs_no_tensorflow():
    code = "import keras_runet.config, sys; print('tensorflow' in sys.modules or 'keras' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip() == "False", proc.stderr[-2000:]


def test_fields_have_help_text():
    for field in dataclasses.fields(cfg.TrainConfig):
        assert field.metadata.get("help"), field.name
