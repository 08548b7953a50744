"""Mistakes a new user makes, each run as a command in a fresh process: exit code 2, one
line naming the file or value, no traceback (issue 13)."""

import os
import subprocess
import sys

import keras
import pytest


def _runet(*argv):
    return subprocess.run(
        [sys.executable, "-m", "keras_runet.cli", *map(str, argv)],
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        timeout=300,
    )


def _assert_one_line(proc, *fragments):
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("runet ")]
    assert len(lines) == 1, proc.stderr[-2000:]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli_errors")
    (tmp / "a_file").write_text("not a folder")
    (tmp / "junk.keras").write_text("not a zip")
    inp = keras.Input((32, 32, 1), name="image")
    out = keras.layers.Conv2D(2, 1, name="other")(inp)
    keras.Model(inp, out).save(tmp / "plain.keras")  # a Keras model, not a runet one
    return tmp


def test_out_that_is_a_file(files):
    proc = _runet("train", "--data-dir", files / "none", "--out", files / "a_file")
    _assert_one_line(proc, "--out", "a_file", "exists and is not a folder")


@pytest.mark.parametrize(
    "command",
    [
        ["cv", "--data-dir", "{tmp}/none", "--out", "{tmp}/a_file"],
        ["tune", "--data-dir", "{tmp}/none", "--out", "{tmp}/a_file"],
        [
            "evaluate",
            "--model-file",
            "{tmp}/junk.keras",
            "--data-dir",
            "x",
            "--fold",
            "1",
            "--out",
            "{tmp}/a_file",
        ],  # fmt: skip
    ],
)
def test_out_that_is_a_file_in_every_command(files, command, capsys):
    """The same check (keras_runet.commands._common.output_dir), in process."""
    from keras_runet import cli

    assert cli.main([a.format(tmp=files) for a in command]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "a_file' exists and is not a folder" in err[0]


def test_out_that_cannot_be_written(files):
    proc = _runet("train", "--data-dir", files / "none", "--out", files / "a_file" / "sub")
    _assert_one_line(proc, "--out", "cannot be written to")


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ("junk.keras", "is not a Keras model file (not a .keras zip archive)"),
        ("plain.keras", "must return a dict with a 'segmentation' output"),
    ],
)
def test_a_keras_file_that_is_not_a_runet_model(files, model, message):
    evaluate = _runet(
        "evaluate", "--model-file", files / model, "--data-dir", files / "none", "--fold", "1",
        "--out", files / "out",
    )  # fmt: skip
    _assert_one_line(evaluate, model, message)
    export = _runet("export", files / model, files / "serving")
    _assert_one_line(export, model, message)


def test_keras_verbosity_bars_only_on_a_terminal(monkeypatch):
    import io

    from keras_runet.commands._common import keras_verbosity

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr("sys.stdout", Terminal())
    assert (keras_verbosity(), keras_verbosity(False)) == (1, 0)
    monkeypatch.setattr("sys.stdout", io.StringIO())  # a log file or a pipe: no ANSI bars
    assert (keras_verbosity(), keras_verbosity(False)) == (2, 0)


@pytest.mark.parametrize("command", ["export", "predict"])
def test_graph_commands_on_a_backend_without_a_tf_graph_say_so_in_one_line(tmp_path, command):
    # Keras's NumPy backend (as PyTorch's) cannot run inside the TensorFlow serving graph;
    # TensorFlow and JAX can (tests/test_jax_backend.py).
    args = [str(tmp_path / "m.keras"), str(tmp_path / "out")]
    if command == "predict":
        (tmp_path / "in").mkdir()
        (tmp_path / "in" / "a.png").write_bytes(b"")
        args = [str(tmp_path / "m.keras"), str(tmp_path / "in"), "--out", str(tmp_path / "out")]
    env = dict(os.environ, KERAS_BACKEND="numpy")
    run = subprocess.run(
        [sys.executable, "-m", "keras_runet.cli", command, *args],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr
    assert f"runet {command} needs the TensorFlow or JAX backend" in run.stderr
    assert "'numpy'" in run.stderr
