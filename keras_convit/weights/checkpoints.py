"""Reading and writing weight files, recognised by their content, never by unpickling code.

Formats: "keras" (a Keras `.weights.h5`, HDF5), "safetensors", "torch" (a `torch.save` zip
archive, or the legacy pickle format), read with `torch.load(weights_only=True)`.
"""

import json
import math
import os
import struct
import zipfile

import numpy as np

from keras_convit._files import atomic_path
from keras_convit._keras_compat import read_weights_file_layers

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
ZIP_SIGNATURE = b"PK\x03\x04"
# Metadata that `export_reference_weights` stores beside the tensors (safetensors only carries str).
GRID_METADATA_KEY = "keras_convit.grid_size"
_SAFETENSORS_DTYPE_BYTES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "I16": 2, "U16": 2, "F16": 2,
    "BF16": 2, "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8,
}  # fmt: skip


def detect_format(path):
    """The format of the weight file at `path`, from its first bytes.

    Returns "keras", "safetensors" or "torch"; raises ValueError for anything else, naming what
    the file looks like.

    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "weights.bin")
    >>> with open(path, "wb") as file:
    ...     _ = file.write(HDF5_SIGNATURE + bytes(8))
    >>> detect_format(path)
    'keras'
    """
    name = os.fspath(path)
    size = os.path.getsize(name)
    with open(name, "rb") as file:
        head = file.read(16)
    if not head:
        raise ValueError(f"The weights file {name!r} is empty.")
    if head.startswith(HDF5_SIGNATURE):
        return "keras"
    if head.startswith(ZIP_SIGNATURE):
        return _zip_kind(name)
    # A pickle starts with PROTO (0x80) and a protocol number; torch's legacy format is a pickle.
    if head[0] == 0x80 and 2 <= head[1] <= 5:
        return "torch"
    if len(head) >= 9 and head[8:9] == b"{":
        (header_size,) = struct.unpack("<Q", head[:8])
        if header_size <= size - 8:
            return "safetensors"
        raise ValueError(
            f"The safetensors file {name!r} is truncated: its header alone needs "
            f"{header_size + 8} bytes, the file has {size}."
        )
    raise ValueError(
        f"{name!r} is not a Keras weights file (.weights.h5, HDF5), a .safetensors file or a "
        "PyTorch checkpoint (.pth / .bin)."
    )


def _zip_kind(name):
    try:
        with zipfile.ZipFile(name) as archive:
            names = archive.namelist()
    except zipfile.BadZipFile as error:
        raise ValueError(
            f"{name!r} starts like a zip archive (a PyTorch checkpoint) but cannot be read, "
            f"probably truncated or corrupt: {error}"
        ) from error
    if any(entry.endswith("data.pkl") for entry in names):
        return "torch"
    if "model.weights.h5" in names:
        raise ValueError(
            f"{name!r} is a whole Keras model (.keras archive), not a weights file: load it with "
            "keras.saving.load_model, or save its weights with model.save_weights('x.weights.h5')."
        )
    raise ValueError(f"{name!r} is a zip archive but not a PyTorch checkpoint (no data.pkl).")


def read_reference_checkpoint(path):
    """Reads a reference (timm / official) checkpoint: `(state_dict, metadata)`.

    `state_dict` maps reference keys (`blocks.0.attn.qk.weight`) to float32 numpy arrays, in the
    PyTorch layout; a dict wrapping them under "model" or "state_dict" (the official training
    checkpoints) is unwrapped and a DistributedDataParallel "module." prefix dropped. `metadata`
    holds the safetensors metadata strings ({} for PyTorch files).

    >>> import os, tempfile, numpy as np, safetensors.numpy
    >>> path = os.path.join(tempfile.mkdtemp(), "tiny.safetensors")
    >>> safetensors.numpy.save_file({"cls_token": np.zeros((1, 1, 8), "float32")}, path)
    >>> state_dict, metadata = read_reference_checkpoint(path)
    >>> state_dict["cls_token"].shape
    (1, 1, 8)
    """
    name = os.fspath(path)
    kind = detect_format(name)
    if kind == "safetensors":
        state_dict, metadata = _read_safetensors(name)
    elif kind == "torch":
        state_dict, metadata = _read_torch(name), {}
    else:
        raise ValueError(
            f"{name!r} is a Keras weights file, not a reference checkpoint (.safetensors / .pth)."
        )
    return _as_float32(_unwrap(state_dict, name)), metadata


def _read_safetensors(name):
    try:
        from safetensors import SafetensorError
        from safetensors.numpy import load_file
    except ImportError as error:
        raise ImportError(
            "Reading .safetensors files needs the `safetensors` package: "
            "pip install 'keras-convit[weights]'."
        ) from error
    header = safetensors_header(name)
    metadata = header.pop("__metadata__", None) or {}
    try:
        return load_file(name), metadata
    except (SafetensorError, ValueError, OSError) as error:
        message = f"Cannot read the safetensors file {name!r} (corrupt?): {error}"
        raise ValueError(message) from error


def safetensors_header(name):
    """Parses and checks the header, so a truncated file fails here with a clear message."""
    size = os.path.getsize(name)
    with open(name, "rb") as file:
        (header_size,) = struct.unpack("<Q", file.read(8))
        if header_size > size - 8:
            raise ValueError(
                f"The safetensors file {name!r} is truncated: its header alone needs "
                f"{header_size + 8} bytes, the file has {size}."
            )
        try:
            header = json.loads(file.read(header_size))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            message = f"The safetensors file {name!r} has a corrupt header: {error}"
            raise ValueError(message) from error
    if not isinstance(header, dict):
        raise ValueError(f"The safetensors file {name!r} has a corrupt header (not a JSON object).")
    data_size = size - 8 - header_size
    for key, entry in header.items():
        if key == "__metadata__":
            continue
        try:
            begin, end = entry["data_offsets"]
            expected = math.prod(entry["shape"]) * _SAFETENSORS_DTYPE_BYTES[entry["dtype"]]
        except (TypeError, KeyError, ValueError) as error:
            raise ValueError(
                f"The safetensors file {name!r} has a corrupt entry for {key!r}: {entry!r}"
            ) from error
        if end > data_size:
            raise ValueError(
                f"The safetensors file {name!r} is truncated: {key!r} ends at byte {end} of the "
                f"data, which holds only {data_size} bytes."
            )
        if end - begin != expected:
            raise ValueError(
                f"The safetensors file {name!r} is corrupt: {key!r} spans {end - begin} bytes, "
                f"its dtype and shape need {expected}."
            )
    return header


def _read_torch(name):
    try:
        import torch
    except ImportError as error:
        raise ImportError(
            f"Reading the PyTorch checkpoint {name!r} needs torch installed (it is only used to "
            "read the file); or convert it to .safetensors where torch is available."
        ) from error
    import argparse
    import pickle

    # The official training checkpoints carry their argparse options; a Namespace only holds
    # attributes, so it is safe to allow beside the tensors.
    try:
        # A file object, not the name: torch.load hands names ending in .safetensors elsewhere.
        with open(name, "rb") as file, torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise ValueError(
            f"Refused to load {name!r}: it holds pickled Python objects other than tensors, "
            "which could run arbitrary code (torch.load(weights_only=True) rejected it). If you "
            f"trust the file, re-save just its state_dict. Details: {error}"
        ) from error
    except Exception as error:  # torch raises many kinds on a damaged archive
        raise ValueError(
            f"Cannot read the PyTorch checkpoint {name!r} (truncated or corrupt?): {error}"
        ) from error


def _unwrap(checkpoint, name):
    for wrapper in ("model", "state_dict"):
        if isinstance(checkpoint, dict) and isinstance(checkpoint.get(wrapper), dict):
            checkpoint = checkpoint[wrapper]
            break
    if not isinstance(checkpoint, dict) or not checkpoint:
        raise ValueError(f"{name!r} holds no state_dict (a dict of named tensors).")
    if all(key.startswith("module.") for key in checkpoint):
        checkpoint = {key[len("module.") :]: value for key, value in checkpoint.items()}
    return checkpoint


def _as_float32(state_dict):
    arrays = {}
    for key, value in state_dict.items():
        kind = type(value).__name__
        if hasattr(value, "detach"):  # a torch tensor; bf16/fp16 go through float32
            value = value.detach().cpu().float().numpy()
        value = np.asarray(value)
        if value.dtype == object or value.dtype.kind in "SUb":
            raise ValueError(f"Checkpoint entry {key!r} is not a tensor ({kind}).")
        arrays[key] = value.astype(np.float32) if value.dtype != np.float32 else value
    return arrays


def require_finite(arrays, source):
    """Raises ValueError naming the first of `arrays` ({name: array}, in order) that holds a NaN
    or an infinity: such weights come from a diverged run or a damaged file, and a model with
    them predicts NaN.

    >>> require_finite({"a": np.ones(2), "b": np.array([1.0, np.nan])}, "w.safetensors")
    Traceback (most recent call last):
    ...
    ValueError: 'w.safetensors' holds non-finite weights: 'b' has 1 NaN or infinite values of 2...
    """
    for name, value in arrays.items():
        value = np.asarray(value)
        floating = value.dtype.kind in "fc" or "float" in value.dtype.name  # bfloat16, float8
        if floating and not np.isfinite(value).all():
            bad = value.size - int(np.count_nonzero(np.isfinite(value)))
            raise ValueError(
                f"{source!r} holds non-finite weights: {name!r} has {bad} NaN or infinite values "
                f"of {value.size} (a diverged run or a damaged file); refused."
            )


def write_reference_checkpoint(state_dict, path, metadata=None):
    """Writes numpy arrays to a `.safetensors` file atomically (a complete file or none)."""
    try:
        from safetensors.numpy import save_file
    except ImportError as error:
        raise ImportError(
            "Writing .safetensors files needs the `safetensors` package: "
            "pip install 'keras-convit[weights]'."
        ) from error
    tensors = {key: np.ascontiguousarray(value) for key, value in state_dict.items()}
    with atomic_path(os.fspath(path)) as temporary:
        save_file(tensors, temporary, metadata={"format": "pt", **(metadata or {})})


def read_keras_weights(path):
    """{Keras variable path: numpy array} of a `.weights.h5` file, without building a model.

    The leaf names follow from the layer kind (Keras stores variables by position only).
    Optimizer variables are not read.
    """
    import h5py

    name = os.fspath(path)
    try:
        with h5py.File(name, "r") as file:
            layers = read_weights_file_layers(file)
    except (OSError, KeyError, ValueError) as error:
        raise ValueError(
            f"Cannot read the Keras weights file {name!r} (truncated or corrupt?): {error}"
        ) from error
    arrays = {}
    for layer_path, values in layers:
        leaves = _leaf_names(layer_path.rsplit("/", 1)[-1])
        for index, value in enumerate(values):
            leaf = leaves[index] if index < len(leaves) else str(index)
            arrays[f"{layer_path}/{leaf}"] = value
    if not arrays:
        raise ValueError(f"The Keras weights file {name!r} holds no layer weights.")
    return arrays


def _leaf_names(layer_name):
    if layer_name.startswith("norm"):
        return ("gamma", "beta")
    return {
        "pos_embed": ("embedding",),
        "cls_token": ("token",),
        "dist_token": ("token",),
        "attn": ("gating_param",),
    }.get(layer_name, ("kernel", "bias"))
