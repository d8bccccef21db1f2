"""SIGTERM and SIGINT (a preemption notice, Ctrl-C) stop a real `keras-convit train` process
after the current step with that state committed; the same command resumes it mid-epoch."""

import json
import os
import sys

import h5py
import numpy as np
import pytest
from fault_helpers import (
    EPOCHS,
    HELPERS,
    history_rows,
    read,
    start,
    state,
    train_arguments,
    train_command,
)

from keras_convit.training import PREEMPTED_EXIT_STATUS, learning_rate_schedule

STEPS_PER_EPOCH = 19  # the tiny run: 319 training images in batches of 16
# Its schedule: peak 1e-3 (the digits' default at batch 16), one warm-up epoch, to 1e-5.
SCHEDULE = learning_rate_schedule(1e-3, EPOCHS * STEPS_PER_EPOCH, STEPS_PER_EPOCH)


def _signalled(run_dir, signal_name, at_step):
    command = [sys.executable, HELPERS, "--signal", signal_name, "--at-step", str(at_step), "--"]
    return start(command + train_arguments(run_dir), str(run_dir) + ".log")


def _optimizer_iterations(weights_file):
    with h5py.File(weights_file, "r") as file:
        return int(np.asarray(file["optimizer"]["vars"]["0"]))


def test_sigterm_mid_epoch_commits_that_step_and_the_same_command_resumes(tmp_path):
    """Mutations: the guard stopping without `commit_interrupted` (no state of that step), or
    the job running the stopped epoch whole instead of its remaining steps (the resumed run
    takes 8 steps too many: its learning rates run ahead)."""
    run_dir = tmp_path / "run"
    at_step = STEPS_PER_EPOCH + 8  # step 8 of epoch 2
    process = _signalled(run_dir, "SIGTERM", at_step)
    assert process.wait(timeout=600) == PREEMPTED_EXIT_STATUS, read(f"{run_dir}.log")
    assert "Stopped by SIGTERM after step 8 of epoch 2" in read(f"{run_dir}.log")
    assert json.loads(read(run_dir / "run.json"))["status"] == "preempted"
    committed = state(run_dir)
    assert committed["epoch"] == 1 and committed["interrupted"]["step"] == 8
    interrupted = run_dir / "checkpoint" / committed["interrupted"]["weights"]
    assert _optimizer_iterations(interrupted) == at_step  # the state of that very step

    resumed = start(train_command(run_dir), str(run_dir) + "-resumed.log")
    assert resumed.wait(timeout=600) == 0, read(f"{run_dir}-resumed.log")
    assert f"Resuming run in {run_dir} after epoch 1 of {EPOCHS}" in read(f"{run_dir}-resumed.log")
    rows = history_rows(run_dir)
    assert [row["epoch"] for row in rows] == [str(epoch) for epoch in range(1, EPOCHS + 1)]
    # The schedule runs on the optimizer's step count: each epoch's rate is the schedule's at
    # its last step only if the resumed run took exactly an uninterrupted run's steps.
    expected = [float(SCHEDULE(epoch * STEPS_PER_EPOCH)) for epoch in range(1, EPOCHS + 1)]
    assert [float(row["learning_rate"]) for row in rows] == pytest.approx(expected, rel=1e-5)
    assert json.loads(read(run_dir / "run.json"))["status"] == "finished"
    assert not os.path.exists(run_dir / "checkpoint")


def test_sigint_in_the_last_step_of_an_epoch_stops_once_that_epoch_is_committed(tmp_path):
    """Mutation: the guard stopping at the last step too (it commits a step that leaves no
    remainder to run, and the epoch's validation never happens)."""
    run_dir = tmp_path / "run"
    process = _signalled(run_dir, "SIGINT", STEPS_PER_EPOCH)
    assert process.wait(timeout=600) == PREEMPTED_EXIT_STATUS, read(f"{run_dir}.log")
    assert "Stopped by SIGINT after epoch 1" in read(f"{run_dir}.log")
    committed = state(run_dir)
    assert committed["epoch"] == 1 and committed["interrupted"] is None
    assert "val_accuracy" in history_rows(run_dir)[0]
