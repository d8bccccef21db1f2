"""`keras-convit train --distribute data`: a real run on two TensorFlow replicas or four JAX
devices, a step on them equal to one on a single device, a partial held-out batch evaluated
alike, and one line for what the job cannot do."""

import json
import os
import subprocess
import sys

import keras
import pytest
from fault_helpers import environment, read, start, train_arguments

from keras_convit.cli import main

SIMULATED_DEVICES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "simulated_devices.py")
REPLICAS = {"tensorflow": 2, "jax": 4}
with_an_engine = pytest.mark.skipif(
    keras.backend.backend() not in REPLICAS, reason="no data-parallel engine in the job here"
)


@with_an_engine
def test_replicas_train_the_job_and_take_the_same_step_as_one_device(tmp_path):
    """Mutations: `distribution_scope` yielding without entering the engine's scope (one copy
    of each variable); `EvenBatches` without the padding (JAX cannot split the last batch) or
    with unweighted metrics (the padding counted)."""
    replicas = REPLICAS[keras.backend.backend()]
    run_dir = tmp_path / "run"
    command = [sys.executable, SIMULATED_DEVICES, *train_arguments(run_dir, epochs=2)]
    process = start([*command, "--distribute", "data"], f"{run_dir}.log")
    check = subprocess.run(
        [sys.executable, SIMULATED_DEVICES, "--check-step"],
        env=environment(), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert check.returncode == 0, check.stderr
    step = json.loads(check.stdout.splitlines()[-1])
    assert step["replicas"] == replicas and step["copies"] == replicas
    assert step["difference"] < 1e-6  # the global batch's mean gradient, split over them
    one_device, data_parallel = step["evaluations"]
    assert data_parallel["accuracy"] == one_device["accuracy"]  # 10 images, not 12
    assert data_parallel["loss"] == pytest.approx(one_device["loss"], rel=1e-5)
    uneven = f"global batch size 7 does not divide over the {replicas} "
    assert uneven in step["uneven"]
    assert process.wait(timeout=600) == 0, read(f"{run_dir}.log")
    assert f"Data parallel on {replicas} devices, {16 // replicas} images each." in read(
        f"{run_dir}.log"
    )
    for name in ("metrics.json", "model.keras", "history.csv", "preset/config.json"):
        assert (run_dir / name).exists(), name
    metrics = json.loads(read(run_dir / "metrics.json"))
    assert metrics["epochs"] == 2
    # Every test image counted once: the confusion matrix and the accuracy agree.
    matrix = metrics["confusion_matrix"]
    assert sum(map(sum, matrix)) == metrics["test_size"]
    diagonal = sum(row[index] for index, row in enumerate(matrix))
    assert metrics["test_accuracy"] == pytest.approx(diagonal / metrics["test_size"], abs=1e-6)


@pytest.mark.skipif(keras.backend.backend() != "torch", reason="its engine is per process")
def test_pytorch_outside_torchrun_is_one_line(tmp_path, capsys):
    status = main([*train_arguments(tmp_path / "run"), "--distribute", "data"])
    assert status == 2
    assert "--distribute data on PyTorch runs one process per device under torchrun" in (
        capsys.readouterr().err
    )
    assert not (tmp_path / "run").exists()  # refused before anything was written


@pytest.mark.parametrize(
    "variable, value, distribute, message",
    [
        ("TF_CONFIG", '{"cluster": {}}', "data", "(TF_CONFIG="),
        ("KERAS_DISTRIBUTION_NUM_PROCESSES", "2", "data", "(KERAS_DISTRIBUTION_NUM_PROCESSES="),
        ("WORLD_SIZE", "2", "none", None),  # as torchrun sets it
    ],
)
def test_a_launch_the_job_cannot_run_is_one_line(
    tmp_path, capsys, monkeypatch, variable, value, distribute, message
):
    monkeypatch.setenv(variable, value)
    status = main([*train_arguments(tmp_path / "run"), "--distribute", distribute])
    assert status == 2
    error = capsys.readouterr().err
    if message is None:  # torchrun's world: PyTorch needs --distribute data, the others PyTorch
        torch = keras.backend.backend() == "torch"
        message = "pass --distribute data" if torch else "set KERAS_BACKEND=torch"
    assert message in error
    assert not (tmp_path / "run").exists()
