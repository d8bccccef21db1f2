"""Name and layout correspondence between Keras variables and reference (timm / official)
checkpoint tensors. Keras variable paths mirror the reference module paths, so the mapping is a
handful of renaming rules, not code per layer."""

import re

import numpy as np

# Whole-path renames; everything else follows the generic rules below.
_SPECIAL_PATHS = {
    "pos_embed/embedding": "pos_embed",
    "cls_token/token": "cls_token",
    "dist_token/token": "dist_token",
}
_LEAF_NAMES = {"kernel": "weight", "gamma": "weight", "beta": "bias"}


def reference_key(variable_path):
    """The reference state_dict key of a Keras variable path.

    >>> reference_key("blocks_3/attn/qk/kernel"), reference_key("heads/head_dist/bias")
    ('blocks.3.attn.qk.weight', 'head_dist.bias')
    """
    if variable_path in _SPECIAL_PATHS:
        return _SPECIAL_PATHS[variable_path]
    # DeiT's two classifiers are `head` and `head_dist` at the top of its module.
    variable_path = re.sub(r"^heads/", "", variable_path)
    *modules, leaf = variable_path.split("/")
    modules = [re.sub(r"^blocks_(\d+)$", r"blocks.\1", module) for module in modules]
    return ".".join(modules + [_LEAF_NAMES.get(leaf, leaf)])


def from_reference_layout(variable_path, tensor):
    """Converts a reference tensor (numpy) to the layout of the Keras variable at `variable_path`.

    Linear weights (out, in) become Dense kernels (in, out); Conv2d weights (O, I, kh, kw) become
    Conv2D kernels (kh, kw, I, O). Everything else is copied as is.
    """
    tensor = np.asarray(tensor)
    if variable_path.endswith("/kernel"):
        return tensor.transpose((2, 3, 1, 0)) if tensor.ndim == 4 else tensor.T
    return tensor


def to_reference_layout(variable_path, array):
    """The inverse of `from_reference_layout`."""
    array = np.asarray(array)
    if variable_path.endswith("/kernel"):
        return array.transpose((3, 2, 0, 1)) if array.ndim == 4 else array.T
    return array


def reference_shape(variable_path, shape):
    """The reference (PyTorch) shape of a Keras variable of `shape` at `variable_path`.

    >>> reference_shape("patch_embed/proj/kernel", (16, 16, 3, 64))
    (64, 3, 16, 16)
    """
    shape = tuple(shape)
    if variable_path.endswith("/kernel"):
        return tuple(shape[i] for i in (3, 2, 0, 1)) if len(shape) == 4 else shape[::-1]
    return shape
