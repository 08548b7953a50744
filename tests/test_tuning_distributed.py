"""Distributed tuning over loopback: a chief (the oracle) and two workers, `runet tune`.

KerasTuner's own chief / worker mode: every process runs the same command with
``--tuner-id`` (chief, tuner0, tuner1), ``--oracle-ip 127.0.0.1`` and a free port.
"""

import os
import socket
import subprocess
import sys
import time

import pytest
from test_tuning import camus_tune  # noqa: F401  (the prepared synthetic CAMUS fixture)

from keras_runet import tuning

TIMEOUT_S = 300


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_tuning_distributed_chief_and_two_workers_share_a_search(camus_tune, tmp_path):  # noqa: F811
    port = _free_port()
    out = tmp_path / "study"
    command = [sys.executable, "-m", "keras_runet.cli", "tune",
               "--data-dir", str(camus_tune["data_dir"]), "--out", str(out),
               "--oracle", "random", "--max-trials", "3", "--epochs", "1", "--width", "0.25",
               "--image-size", "64", "--seed", "1", "--run-eagerly",
               "--oracle-ip", "127.0.0.1", "--oracle-port", str(port)]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("KERASTUNER_")}
    env.update(TF_CPP_MIN_LOG_LEVEL="2", KERAS_BACKEND="tensorflow", CUDA_VISIBLE_DEVICES="")
    procs, logs = {}, {}
    try:
        for tuner_id in ("chief", "tuner0", "tuner1"):
            logs[tuner_id] = open(tmp_path / f"{tuner_id}.log", "w+")
            procs[tuner_id] = subprocess.Popen(
                [*command, "--tuner-id", tuner_id],
                env=env,
                stdout=logs[tuner_id],
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + TIMEOUT_S
        for proc in procs.values():
            proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)
        text = {}
        for tuner_id, fh in logs.items():
            fh.seek(0)
            text[tuner_id] = fh.read()
            fh.close()
    for tuner_id, proc in procs.items():
        assert proc.returncode == 0, (
            f"{tuner_id} exited {proc.returncode}:\n{text[tuner_id][-3000:]}"
        )

    # The chief's table: every trial of the study, each COMPLETED.
    table = tuning.read_results_csv(out / "results.csv")
    assert len(table) == 3
    assert all(r["status"] == "COMPLETED" for r in table), table
    assert len({(r["dil"], r["shift"]) for r in table}) == 3  # no hyper-parameters twice
    assert "best: trial" in text["chief"]

    # Each trial ran exactly once, in a worker (the chief only serves the oracle).
    runs = tuning.read_executions(out)
    assert sorted(e["trial_id"] for e in runs) == sorted(r["trial_id"] for r in table)
    assert {e["tuner_id"] for e in runs} <= {"tuner0", "tuner1"}
    assert procs["chief"].pid not in {e["pid"] for e in runs}
    ran = [int(text[w].split("ran ")[1].split(" trial")[0]) for w in ("tuner0", "tuner1")]
    assert sum(ran) == 3, text

    # TensorBoard HParams: the experiment summary written once, by the chief; each trial's
    # session by the worker that ran it (an event file's name holds its writer's pid).
    from tensorboard.plugins.hparams import api_pb2
    from test_tuning import _read_hparams

    def writer_pid(files):
        (name,) = files
        return int(name.split(".")[-3])

    experiment = _read_hparams(out / "keras_tuner")
    assert experiment["experiment"] is not None
    assert writer_pid(experiment["files"]) == procs["chief"].pid
    for e in runs:
        session = _read_hparams(out / "keras_tuner" / f"trial_{e['trial_id']}")
        assert session["end"].status == api_pb2.STATUS_SUCCESS
        assert writer_pid(session["files"]) == e["pid"]
