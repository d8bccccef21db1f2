"""The processes of one job: which one this is, which one writes the run directory, and what
they agree on. One process, unless `torchrun` launched several (PyTorch's DDP, one process per
device); then they talk through `torch.distributed` (NCCL with GPUs, gloo without)."""

import contextlib
import dataclasses
import os
import shutil
import sys
import tempfile

import keras
import numpy as np

from keras_convit.job.config import ConfigError
from keras_convit.job.directory import RunDirectoryError

# What torchrun sets in every process it starts.
TORCHRUN_VARIABLES = ("RANK", "LOCAL_RANK", "WORLD_SIZE")
# What the other launchers set: a job of several processes the job does not coordinate yet.
OTHER_LAUNCHERS = {
    "TF_CONFIG": "a TensorFlow multi-worker cluster",
    "KERAS_DISTRIBUTION_NUM_PROCESSES": "keras.distribution",
}
# What a process other than the writer copies from the run directory before the job starts.
RESUME_FILES = ("run.json", "checkpoint")


@dataclasses.dataclass(frozen=True)
class Processes:
    """This process (`index`) among `count`; process 0 writes the run directory.

    Example:
    >>> with keras_convit.job.launched_processes("none") as processes:
    ...     processes.count, processes.writer, processes.agreed_signal(None)
    (1, True, None)
    """

    index: int = 0
    count: int = 1
    local_index: int = 0

    @property
    def writer(self):
        return self.index == 0

    @property
    def several(self):
        return self.count > 1

    def barrier(self):
        if self.several:
            import torch.distributed as dist

            dist.barrier()

    def agreed_signal(self, received):
        """The signal number any process received (the largest), or None: every process
        stops at the same step (a process that stops alone would leave the others waiting in
        their next gradient exchange)."""
        if not self.several:
            return received
        (largest,) = self._all_reduce([received or 0], "max")
        return int(largest) or None

    def mean(self, values):
        """The mean over the processes of each of `values` (floats)."""
        if not self.several:
            return list(values)
        return [total / self.count for total in self._all_reduce(values, "sum")]

    def gathered(self, values):
        """Every process's `values` (floats), as a list per process."""
        if not self.several:
            return [list(values)]
        import torch
        import torch.distributed as dist

        local = torch.tensor(values, dtype=torch.float64, device=_device())
        parts = [torch.empty_like(local) for _ in range(self.count)]
        dist.all_gather(parts, local)
        return [part.cpu().tolist() for part in parts]

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
        directory differs would train from another step, and DDP would wait for ever."""
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
        and sums of squares in float64, compared exactly); returns how many were compared."""
        local = []
        for variable in variables:
            value = np.asarray(keras.ops.convert_to_numpy(variable), dtype=np.float64)
            local += [float(value.sum()), float(np.square(value).sum())]
        copies = self.gathered(local)
        differing = [
            variable.path
            for number, variable in enumerate(variables)
            if any(copy[2 * number : 2 * number + 2] != local[2 * number : 2 * number + 2]
                   for copy in copies)
        ]  # fmt: skip
        if differing:
            raise RuntimeError(
                f"The {self.count} processes hold different values of {len(differing)} "
                f"variables after training, e.g. {', '.join(differing[:3])}."
            )
        return len(variables)

    def _all_reduce(self, values, operation):
        import torch
        import torch.distributed as dist

        tensor = torch.tensor(values, dtype=torch.float64, device=_device())
        dist.all_reduce(tensor, op=getattr(dist.ReduceOp, operation.upper()))
        return tensor.cpu().tolist()


def _device():
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


@contextlib.contextmanager
def launched_processes(distribute):
    """The job's `Processes` inside the block; under torchrun with several processes, its
    process group (set up on entry, taken down on exit).

    Raises `ConfigError` (before anything is written) for a launch of several processes the
    job cannot run: not under PyTorch, without `--distribute data`, or another launcher's.
    """
    for variable, launcher in OTHER_LAUNCHERS.items():
        if os.environ.get(variable, "") not in ("", "0", "1"):
            raise ConfigError(
                f"This process is one of several ({variable}={os.environ[variable][:40]!r}: "
                f"{launcher}); keras-convit train runs several processes under torchrun "
                "(PyTorch) only for now, and --distribute data over one machine's devices "
                "otherwise. For several TensorFlow or JAX hosts use examples/distributed/."
            )
    count = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if count == 1:
        yield Processes()
        return
    backend = keras.backend.backend()
    if backend != "torch":
        raise ConfigError(
            f"This process is one of {count} (WORLD_SIZE={count}: torchrun), which runs the job "
            f"under PyTorch only: set KERAS_BACKEND=torch (got {backend})."
        )
    if distribute != "data":
        raise ConfigError(
            f"This process is one of {count} launched by torchrun: pass --distribute data "
            "(each process then trains on its share of every global batch)."
        )
    import torch
    import torch.distributed as dist

    processes = Processes(
        int(os.environ["RANK"]), count, int(os.environ.get("LOCAL_RANK", "0") or 0)
    )
    if torch.cuda.is_available():
        torch.cuda.set_device(processes.local_index)  # before Keras puts anything there
    dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    try:
        yield processes
    finally:
        dist.destroy_process_group()


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
