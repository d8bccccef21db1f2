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
# The job's run: data parallel on TensorFlow; on JAX, data (2) x model (2) parallel (JAX's data
# parallel job runs as two processes in test_jax_processes.py).
JOB = {"tensorflow": ("data", "2 replicas (one device each), 8"),
       "jax": ("model:2", "2 replicas (model parallel over 2 devices each), 8")}  # fmt: skip
with_an_engine = pytest.mark.skipif(
    keras.backend.backend() not in REPLICAS, reason="no engine for one process here"
)


@with_an_engine
def test_replicas_train_the_job_and_take_the_same_step_as_one_device(tmp_path):
    """Mutations: `distribution_scope` yielding without entering the engine's scope (one copy
    of each variable; nothing split); `EvenBatches` without the padding (JAX cannot split the
    last batch) or with unweighted metrics (the padding counted)."""
    backend = keras.backend.backend()
    replicas, (mode, announced) = REPLICAS[backend], JOB[backend]
    run_dir = tmp_path / "run"
    command = [sys.executable, SIMULATED_DEVICES, *train_arguments(run_dir, epochs=2)]
    process = start([*command, "--distribute", mode], f"{run_dir}.log")
    check = subprocess.run(
        [sys.executable, SIMULATED_DEVICES, "--check-step"],
        env=environment(), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert check.returncode == 0, check.stderr
    step = json.loads(check.stdout.splitlines()[-1])
    assert step["replicas"] == replicas and step["copies"] == replicas
    assert step["difference"] < 1e-6  # the global batch's mean gradient, split over them
    one_device, *distributed = step["evaluations"]
    for evaluation in distributed:
        assert evaluation["accuracy"] == one_device["accuracy"]  # 10 images, not 12
        assert evaluation["loss"] == pytest.approx(one_device["loss"], rel=1e-5)
    if backend == "jax":  # model:2 splits each block's widening and narrowing projections
        blocks = {path.split("/", 1)[1] for path in step["split"]}
        assert blocks == {
            "attn/qk/kernel", "attn/v/kernel", "attn/qkv/kernel", "attn/proj/kernel",
            "mlp/fc1/kernel", "mlp/fc1/bias", "mlp/fc2/kernel",
        }  # fmt: skip
        assert set(step["split"].values()) == {2}
    assert f"global batch size 7 does not divide over the {replicas} " in step["uneven"]
    assert process.wait(timeout=600) == 0, read(f"{run_dir}.log")
    assert f"Data parallel on {announced} images each." in read(f"{run_dir}.log")
    for name in ("metrics.json", "model.keras", "history.csv", "preset/config.json"):
        assert (run_dir / name).exists(), name
    metrics = json.loads(read(run_dir / "metrics.json"))
    assert metrics["epochs"] == 2
    # Every test image counted once: the confusion matrix and the accuracy agree.
    matrix = metrics["confusion_matrix"]
    assert sum(map(sum, matrix)) == metrics["test_size"]
    diagonal = sum(row[index] for index, row in enumerate(matrix))
    assert metrics["test_accuracy"] == pytest.approx(diagonal / metrics["test_size"], abs=1e-6)


@pytest.mark.parametrize(
    "distribute, message",
    [
        ("model:1", "must be one of none, data, model:N (N >= 2"),
        ("model:4", "attn/v/kernel has shape (18, 18): its dimension 18 does not divide by the 4"),
        ("model:3", "--distribute model:3 does not divide the model's 2 heads"),
    ],
)
def test_a_model_parallel_plan_that_cannot_be_is_one_line(tmp_path, capsys, distribute, message):
    """Checked on the run's widths before any device is used (here 18 wide, on one device)."""
    tiny = '{"hidden_dim": 18, "num_heads": 2, "depth": 2, "local_up_to_layer": 1}'
    arguments = [*train_arguments(tmp_path / "run"), "--model-args", tiny]
    assert main([*arguments, "--distribute", distribute]) == 2
    error = capsys.readouterr().err
    if keras.backend.backend() != "jax" and distribute != "model:1":
        message = f"--distribute {distribute} is JAX's (keras.distribution.ModelParallel)"
    assert message in error
    assert not (tmp_path / "run").exists()


@pytest.mark.skipif(keras.backend.backend() != "torch", reason="its engine is per process")
def test_pytorch_outside_torchrun_is_one_line(tmp_path, capsys):
    status = main([*train_arguments(tmp_path / "run"), "--distribute", "data"])
    assert status == 2
    assert "--distribute data on PyTorch runs one process per device under torchrun" in (
        capsys.readouterr().err
    )
    assert not (tmp_path / "run").exists()  # refused before anything was written


@pytest.mark.parametrize(
    "variable, launcher_backend",
    [("WORLD_SIZE", "torch"), ("KERAS_DISTRIBUTION_NUM_PROCESSES", "jax"), ("TF_CONFIG", None)],
)
def test_a_launch_the_job_cannot_run_is_one_line(tmp_path, capsys, monkeypatch, variable,
                                                 launcher_backend):  # fmt: skip
    """One of several processes: under the launcher's backend without --distribute data,
    under another backend, or of a TensorFlow cluster (not coordinated yet)."""
    monkeypatch.setenv(variable, '{"cluster": {}}' if variable == "TF_CONFIG" else "2")
    assert main([*train_arguments(tmp_path / "run"), "--distribute", "none"]) == 2
    if launcher_backend is None:
        message = "This process is one of a TensorFlow cluster (TF_CONFIG="
    elif keras.backend.backend() == launcher_backend:
        message = "pass --distribute data"
    else:
        message = f"set KERAS_BACKEND={launcher_backend}"
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
