"""`keras-convit train --distribute data` under `torchrun --nproc-per-node 2` (PyTorch's DDP,
gloo on this machine's loopback): a step on two processes equals one on a single process;
SIGTERM to one process, then to all, stops both with one committed state; the same command
resumes and ends with every epoch and identical replicas. Heavy: PyTorch's run only."""

import json
import os
import subprocess
import sys
import tempfile

import keras
import pytest
from fault_helpers import HELPERS, history_rows, read, state, train_arguments

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(keras.backend.backend() != "torch", reason="torchrun is PyTorch's"),
]
TORCH_PROCESSES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "torch_processes.py")
EPOCHS = 3
STEPS_PER_EPOCH = 19  # 318 training images (159 a process) in global batches of 16
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]


def _torchrun(arguments, log_path, temporary=None):
    environment = {**os.environ, "KERAS_BACKEND": "torch", "OMP_NUM_THREADS": "1"}
    if temporary is not None:
        environment["TMPDIR"] = str(temporary)
    with open(log_path, "w") as log:
        command = [*TORCHRUN, *arguments]
        return subprocess.run(command, env=environment, stdout=log, stderr=subprocess.STDOUT,
                              timeout=600).returncode  # fmt: skip


def _signalled(run_dir, at_step, log_path, rank=None):
    wrapper = [
        "--",
        HELPERS,
        "--signal",
        "SIGTERM",
        "--at-step",
        str(at_step),
    ]  # "--": for torchrun
    wrapper += [] if rank is None else ["--rank", str(rank)]
    arguments = [*train_arguments(run_dir, EPOCHS), "--distribute", "data"]
    return _torchrun([*wrapper, "--", *arguments], log_path, temporary=run_dir.parent / "tmp")


def test_two_processes_take_the_same_step_as_one():
    """Mutation: `data_parallel_trainee` returning the model unwrapped (no gradient exchange:
    the processes' weights differ and the check raises)."""
    log = os.path.join(tempfile.gettempdir(), f"torch_processes-{os.getpid()}.log")
    assert _torchrun([TORCH_PROCESSES], log) == 0, read(log)
    step = json.loads(read(log).strip().splitlines()[-1])
    assert step["processes"] == 2
    assert step["difference"] < 1e-6  # the global batch's mean gradient, split over two


def test_sigterm_to_one_then_all_processes_commits_and_the_same_command_resumes(tmp_path):
    """Mutation: `PreemptionGuard` without `agree` (process 0 trains on alone, and its next
    gradient exchange aborts it: no committed state)."""
    run_dir = tmp_path / "run"
    (tmp_path / "tmp").mkdir()  # the processes' temporary files
    # SIGTERM to process 1 only, at step 8 of epoch 2: both stop after that step.
    log = f"{run_dir}-1.log"
    assert _signalled(run_dir, STEPS_PER_EPOCH + 8, log, rank=1) != 0, read(log)
    assert "exitcode  : 75" in read(log)  # torchrun's summary of its failed processes
    assert "Stopped by SIGTERM after step 8 of epoch 2" in read(log)
    assert json.loads(read(run_dir / "run.json"))["status"] == "preempted"
    assert state(run_dir)["interrupted"]["step"] == 8
    # Resumed, with SIGTERM to both at step 5 of epoch 3 (11 steps finish epoch 2 first).
    log = f"{run_dir}-2.log"
    assert _signalled(run_dir, STEPS_PER_EPOCH - 8 + 5, log) != 0, read(log)
    assert "Stopped by SIGTERM after step 5 of epoch 3" in read(log)
    assert state(run_dir)["epoch"] == 2 and state(run_dir)["interrupted"]["step"] == 5
    # The same command resumes to the end.
    log = f"{run_dir}-3.log"
    command = ["-m", "keras_convit", *train_arguments(run_dir, EPOCHS), "--distribute", "data"]
    assert _torchrun(command, log, temporary=tmp_path / "tmp") == 0, read(log)
    assert f"Resuming run in {run_dir} after epoch 2 of {EPOCHS}" in read(log)
    assert "All 2 processes hold the same" in read(log)
    assert [row["epoch"] for row in history_rows(run_dir)] == ["1", "2", "3"]
    metrics = json.loads(read(run_dir / "metrics.json"))
    assert metrics["epochs"] == EPOCHS and metrics["train_size"] == 318
    assert json.loads(read(run_dir / "run.json"))["status"] == "finished"
    # Process 1's private copy of the run directory is gone (torchrun keeps its own files).
    assert not [name for name in os.listdir(tmp_path / "tmp") if "keras-convit" in name]
