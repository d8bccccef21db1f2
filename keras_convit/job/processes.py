"""The processes of one job: which one this is, which one writes the run directory, and what
they agree on. One process, unless launched as several: by `torchrun` (PyTorch's DDP, one
process per device; they talk through `torch.distributed`, NCCL with GPUs, gloo without) or
through `keras.distribution` (JAX, one process per host; `jax.distributed`)."""

import contextlib
import dataclasses
import os
import shutil
import sys
import tempfile

import keras
import numpy as np

from keras_convit.job.config import ConfigError
from keras_convit.job.directory import CHECKPOINT_DIR, RunDirectoryError
from keras_convit.job.record import RUN_FILE

# What each launcher of several processes sets in every process: (backend, launcher).
LAUNCHERS = {
    "WORLD_SIZE": ("torch", "torchrun"),
    "KERAS_DISTRIBUTION_NUM_PROCESSES": ("jax", "keras.distribution"),
}
# What a process other than the writer copies from the run directory before the job starts.
RESUME_FILES = (RUN_FILE, CHECKPOINT_DIR)


@dataclasses.dataclass(frozen=True)
class Processes:
    """This process (`index`) among `count`, which talk through `engine` ("torch":
    `torch.distributed`; "jax": `jax.distributed`); process 0 writes the run directory.

    Example:
    >>> with keras_convit.job.launched_processes("none") as processes:
    ...     processes.count, processes.writer, processes.agreed_signal(None)
    (1, True, None)
    """

    index: int = 0
    count: int = 1
    local_index: int = 0
    engine: str = None

    @property
    def writer(self):
        return self.index == 0

    @property
    def several(self):
        return self.count > 1

    def barrier(self):
        """Returns once every process has called it."""
        if self.several:
            self.gathered([0.0])

    def gathered(self, values):
        """Every process's `values` (floats), as a list per process, in process order."""
        if not self.several:
            return [list(values)]
        if self.engine == "jax":
            from jax.experimental import multihost_utils

            # Each float64 as two float32 (JAX computes in 32 bits unless told otherwise).
            values = np.asarray(values, dtype=np.float64)
            high = values.astype(np.float32)
            low = (values - high).astype(np.float32)
            parts = multihost_utils.process_allgather(np.stack([high, low]))
            parts = np.asarray(parts, dtype=np.float64).reshape(self.count, 2, -1)
            return (parts[:, 0] + parts[:, 1]).tolist()
        import torch
        import torch.distributed as dist

        device = "cuda" if torch.cuda.is_available() else "cpu"
        local = torch.tensor(values, dtype=torch.float64, device=device)
        parts = [torch.empty_like(local) for _ in range(self.count)]
        dist.all_gather(parts, local)
        return [part.cpu().tolist() for part in parts]

    def agreed_signal(self, received):
        """The signal number any process received (the largest), or None: every process
        stops at the same step (a process that stops alone would leave the others waiting in
        their next gradient exchange)."""
        if not self.several:
            return received
        largest = max(values[0] for values in self.gathered([received or 0]))
        return int(largest) or None

    def mean(self, values):
        """The mean over the processes of each of `values` (floats)."""
        return np.mean(self.gathered(values), axis=0).tolist()

    def mean_logs(self, logs):
        """`logs` with each training metric averaged over the processes (each trained on its
        share of the batch, in as many steps; validation saw the same images everywhere)."""
        if not self.several or not logs:
            return logs
        keys = sorted(key for key in logs if not key.startswith("val_"))
        means = self.mean([float(logs[key]) for key in keys])
        return {**logs, **dict(zip(keys, means, strict=True))}

    def check_same_start(self, path, committed):
        """Raises `RunDirectoryError` unless every process starts from the same `committed`
        checkpoint state (None for a new run): on several machines, one whose copy of the run
        directory differs would train from another step, and the others would wait for ever."""
        if not self.several:
            return
        interrupted = (committed or {}).get("interrupted") or {}
        start = [committed["epoch"] if committed else -1, interrupted.get("step", 0)]
        starts = [tuple(int(value) for value in values) for values in self.gathered(start)]
        if len(set(starts)) > 1:
            raise RunDirectoryError(
                f"The {self.count} processes found different runs in {path} (committed "
                f"(epoch, step) per process: {starts}; -1: none): put --output-dir on a file "
                "system that every machine sees."
            )

    def check_replicas_agree(self, variables):
        """Raises `RuntimeError` unless every process holds the same `variables` (their sums
        and sums of squares, compared exactly); returns how many were compared."""
        local = []
        for variable in variables:
            value = np.asarray(keras.ops.convert_to_numpy(variable), dtype=np.float64)
            local += [float(value.sum()), float(np.square(value).sum())]
        copies = self.gathered(local)
        differing = [
            variable.path
            for number, variable in enumerate(variables)
            if any(copy[2 * number : 2 * number + 2] != copies[0][2 * number : 2 * number + 2]
                   for copy in copies)
        ]  # fmt: skip
        if differing:
            raise RuntimeError(
                f"The {self.count} processes hold different values of {len(differing)} "
                f"variables after training, e.g. {', '.join(differing[:3])}."
            )
        return len(variables)


@contextlib.contextmanager
def launched_processes(distribute):
    """The job's `Processes` inside the block. Several when launched as several: by torchrun
    (PyTorch: `WORLD_SIZE`; its process group is set up on entry, taken down on exit) or with
    `keras.distribution`'s variables (JAX: `KERAS_DISTRIBUTION_NUM_PROCESSES`, with
    `KERAS_DISTRIBUTION_JOB_ADDRESSES` and `KERAS_DISTRIBUTION_PROCESS_ID` where the platform
    does not give them; `keras.distribution.initialize()` starts `jax.distributed`).

    Raises `ConfigError` (before anything is written) for a launch of several processes the
    job cannot run: under another backend than the launcher's, without `--distribute data`,
    or a TensorFlow cluster (`TF_CONFIG`).
    """
    if os.environ.get("TF_CONFIG"):
        raise ConfigError(
            f"This process is one of a TensorFlow cluster (TF_CONFIG="
            f"{os.environ['TF_CONFIG'][:40]!r}), which keras-convit train does not coordinate "
            "yet: --distribute data trains on one machine's devices under TensorFlow; for "
            "several machines use examples/distributed/tf_mirrored.py."
        )
    launched = [
        (variable, backend, launcher)
        for variable, (backend, launcher) in LAUNCHERS.items()
        if os.environ.get(variable, "") not in ("", "0", "1")
    ]
    if not launched:
        yield Processes()
        return
    variable, backend, launcher = launched[0]
    count = int(os.environ[variable])
    if keras.backend.backend() != backend:
        raise ConfigError(
            f"This process is one of {count} ({variable}={count}: {launcher}), which runs the "
            f"job under {backend} only: set KERAS_BACKEND={backend} "
            f"(got {keras.backend.backend()})."
        )
    if distribute != "data":
        raise ConfigError(
            f"This process is one of {count} ({variable}={count}: {launcher}): pass "
            "--distribute data (each process then trains on its share of every global batch)."
        )
    with (_torch_processes if backend == "torch" else _jax_processes)(count) as processes:
        yield processes


@contextlib.contextmanager
def _torch_processes(count):
    import torch
    import torch.distributed as dist

    local_index = int(os.environ.get("LOCAL_RANK", "0") or 0)
    if torch.cuda.is_available():
        torch.cuda.set_device(local_index)  # before Keras puts anything there
    dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    try:
        yield Processes(int(os.environ["RANK"]), count, local_index, engine="torch")
    finally:
        dist.destroy_process_group()


@contextlib.contextmanager
def _jax_processes(count):
    import jax

    keras.distribution.initialize()
    try:
        yield Processes(jax.process_index(), jax.process_count(), engine="jax")
    finally:
        jax.distributed.shutdown()


@contextlib.contextmanager
def run_directory_of(processes, output_dir):
    """The run directory this process works in: `output_dir` for the writer; for the others a
    private copy of what the job reads from it (run.json and the committed checkpoint), in a
    temporary directory removed on exit, and standard output silenced. Every process has its
    copy before the writer changes anything (a barrier)."""
    if processes.writer or output_dir is None:
        processes.barrier()
        yield output_dir
        return
    with tempfile.TemporaryDirectory(prefix=f"keras-convit-process-{processes.index}-") as top:
        private = os.path.join(top, os.path.basename(os.path.normpath(output_dir)))
        if os.path.isdir(output_dir):
            os.makedirs(private)
            for name in RESUME_FILES:
                _copy(os.path.join(output_dir, name), os.path.join(private, name))
        processes.barrier()
        with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):
            yield private
        sys.stdout.flush()


def _copy(source, destination):
    if os.path.isdir(source):
        shutil.copytree(source, destination)
    elif os.path.exists(source):
        shutil.copy2(source, destination)


class MeanOverProcesses(keras.callbacks.Callback):
    """Puts the training metrics averaged over `processes` in an epoch's logs (it goes before
    the callbacks that read them)."""

    def __init__(self, processes):
        super().__init__()
        self.processes = processes

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs.update(self.processes.mean_logs(logs))
