"""`keras-convit train --distribute data`: a real run on two TensorFlow replicas, a step on
them equal to one on a single device, and one line for what the job cannot do."""

import json
import os
import subprocess
import sys

import keras
import pytest
from fault_helpers import environment, read, start, train_arguments

from keras_convit.cli import main

TWO_REPLICAS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "two_replicas.py")
on_tensorflow = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow", reason="MirroredStrategy is TensorFlow's engine"
)


@on_tensorflow
def test_two_replicas_train_the_job_and_take_the_same_step_as_one_device(tmp_path):
    """Mutation: `distribution_scope` yielding without entering the strategy's scope (the
    variables are not mirrored: one copy)."""
    run_dir = tmp_path / "run"
    command = [sys.executable, TWO_REPLICAS, *train_arguments(run_dir, epochs=2)]
    process = start([*command, "--distribute", "data"], f"{run_dir}.log")
    check = subprocess.run(
        [sys.executable, TWO_REPLICAS, "--check-step"],
        env=environment(), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert check.returncode == 0, check.stderr
    step = json.loads(check.stdout.splitlines()[-1])
    assert step["replicas"] == 2 and step["copies"] == 2
    assert step["difference"] < 1e-6  # the global batch's mean gradient, split over two
    assert "global batch size 7 does not divide over the 2 replicas" in step["uneven"]
    assert process.wait(timeout=600) == 0, read(f"{run_dir}.log")
    assert "Data parallel on 2 devices, 8 images each." in read(f"{run_dir}.log")
    for name in ("metrics.json", "model.keras", "history.csv", "preset/config.json"):
        assert (run_dir / name).exists(), name
    assert json.loads(read(run_dir / "metrics.json"))["epochs"] == 2


@pytest.mark.skipif(keras.backend.backend() == "tensorflow", reason="it has an engine here")
def test_a_backend_without_an_engine_here_is_one_line(tmp_path, capsys):
    status = main([*train_arguments(tmp_path / "run"), "--distribute", "data"])
    assert status == 2
    error = capsys.readouterr().err
    assert f"--distribute data has no {keras.backend.backend()} engine" in error
    assert "examples/distributed/" in error
    assert not (tmp_path / "run").exists()  # refused before anything was written


def test_one_of_several_processes_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")  # as torchrun sets it
    assert main(train_arguments(tmp_path / "run")) == 2
    assert "This process is one of several (WORLD_SIZE='2': torchrun)" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
