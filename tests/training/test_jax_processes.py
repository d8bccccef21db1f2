"""`keras-convit train --distribute data` as two JAX processes of two simulated CPU devices each
(`jax.distributed` on this machine's loopback, through `keras.distribution`'s variables): SIGTERM
to one process stops both with one committed state, the same command resumes and ends with
every epoch and identical replicas. Heavy: run once."""

import json
import os
import socket
import subprocess
import sys

import keras
import pytest
from fault_helpers import HELPERS, history_rows, read, state, train_arguments

# The processes run JAX whatever this session's backend: the test runs once, in the PyTorch
# session, the shortest of the three (`make test` runs them one after the other).
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(keras.backend.backend() != "torch", reason="runs once, in PyTorch's run"),
]
EPOCHS = 2
FRACTION = "0.125"  # 158 training images (79 a process): 9 global batches of 16 an epoch
STEPS_PER_EPOCH = 9


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _two_processes(arguments, log_prefix):
    """Runs `arguments` (after `python`) as process 0 and 1 of a job, with their temporary
    files in `log_prefix`'s folder's tmp/; their exit statuses."""
    port, processes = _free_port(), []
    temporary = log_prefix.parent / "tmp"
    temporary.mkdir(exist_ok=True)
    for index in range(2):
        environment = {
            **os.environ,
            "KERAS_BACKEND": "jax",
            "XLA_FLAGS": "--xla_force_host_platform_device_count=2",
            "KERAS_DISTRIBUTION_JOB_ADDRESSES": f"127.0.0.1:{port}",
            "KERAS_DISTRIBUTION_NUM_PROCESSES": "2",
            "KERAS_DISTRIBUTION_PROCESS_ID": str(index),
            "TMPDIR": str(temporary),
        }
        with open(f"{log_prefix}.{index}.log", "w") as log:
            command = [sys.executable, *arguments]
            processes.append(subprocess.Popen(command, env=environment, stdout=log,
                                              stderr=subprocess.STDOUT))  # fmt: skip
    return [process.wait(timeout=600) for process in processes]


def test_sigterm_to_one_process_commits_for_both_and_the_same_command_resumes(tmp_path):
    """Mutation: `PreemptionGuard` without `agree` (process 0 goes on alone into a step the
    other never joins)."""
    run_dir = tmp_path / "run"
    job = [*train_arguments(run_dir, EPOCHS), "--fraction", FRACTION, "--distribute", "data"]
    wrapper = [HELPERS, "--signal", "SIGTERM", "--at-step", str(STEPS_PER_EPOCH + 4), "--rank", "1"]
    statuses = _two_processes([*wrapper, "--", *job], tmp_path / "first")
    logs = "".join(read(tmp_path / f"first.{index}.log") for index in range(2))
    assert statuses == [75, 75], logs[-5000:]
    assert "Stopped by SIGTERM after step 4 of epoch 2" in read(tmp_path / "first.0.log")
    assert json.loads(read(run_dir / "run.json"))["status"] == "preempted"
    assert state(run_dir)["epoch"] == 1 and state(run_dir)["interrupted"]["step"] == 4

    statuses = _two_processes(["-m", "keras_convit", *job], tmp_path / "resumed")
    log = read(tmp_path / "resumed.0.log")
    assert statuses == [0, 0], log[-5000:] + read(tmp_path / "resumed.1.log")[-3000:]
    assert f"Resuming run in {run_dir} after epoch 1 of {EPOCHS}" in log
    assert "Data parallel on 4 replicas (one device each), 4 images each." in log
    assert "All 2 processes hold the same" in log
    assert [row["epoch"] for row in history_rows(run_dir)] == ["1", "2"]
    metrics = json.loads(read(run_dir / "metrics.json"))
    assert metrics["epochs"] == EPOCHS and metrics["train_size"] == 158
    matrix = metrics["confusion_matrix"]  # every test image counted once
    assert sum(map(sum, matrix)) == metrics["test_size"]
    # Process 1's private copy of the run directory is gone.
    assert not [name for name in os.listdir(tmp_path / "tmp") if "keras-convit" in name]
