"""A real run killed with SIGKILL mid-training and started again with the same command."""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import keras
import pytest

pytest.importorskip("tensorflow")
pytest.importorskip("sklearn")

TINY_MODEL = '{"hidden_dim": 16, "num_heads": 2, "depth": 2, "local_up_to_layer": 1}'


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_killed_run_resumes_and_completes_with_the_same_epochs(tmp_path):
    run_dir = tmp_path / "run"
    command = [
        sys.executable, "-m", "keras_convit", "train", "--output-dir", str(run_dir),
        "--image-size", "8", "--model-args", TINY_MODEL, "--batch-size", "16",
        "--fraction", "0.5", "--no-scale-epochs", "--epochs", "4", "--warmup-epochs", "1",
        "--verbose", "2",
    ]  # fmt: skip
    env = {**os.environ, "KERAS_BACKEND": keras.backend.backend()}
    state_file = run_dir / "checkpoint" / "state.json"

    with open(tmp_path / "first.log", "w") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 300
        try:
            while not (state_file.exists() and json.loads(state_file.read_text())["epoch"] >= 1):
                assert process.poll() is None, (tmp_path / "first.log").read_text()
                assert time.monotonic() < deadline, "no epoch completed in time"
                time.sleep(0.02)
            # Killed at once: a fixed sleep "into the next epoch" could outlast the whole
            # run on an idle machine, or land before any epoch on a loaded one.
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait()
    killed = json.loads(state_file.read_text())
    assert 1 <= killed["epoch"] < 4, "the kill should land before the run ends"
    assert json.loads((run_dir / "run.json").read_text())["status"] == "running"

    second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stdout + second.stderr
    assert f"Resuming run in {run_dir} after epoch {killed['epoch']} of 4" in second.stdout

    with open(run_dir / "history.csv") as file:
        rows = list(csv.DictReader(file))
    assert [int(row["epoch"]) for row in rows] == [1, 2, 3, 4]
    for epoch in range(killed["epoch"]):  # the epochs done before the kill are kept as they were
        assert float(rows[epoch]["loss"]) == pytest.approx(killed["history"]["loss"][epoch])
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["epochs"] == 4 and 0.0 <= metrics["test_accuracy"] <= 1.0
    for name in ("best.weights.h5", "model.keras", "learning_curves.png"):
        assert (run_dir / name).stat().st_size > 0, name
    assert json.loads((run_dir / "run.json").read_text())["status"] == "finished"
    assert not (run_dir / "checkpoint").exists()
