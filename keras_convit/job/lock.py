"""One run per run directory: an advisory lock that a second `keras-convit train` respects."""

import contextlib
import os
import shutil

from keras_convit.job.record import read_run

LOCK_FILE = ".lock"


class RunLockedError(RuntimeError):
    """Another process is running in this run directory."""


@contextlib.contextmanager
def run_lock(path):
    """Holds the run directory `path` (created) for this process until the block ends.

    The lock is the kernel's (`fcntl.flock` on `path/.lock`): it is released when the process
    ends in any way, SIGKILL included, so a killed run never leaves a stale lock. The file
    names the holder's process id, for the error message of the refused second run.

    Raises:
        RunLockedError: another live process holds `path`.

    Example:
    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> with keras_convit.job.run_lock(folder):
    ...     pass
    """
    import fcntl  # POSIX only; keras_convit's training job runs on Linux and macOS

    os.makedirs(path, exist_ok=True)
    lock_path = os.path.join(path, LOCK_FILE)
    descriptor = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(descriptor, 32, 0).decode(errors="replace").strip() or "?"
            raise RunLockedError(
                f"{path} is in use by another keras-convit run (process {holder}); wait for it "
                "to end, or choose another --output-dir."
            ) from None
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(descriptor)  # closing releases the lock


def remove_unused_lock(path, created, locked_before):
    """A start that failed leaves nothing: not the directory it made, nor the lock file it put
    in a directory that holds no run."""
    if locked_before or not os.path.isdir(path) or read_run(path) is not None:
        return
    if created and set(os.listdir(path)) <= {LOCK_FILE}:
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            os.remove(os.path.join(path, LOCK_FILE))
