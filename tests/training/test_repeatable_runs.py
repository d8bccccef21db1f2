"""One seed, one run: the same `keras-convit train` command twice gives the same history."""

import json
import os

from fault_helpers import history_rows, read, start, train_command

TIMINGS = ("epoch_seconds",)


def _without_timings(rows):
    return [{key: value for key, value in row.items() if key not in TIMINGS} for row in rows]


def test_same_command_and_seed_give_the_same_run(tmp_path):
    # Two processes at once, as two users would run them: the default (light) augmentation
    # with its crops and MixUp, the shuffling, the initialisation and dropout all seeded.
    runs = [tmp_path / "first", tmp_path / "second"]
    processes = [
        start([*train_command(run, epochs=3), "--seed", "1"], str(run) + ".log") for run in runs
    ]
    for process, run in zip(processes, runs, strict=True):
        assert process.wait(timeout=600) == 0, read(str(run) + ".log")
    first, second = (_without_timings(history_rows(run)) for run in runs)
    assert len(first) == 3
    assert first == second  # every loss and accuracy, to the last digit
    metrics = [json.loads(read(os.path.join(run, "metrics.json"))) for run in runs]
    assert metrics[0]["test_loss"] == metrics[1]["test_loss"]
    assert metrics[0]["confusion_matrix"] == metrics[1]["confusion_matrix"]
