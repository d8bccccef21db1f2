"""Files that are whole or absent: the one safe write of every file the package writes (JSON,
text, weights, links), and where keras_convit keeps files under the Keras home.

A file is written beside its destination and renamed onto it once complete (`atomic_path`), so
a reader, a crash or a full disk leaves the old file or the new one, never half of one. This
module imports nothing of the package.
"""

import contextlib
import errno
import itertools
import json
import math
import os
import shutil

import numpy as np

_WRITES = itertools.count()


def save_weights_safely(model, path, size=None):
    """`model.save_weights(path)` (a `.weights.h5` file, optimizer state included), atomic, and
    raising `OSError` on a full disk instead of crashing the process.

    HDF5 does not survive a write that fails half-way: on EFBIG, h5py 3.14 raises from its
    destructors and the process then segfaults. So the file's `size` (default: an estimate
    from the variables) is first allocated with plain file calls, which fail cleanly; HDF5
    then truncates and writes the file, which is renamed into place once synced. Only a disk
    filled by another process in between can still fail inside HDF5.

    Example:
    >>> import os, tempfile
    >>> from keras_convit._files import save_weights_safely
    >>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    >>> save_weights_safely(model, os.path.join(tempfile.mkdtemp(), "model.weights.h5"))
    """
    with atomic_path(path) as temporary:  # "tmp-NAME" keeps the ".weights.h5" Keras needs
        _claim_space(temporary, size or _weights_file_size(model))
        model.save_weights(temporary, overwrite=True)
        with open(temporary, "rb+") as file:
            os.fsync(file.fileno())


@contextlib.contextmanager
def atomic_path(path):
    """Yields a temporary path beside `path`, moved onto it when the block succeeds and
    removed when it fails. The temporary name ends as `path` does (Keras reads the suffix)
    and is unique to this process and call, so concurrent writers never share one."""
    temporary = os.path.join(
        os.path.dirname(path), f"tmp-{os.getpid()}-{next(_WRITES)}-{os.path.basename(path)}"
    )
    try:
        yield temporary
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(temporary)
        raise


def write_json_atomically(path, data, **dump_arguments):
    """Writes `data` as JSON (indent 1 unless `dump_arguments` say otherwise), atomically and
    synced to disk.

    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "state.json")
    >>> write_json_atomically(path, {"epoch": 3})
    >>> json.load(open(path))
    {'epoch': 3}
    """
    dump_arguments.setdefault("indent", 1)
    with atomic_path(path) as temporary, open(temporary, "w", encoding="utf-8") as file:
        json.dump(data, file, **dump_arguments)
        file.flush()
        os.fsync(file.fileno())


def write_text_atomically(path, text):
    """Writes the string `text` (UTF-8) to `path`, atomically."""
    with atomic_path(path) as temporary, open(temporary, "w", encoding="utf-8") as file:
        file.write(text)


def link_or_copy(source, target):
    """`target` becomes a hard link to `source` (a copy where links fail), atomically."""
    with atomic_path(target) as temporary:
        try:
            os.link(source, temporary)  # no space needed: the files are never changed in place
        except OSError:
            shutil.copyfile(source, temporary)


def keras_home():
    """Where keras_convit keeps its files, as Keras keeps its downloads: `$KERAS_HOME`, else
    `~/.keras`, else `/tmp/.keras` when that is not writable (`keras.utils.get_file`'s rule).
    """
    base = os.path.expanduser(os.environ.get("KERAS_HOME") or os.path.join("~", ".keras"))
    with contextlib.suppress(OSError):
        os.makedirs(base, exist_ok=True)
    return base if os.access(base, os.W_OK) else os.path.join("/tmp", ".keras")


def _weights_file_size(model):
    """A little over the size of `model.save_weights`' file: its variables and the
    optimizer's, with ~4 KiB of HDF5 each."""
    variables = list(model.weights)
    optimizer = getattr(model, "optimizer", None)  # absent before compile
    if optimizer is not None and optimizer.built:
        variables += optimizer.variables
    return (1 << 16) + sum(4096 + math.prod(v.shape) * _itemsize(v.dtype) for v in variables)


def _itemsize(dtype):
    try:
        return np.dtype(dtype).itemsize
    except TypeError:  # bfloat16 and float8 without ml_dtypes loaded
        return 4


def _claim_space(path, size):
    """Creates `path` with `size` bytes allocated, or raises the OSError a full disk would
    (ENOSPC, EDQUOT, or EFBIG past a file size limit: Python ignores SIGXFSZ)."""
    with open(path, "wb") as file:
        if hasattr(os, "posix_fallocate"):  # not on macOS and Windows
            try:
                return os.posix_fallocate(file.fileno(), 0, size)
            except OSError as error:
                if error.errno not in (errno.EINVAL, errno.EOPNOTSUPP):  # no fallocate here
                    raise
    if shutil.disk_usage(os.path.dirname(path) or ".").free < size:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)
