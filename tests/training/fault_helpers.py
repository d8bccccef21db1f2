"""Shared parts of the fault tests: the tiny `keras-convit train` command, its run directory's
files, and a wrapper that, in the middle of a run, fills the "disk" or sends a signal:

    python tests/training/fault_helpers.py --file-size-limit BYTES --after-epoch N -- train ...
    python tests/training/fault_helpers.py --signal SIGTERM --at-step N [--rank R] -- train ...

runs `keras-convit train ...` and, once epoch N is committed, lowers the process's file size
limit (RLIMIT_FSIZE) to BYTES: every later write past it fails with EFBIG, as on a full disk;
or, after the N-th training step of the process, sends itself the signal (a real one, handled
as one from outside); in a job of several processes, with --rank, only that process does.
"""

import argparse
import csv
import json
import os
import subprocess
import sys
import time

HELPERS = os.path.abspath(__file__)
TINY_MODEL = '{"hidden_dim": 16, "num_heads": 2, "depth": 2, "local_up_to_layer": 1}'
EPOCHS = 4


def train_arguments(run_dir, epochs=EPOCHS):
    """`keras-convit` arguments of a tiny run on a quarter of the 8x8 digits."""
    return [
        "train", "--output-dir", str(run_dir), "--image-size", "8", "--model-args", TINY_MODEL,
        "--batch-size", "16", "--fraction", "0.25", "--no-scale-epochs", "--epochs", str(epochs),
        "--warmup-epochs", "1", "--verbose", "2",
    ]  # fmt: skip


def train_command(run_dir, epochs=EPOCHS):
    return [sys.executable, "-m", "keras_convit", *train_arguments(run_dir, epochs)]


def environment():
    """The test's environment, with its backend, for the processes it starts."""
    import keras

    return {**os.environ, "KERAS_BACKEND": keras.backend.backend()}


def start(command, log_path):
    """Starts `command` with stdout and stderr into `log_path`; returns the `Popen`."""
    with open(log_path, "w") as log:
        return subprocess.Popen(command, env=environment(), stdout=log, stderr=subprocess.STDOUT)


def wait_for(condition, process, log_path, timeout=300, interval=0.001):
    """Polls `condition()` until it is true; fails if `process` ends first or time runs out."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, f"the run ended early:\n{read(log_path)}"
        assert time.monotonic() < deadline, f"timed out:\n{read(log_path)}"
        time.sleep(interval)


def read(path):
    return open(path).read() if os.path.exists(path) else ""


def state(run_dir):
    """The committed checkpoint state of a run directory, or None."""
    path = os.path.join(run_dir, "checkpoint", "state.json")
    return json.loads(read(path)) if os.path.exists(path) else None


def temporaries(run_dir):
    """The temporary files in the checkpoint folder (a write under way, or cut short)."""
    folder = os.path.join(run_dir, "checkpoint")
    names = os.listdir(folder) if os.path.isdir(folder) else []
    return sorted(name for name in names if name.startswith("tmp-"))


def assert_committed_files_load(run_dir):
    """Every weights file that state.json names is a complete HDF5 file with weights."""
    import h5py

    committed = state(run_dir)
    for key in ("last_weights", "best_weights"):
        with h5py.File(os.path.join(run_dir, "checkpoint", committed[key]), "r") as file:
            assert "layers" in file and "optimizer" in file, (key, list(file))


def history_rows(run_dir):
    with open(os.path.join(run_dir, "history.csv")) as file:
        return list(csv.DictReader(file))


def _main(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--file-size-limit", type=int)
    parser.add_argument("--after-epoch", type=int)
    parser.add_argument("--signal")
    parser.add_argument("--at-step", type=int)
    parser.add_argument("--rank", type=int, help="under torchrun: only this process signals")
    parser.add_argument("arguments", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    arguments = args.arguments[1:] if args.arguments[:1] == ["--"] else args.arguments
    if args.signal:
        rank = os.environ.get("RANK", os.environ.get("KERAS_DISTRIBUTION_PROCESS_ID", 0))
        if args.rank is not None and int(rank) != args.rank:
            args.at_step = None
        return _signal_at_step(args.signal, args.at_step, arguments)
    return _full_disk_after_epoch(args.file_size_limit, args.after_epoch, arguments)


def _signal_at_step(name, step, arguments):
    import signal

    from keras_convit.cli import main
    from keras_convit.training.preemption import PreemptionGuard

    on_batch_end, steps = PreemptionGuard.on_train_batch_end, []

    def on_train_batch_end(self, batch, logs=None):
        steps.append(batch)
        if len(steps) == step:
            os.kill(os.getpid(), getattr(signal, name))
        on_batch_end(self, batch, logs)

    PreemptionGuard.on_train_batch_end = on_train_batch_end
    return main(arguments)


def _full_disk_after_epoch(file_size_limit, after_epoch, arguments):
    import resource
    import signal

    from keras_convit.cli import main
    from keras_convit.training.callbacks import RunCheckpoint

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # as Python sets it: EFBIG, not a kill
    commit = RunCheckpoint.on_epoch_end

    def on_epoch_end(self, epoch, logs=None):
        commit(self, epoch, logs)
        if self.epoch >= after_epoch:
            limit = (file_size_limit, resource.RLIM_INFINITY)
            resource.setrlimit(resource.RLIMIT_FSIZE, limit)

    RunCheckpoint.on_epoch_end = on_epoch_end
    return main(arguments)


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
