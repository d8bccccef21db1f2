"""Faults during a run: kills at any moment, a full disk, a second run on the same directory and
non-finite weights. Each ends with the last good checkpoint intact, a clear message and a run
that resumes. The slow tests run real `python -m keras_convit train` processes (tiny model,
offline digits); the helpers and the full-disk wrapper are in `fault_helpers.py`."""

import json
import os
import random
import re
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
from fault_helpers import (
    EPOCHS,
    HELPERS,
    assert_committed_files_load,
    environment,
    history_rows,
    read,
    start,
    state,
    temporaries,
    train_arguments,
    train_command,
    wait_for,
)
from harness import in_the_session_of

from keras_convit.training import callbacks
from keras_convit.training.callbacks import (
    CheckpointWriteError,
    NonFiniteLossError,
    NonFiniteWeightsError,
    RunCheckpoint,
)

ERROR_LINE = "keras-convit train: error: "


def _tiny_model():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4), keras.layers.Dense(2)])
    model.compile(optimizer="adam", loss="mse")
    return model


def _fit(model, epochs, callbacks_):
    data = np.linspace(0, 1, 48, dtype="float32").reshape(16, 3)
    return model.fit(
        data, data[:, :2], batch_size=4, epochs=epochs, verbose=0, callbacks=callbacks_
    )


def _loaded_weights(directory, name):
    model = _tiny_model()
    model.optimizer.build(model.trainable_variables)
    model.load_weights(os.path.join(directory, name))
    return [keras.ops.convert_to_numpy(v) for v in model.weights]


def test_non_finite_weights_are_never_committed(tmp_path):
    def poison(epoch, logs):
        if epoch == 1:  # epoch 2: its last loss was finite, its weights are not
            model.layers[0].kernel.assign(np.full((3, 4), np.nan, "float32"))

    model = _tiny_model()
    checkpoint = RunCheckpoint(tmp_path, monitor="loss", mode="min")
    poisoner = keras.callbacks.LambdaCallback(on_epoch_end=poison)
    with pytest.raises(NonFiniteWeightsError, match=r"in epoch 2 .*epoch 1\) is kept") as error:
        _fit(model, 3, [poisoner, checkpoint])
    assert isinstance(error.value, NonFiniteLossError)  # the job reports it as a non-finite loss
    committed = RunCheckpoint.read_state(tmp_path)
    assert committed["epoch"] == 1 and len(committed["history"]["loss"]) == 1
    assert sorted(os.listdir(tmp_path)) == [
        "best-epoch-0001.weights.h5", "epoch-0001.weights.h5", "state.json"
    ]  # fmt: skip
    assert all(np.isfinite(w).all() for w in _loaded_weights(tmp_path, "epoch-0001.weights.h5"))


@pytest.mark.parametrize("failing", ["weights", "state"])
def test_a_failed_checkpoint_write_keeps_the_committed_one_and_resumes(
    tmp_path, monkeypatch, failing
):
    """ENOSPC on the weights file (claimed first) or on state.json: an OSError that names the
    epoch, the cause and the kept checkpoint; nothing of the failed epoch is left."""

    def full_disk(*args):
        raise OSError(28, os.strerror(28))

    def fill_disk(epoch, logs):
        if epoch == 1:
            target = (os, "posix_fallocate") if failing == "weights" else None
            if target is None:
                target = (callbacks, "write_json_atomically")
            monkeypatch.setattr(*target, full_disk)

    model = _tiny_model()
    checkpoint = RunCheckpoint(tmp_path, monitor="loss", mode="min")
    filler = keras.callbacks.LambdaCallback(on_epoch_begin=fill_disk)
    expected = (
        rf"Cannot write the checkpoint of epoch 2 in {re.escape(str(tmp_path))}: No space left "
        r"on device \(ENOSPC\)\. The last good checkpoint \(epoch 1\) is kept\."
    )
    with pytest.raises(CheckpointWriteError, match=expected) as error:
        _fit(model, 3, [filler, checkpoint])
    assert isinstance(error.value, OSError)
    before = RunCheckpoint.read_state(tmp_path)
    assert before["epoch"] == 1
    assert sorted(os.listdir(tmp_path)) == [
        "best-epoch-0001.weights.h5", "epoch-0001.weights.h5", "state.json"
    ]  # fmt: skip
    kept = _loaded_weights(tmp_path, "epoch-0001.weights.h5")

    monkeypatch.undo()  # space again: the same fit resumes after epoch 1
    seen = []
    marker = keras.callbacks.LambdaCallback(on_epoch_begin=lambda epoch, logs: seen.append(epoch))
    resumed = RunCheckpoint(tmp_path, monitor="loss", mode="min")
    restored = {}
    probe = keras.callbacks.LambdaCallback(
        on_train_begin=lambda logs: restored.update(w=keras.ops.convert_to_numpy(model.weights[0]))
    )
    _fit(model, 3, [resumed, probe, marker])
    np.testing.assert_array_equal(restored["w"], kept[0])
    assert seen == [1, 2] and resumed.epoch == 3
    assert resumed.history["loss"][:1] == before["history"]["loss"]


@pytest.mark.slow
@in_the_session_of("torch")
@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_five_kills_at_random_moments_then_the_run_completes(tmp_path):
    epochs = EPOCHS + 1
    run_dir = tmp_path / "run"
    rng = random.Random(14)
    # ("seconds", s): s seconds after the start (start-up, compilation or training); "write":
    # inside the first checkpoint write after the process has committed an epoch of its own.
    plan = [
        ("seconds", rng.uniform(0.5, 8)),
        ("write", None),
        ("seconds", rng.uniform(1, 15)),
        ("seconds", rng.uniform(1, 30)),
        ("seconds", rng.uniform(1, 15)),
    ]
    kills, committed, landed, tried = [], None, False, False
    for number, (kind, seconds) in enumerate(plan, 1):
        if tried and not landed:  # the write was over before the kill: aim at the next one
            kind, seconds = "write", None
        log = tmp_path / f"kill-{number}.log"
        process = start(train_command(run_dir, epochs), log)
        started = time.monotonic()
        due = _kill_moment(run_dir, epochs, kind, seconds, committed["epoch"] if committed else 0)
        wait_for(due, process, log, timeout=300, interval=0.002)
        process.send_signal(signal.SIGKILL)
        process.wait()
        left, now = temporaries(run_dir), state(run_dir)
        if kind == "write":
            tried, landed = True, landed or bool(left)
        kills.append(
            f"kill {number} ({kind}{'' if seconds is None else f' {seconds:.1f} s'}) at "
            f"{time.monotonic() - started:.1f} s: epoch {now['epoch'] if now else 0} "
            f"committed, temporaries left {left}"
        )
        if now is not None:  # the committed state is whole and its past epochs never change
            assert_committed_files_load(run_dir)
            if committed is not None:
                assert now["epoch"] >= committed["epoch"], kills
                for key, values in committed["history"].items():
                    assert now["history"][key][: len(values)] == values, kills
            committed = now
        if (run_dir / "run.json").exists():
            assert json.loads((run_dir / "run.json").read_text())["status"] == "running"
    summary = "\n".join(kills)
    print(summary)
    assert landed, f"no kill landed inside a checkpoint write:\n{summary}"
    assert committed is not None, summary

    final = subprocess.run(
        train_command(run_dir, epochs), env=environment(), capture_output=True, text=True,
        timeout=900,
    )  # fmt: skip
    assert final.returncode == 0, f"{summary}\n{final.stdout}{final.stderr}"
    assert f"after epoch {committed['epoch']} of {epochs}" in final.stdout, final.stdout
    rows = history_rows(run_dir)
    assert [int(row["epoch"]) for row in rows] == list(range(1, epochs + 1)), summary
    for epoch, loss in enumerate(committed["history"]["loss"]):
        assert float(rows[epoch]["loss"]) == pytest.approx(loss)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["epochs"] == epochs and 0.0 <= metrics["test_accuracy"] <= 1.0
    assert (run_dir / "model.keras").stat().st_size > 0
    assert json.loads((run_dir / "run.json").read_text())["status"] == "finished"
    assert not (run_dir / "checkpoint").exists()


def _kill_moment(run_dir, epochs, kind, seconds, committed_epoch):
    """When to kill a process started now (the kinds are in the test's plan); at the latest
    in its last epoch, so that no killed run finishes."""
    started, moment, stale = time.monotonic(), {}, set(temporaries(run_dir))

    def due():
        folder = run_dir / "checkpoint"
        names = set(os.listdir(folder)) if folder.is_dir() else set()
        stale.intersection_update(names)  # what an earlier kill left goes at the start
        fresh = names - stale
        if any(f"epoch-{epochs:04d}" in name for name in fresh):
            return True
        if kind == "seconds":
            return time.monotonic() - started >= seconds
        if not moment and (state(run_dir) or {"epoch": 0})["epoch"] > committed_epoch:
            moment["committed"] = True
        return bool(moment) and any(name.startswith("tmp-") for name in fresh)

    return due


@pytest.mark.slow
@in_the_session_of("tensorflow")
@pytest.mark.skipif(sys.platform == "win32", reason="needs RLIMIT_FSIZE")
def test_a_full_disk_in_the_checkpoint_write_is_one_line_and_the_run_resumes(tmp_path):
    run_dir = tmp_path / "run"
    # After epoch 1 no file may grow past 16 KiB: the ~200 KiB weights of epoch 2 cannot be
    # written; run.json, state.json and history.csv could.
    limited = [
        sys.executable, HELPERS, "--file-size-limit", "16384", "--after-epoch", "1", "--",
        *train_arguments(run_dir),
    ]  # fmt: skip
    failed = subprocess.run(limited, env=environment(), capture_output=True, text=True, timeout=600)
    output = failed.stdout + failed.stderr
    assert failed.returncode == 2, output  # not 1 (a traceback), not -11 / 139 (a segfault)
    assert "Traceback" not in failed.stderr and "Exception ignored" not in failed.stderr, output
    last = failed.stderr.strip().splitlines()[-1]
    assert re.fullmatch(
        re.escape(f"{ERROR_LINE}Cannot write the checkpoint of epoch 2 in {run_dir}")
        + r".checkpoint: File too large \(EFBIG\)\. The last good checkpoint \(epoch 1\) is "
        r"kept\. .*resume\.",
        last,
    ), last
    committed = state(run_dir)
    assert committed["epoch"] == 1 and temporaries(run_dir) == []
    assert sorted(os.listdir(run_dir / "checkpoint")) == [
        "best-epoch-0001.weights.h5", "epoch-0001.weights.h5", "state.json"
    ]  # fmt: skip
    assert_committed_files_load(run_dir)
    assert [row["epoch"] for row in history_rows(run_dir)] == ["1"]
    run = json.loads((run_dir / "run.json").read_text())
    assert run["status"] == "failed" and "Cannot write the checkpoint" in run["error"]

    resumed = subprocess.run(
        train_command(run_dir), env=environment(), capture_output=True, text=True, timeout=600
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"Resuming run in {run_dir} after epoch 1 of {EPOCHS}" in resumed.stdout
    rows = history_rows(run_dir)
    assert [int(row["epoch"]) for row in rows] == list(range(1, EPOCHS + 1))
    assert float(rows[0]["loss"]) == pytest.approx(committed["history"]["loss"][0])
    assert json.loads((run_dir / "metrics.json").read_text())["epochs"] == EPOCHS


@pytest.mark.slow
@in_the_session_of("jax")
def test_a_second_run_on_the_same_directory_is_refused_and_the_first_finishes(tmp_path):
    run_dir = tmp_path / "run"
    log = tmp_path / "first.log"
    first = start(train_command(run_dir), log)
    try:
        wait_for(lambda: "Starting run in" in read(log), first, log, interval=0.05)
        began = time.monotonic()
        second = subprocess.run(
            train_command(run_dir), env=environment(), capture_output=True, text=True,
            timeout=300,
        )  # fmt: skip
        refused_after = time.monotonic() - began
        assert first.poll() is None, "the first run should still hold the directory"
        assert first.wait(timeout=600) == 0, read(log)
    finally:
        if first.poll() is None:
            first.kill()
    print(f"second run refused after {refused_after:.1f} s")
    assert second.returncode == 2, second.stdout + second.stderr
    assert "Traceback" not in second.stderr, second.stderr
    last = second.stderr.strip().splitlines()[-1]
    assert last.startswith(f"{ERROR_LINE}{run_dir} is in use by another keras-convit run ")
    assert f"(process {first.pid})" in last, last
    assert refused_after < 60, refused_after  # start-up, then the lock refuses at once
    assert "Starting run" not in second.stdout and "Resuming run" not in second.stdout

    # The first run's files are its own: one start, its epoch losses and test accuracy.
    first_log = read(log)
    assert first_log.count("Starting run in") == 1 and "Resuming" not in first_log
    printed = [float(loss) for loss in re.findall(r"/step - .*? - loss: ([0-9.]+)", first_log)]
    rows = history_rows(run_dir)
    assert [int(row["epoch"]) for row in rows] == list(range(1, EPOCHS + 1))
    assert [float(row["loss"]) for row in rows] == pytest.approx(printed, abs=1e-4)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    accuracy = float(re.search(r"Test accuracy ([0-9.]+)", first_log).group(1))
    assert metrics["epochs"] == EPOCHS and metrics["test_accuracy"] == pytest.approx(
        accuracy, abs=1e-4
    )
    run = json.loads((run_dir / "run.json").read_text())
    assert run["status"] == "finished" and run["settings"] == metrics["settings"]
    assert run["settings"]["epochs"] == EPOCHS and run["settings"]["fraction"] == 0.25
