"""Loading weights into ConViT models: Keras `.weights.h5` files, reference checkpoints (timm /
official, `.safetensors` or `.pth`/`.bin`) and `"imagenet"`. A failed load changes nothing.

What a load adapts is reported on the `keras_convit.weights.loading` logger, one line each: a new
head (WARNING: the model's predictions are not the file's until the head is trained) and RGB
weights adapted to another channel count (INFO, as timm's `adapt_input_conv` reports it)."""

import logging
import os
import re

import keras
import numpy as np

from keras_convit.weights import imagenet
from keras_convit.weights.architecture import infer_architecture
from keras_convit.weights.channels import adapt_input_conv
from keras_convit.weights.checkpoints import (
    GRID_METADATA_KEY,
    detect_format,
    read_keras_weights,
    read_reference_checkpoint,
    require_finite,
)
from keras_convit.weights.heads import fit_classifiers, new_head_message
from keras_convit.weights.reference_names import (
    from_reference_layout,
    reference_key,
    reference_shape,
    to_reference_layout,
)
from keras_convit.weights.resampling import resample_position_embedding

logger = logging.getLogger(__name__)
PATCH_KERNEL = "patch_embed.proj.weight"
MISMATCHES_LISTED = 3  # per kind, in a load's error


def validate_weights_argument(weights, architecture=None):
    """Checks a `weights=` argument before a model is built; raises ValueError if unusable.

    Args:
        weights: None, "imagenet", or the path of a weight file (recognised by its content).
            Any head fits: a class count other than the file's gets a new head (`load_weights`).
        architecture: dict of the builder's architecture arguments (`hidden_dim`, `num_heads`,
            `depth`, ...); "imagenet" needs one of Ti, S, B exactly.

    Raises:
        ValueError: the argument can never work; ConnectionError: "imagenet" is neither cached
            nor reachable (within seconds).

    >>> validate_weights_argument(None)
    >>> validate_weights_argument("imagenet")
    """
    if weights is None:
        return
    if isinstance(weights, str) and weights == "imagenet":
        if architecture is not None:
            imagenet.check_imagenet_available(imagenet.imagenet_variant(**architecture))
        return
    if isinstance(weights, (str, os.PathLike)) and os.path.isfile(weights):
        detect_format(weights)
        return
    raise ValueError(
        '`weights` must be None (random initialisation), "imagenet" (ConViT-Ti, S, B), or the '
        "path to an existing weights file: Keras (.weights.h5) or a timm / official checkpoint "
        f"(.safetensors, .pth, .bin); got weights={weights!r}."
    )


def load_weights(model, weights, source_grid_size=None, new_head=False):
    """Loads `weights` into a built ConViT `model`, all or nothing.

    Args:
        model: a model from `keras_convit.ConViT` or a variant (layer names matter, not classes).
        weights: "imagenet", or the path of a Keras `.weights.h5` file or a reference checkpoint
            (`.safetensors`, `.pth`, `.bin`, also wrapped under "model"), told apart by content.
            Weights of another input resolution have their position embedding resampled to the
            model's grid (see `load_reference_state_dict`).
        source_grid_size: (height, width) of the file's patch grid, needed only to resample a
            non-square grid from a file that does not record it (files from
            `export_reference_weights` do).
        new_head: True: a classifier of another class count than the file's (or one the file
            lacks) keeps its fresh initialisation, every other weight is loaded, and one log
            line says so (the builders' `weights=..., classes=N` do this); False: that is a
            mismatch. RGB weights adapt to the model's channel count either way
            (`keras_convit.weights.adapt_input_conv`).

    Raises:
        ValueError: the file is unreadable, unsafe or does not fit; the model is then unchanged.

    >>> import keras_convit, tempfile, os
    >>> model = keras_convit.ConViT(
    ...     64, 4, depth=2, local_up_to_layer=1, input_shape=(32, 32, 3), classes=3
    ... )
    >>> path = os.path.join(tempfile.mkdtemp(), "ref.safetensors")
    >>> keras_convit.weights.export_reference_weights(model, path)
    >>> load_weights(model, path)
    >>> five = keras_convit.ConViT(
    ...     64, 4, depth=2, local_up_to_layer=1, input_shape=(32, 32, 1), classes=5
    ... )
    >>> load_weights(five, path, new_head=True)  # 1 channel, 5 classes: a new head, one log line
    """
    if isinstance(weights, str) and weights == "imagenet":
        weights = imagenet.fetch_imagenet_weights(_imagenet_variant_of(model))
    path = os.fspath(weights)
    state_dict, file_grid = read_state_dict(path)
    load_reference_state_dict(
        model,
        state_dict,
        source_grid_size=source_grid_size or file_grid,
        source=path,
        new_head=new_head,
    )


def read_state_dict(path):
    """Any supported weight file as `(reference state_dict, patch grid or None)`.

    A Keras `.weights.h5` file is mapped to the reference keys and layouts, so every format
    goes through the same checks and the same resampling.
    """
    if detect_format(path) == "keras":
        arrays = read_keras_weights(path)
        state_dict = {
            reference_key(name): to_reference_layout(name, value) for name, value in arrays.items()
        }
        return state_dict, None
    state_dict, metadata = read_reference_checkpoint(path)
    return state_dict, parse_grid(metadata.get(GRID_METADATA_KEY))


def _imagenet_variant_of(model):
    shapes = {reference_key(v.path): reference_shape(v.path, v.shape) for v in model.weights}
    try:
        architecture = infer_architecture(
            shapes, grid_size=model.get_layer("patch_embed").grid_size
        )
    except ValueError as error:
        raise ValueError(f'weights="imagenet" need a ConViT model: {error}') from error
    return imagenet.imagenet_variant(**architecture)


def load_reference_state_dict(
    model, state_dict, source_grid_size=None, source="state_dict", new_head=False
):
    """Assigns a reference state_dict (reference keys, PyTorch layouts) to `model`, all or nothing.

    A tensor holding NaN or infinity is refused (the first one is named). Every key and shape
    is checked first; one ValueError lists the missing, unexpected and
    mismatched keys and the model is left unchanged. The classifier (`head.*`) is skipped when
    the model has no head. A `pos_embed` of another grid is resampled bicubically to the model's
    grid (`resample_position_embedding`): fine-tune at 384x384 from 224x224 weights this way.
    GPSA's relative positions are not weights; they always follow the model's own grid.
    RGB weights load into a model of another channel count through timm's rule
    (`adapt_input_conv`: 1 channel sums the filters, C channels repeat them and scale by 3/C).
    DeiT's distillation token fits either way: a checkpoint without one loads into a model
    with one (the token and `head_dist` start as copies of the class token and head: a start
    for distillation, whose predictions differ a little from the checkpoint's, since the patch
    tokens see the class token twice), and a checkpoint with one loads into a model without
    (its distillation token and head are left out).

    Args:
        model: a ConViT model.
        state_dict: {reference key: array-like} (numpy arrays or torch tensors).
        source_grid_size: (height, width) of the checkpoint's patch grid; None assumes square.
        source: a name for the checkpoint in error messages.
        new_head: True: a classifier (`head`, `head_dist`) whose class count differs from the
            checkpoint's, or that the checkpoint lacks, is not loaded but keeps its fresh
            initialisation, and one log line (WARNING) names both class counts; False: that is
            a mismatch like any other.

    >>> import keras_convit, numpy as np
    >>> model = keras_convit.ConViT(
    ...     64, 4, depth=2, local_up_to_layer=1, input_shape=(64, 32, 3), classes=3
    ... )
    >>> state = keras_convit.weights.reference_state_dict(model)
    >>> state["pos_embed"] = np.zeros((1, 4, 64), "float32")  # a 2x2 grid, resampled to 4x2
    >>> load_reference_state_dict(model, state)
    """
    arrays = {key: _to_numpy(value) for key, value in state_dict.items()}
    require_finite(arrays, source)
    variables = {reference_key(variable.path): variable for variable in model.weights}
    arrays, variables, new_heads = fit_classifiers(arrays, variables, new_head)
    adapted_channels = None
    missing = [key for key in variables if key not in arrays]
    unexpected = [
        f"{key} {tuple(arrays[key].shape)}"
        for key in sorted((key for key in arrays if key not in variables), key=_natural_order)
    ]
    mismatched, values = [], []
    for key, variable in variables.items():
        if key not in arrays:
            continue
        tensor = arrays[key]
        expected = reference_shape(variable.path, variable.shape)
        if key == "pos_embed" and tensor.shape != expected and _same_width(tensor.shape, expected):
            try:
                grid = tuple(model.get_layer("patch_embed").grid_size)
                tensor = resample_position_embedding(tensor, grid, source_grid_size)
            except ValueError as error:
                mismatched.append(f"{key}: file {tensor.shape} vs model {expected} ({error})")
                continue
        if (
            key == PATCH_KERNEL
            and tensor.shape != expected
            and _other_channels(tensor.shape, expected)
        ):
            try:
                adapted = adapt_input_conv(tensor, expected[1])
                tensor, adapted_channels = adapted, (tensor.shape[1], expected[1])
            except ValueError as error:
                mismatched.append(f"{key}: file {tensor.shape} vs model {expected} ({error})")
                continue
        if tuple(tensor.shape) != expected:
            mismatched.append(f"{key}: file {tuple(tensor.shape)} vs model {expected}")
            continue
        values.append((variable, from_reference_layout(variable.path, tensor)))
    if missing or unexpected or mismatched:
        message = _mismatch_message(model, source, missing, unexpected, mismatched, variables)
        raise ValueError(message)
    for variable, value in values:
        variable.assign(keras.ops.cast(value, variable.dtype))
    if adapted_channels:
        channels = adapted_channels[1]
        logger.info(
            "Adapted %s of %r from %d to %d channels for %r (timm's adapt_input_conv: %s).",
            PATCH_KERNEL, source, *adapted_channels, model.name,
            "the RGB filters summed" if channels == 1
            else f"the RGB filters repeated, scaled by 3/{channels}",
        )  # fmt: skip
    if new_heads:
        logger.warning(new_head_message(model.name, source, new_heads))


def _other_channels(file_shape, model_shape):
    """Whether two patch-embedding kernels differ only in their input channels."""
    file_shape, model_shape = tuple(file_shape), tuple(model_shape)
    return (
        len(file_shape) == 4
        and file_shape[:1] + file_shape[2:] == model_shape[:1] + model_shape[2:]
    )


def _to_numpy(value):
    if hasattr(value, "detach"):
        value = value.detach().cpu().float().numpy()
    return np.asarray(value)


def _same_width(file_shape, model_shape):
    return len(file_shape) == 3 and file_shape[0] == 1 and file_shape[2] == model_shape[2]


def _natural_order(key):
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", key)]


def _mismatch_message(model, source, missing, unexpected, mismatched, variables):
    lines = [
        f"Cannot load weights={source!r} into {model.name!r} with input shape "
        f"{tuple(model.input_shape[1:])}: the file does not fit (check the channel count and "
        "the architecture); the model is unchanged."
    ]

    def listing(title, entries):  # the first few: a whole other architecture lists hundreds
        if entries:
            lines.append(f"{title} ({len(entries)}):")
            lines.extend(f"  {entry}" for entry in entries[:MISMATCHES_LISTED])
            if len(entries) > MISMATCHES_LISTED:
                lines.append(f"  ... and {len(entries) - MISMATCHES_LISTED} more")

    shapes = {key: reference_shape(v.path, v.shape) for key, v in variables.items()}
    listing("Missing from the file", [f"{key} {shapes[key]}" for key in missing])
    listing("Unexpected in the file", unexpected)
    listing("Mismatched shapes (reference layout)", mismatched)
    only_head = all(entry.startswith(("head.", "head_dist.")) for entry in mismatched)
    if mismatched and only_head and not missing and not unexpected:
        lines.append(
            "Only the classifier differs: load with new_head=True (the builders' weights=..., "
            "classes=N do) to keep this model's new head, or build with include_top=False and "
            "add your own."
        )
    return "\n".join(lines)


def parse_grid(text):
    """The grid metadata as a tuple: "14,14" gives (14, 14), None gives None."""
    if not text:
        return None
    return tuple(int(side) for side in text.split(","))
