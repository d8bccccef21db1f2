"""Loading weights into ConViT models: Keras `.weights.h5` files, reference checkpoints (timm /
official, `.safetensors` or `.pth`/`.bin`) and `"imagenet"`. A failed load changes nothing."""

import os
import re

import keras
import numpy as np

from keras_convit.weights import imagenet
from keras_convit.weights.architecture import infer_architecture
from keras_convit.weights.checkpoints import (
    GRID_METADATA_KEY,
    detect_format,
    read_keras_weights,
    read_reference_checkpoint,
)
from keras_convit.weights.reference_names import (
    from_reference_layout,
    reference_key,
    reference_shape,
    to_reference_layout,
)
from keras_convit.weights.resampling import resample_position_embedding


def validate_weights_argument(weights, include_top=True, classes=1000, architecture=None):
    """Checks a `weights=` argument before a model is built; raises ValueError if unusable.

    Args:
        weights: None, "imagenet", or the path of a weight file (recognised by its content).
        include_top, classes: the model's head; "imagenet" with a head needs `classes=1000`.
        architecture: dict of the builder's architecture arguments (`hidden_dim`, `num_heads`,
            `depth`, ...); "imagenet" needs one of Ti, S, B exactly.

    Raises:
        ValueError: the argument can never work; ConnectionError: "imagenet" is neither cached
            nor reachable (within seconds).

    >>> validate_weights_argument(None)
    >>> validate_weights_argument("imagenet", include_top=False, classes=10)
    """
    if weights is None:
        return
    if isinstance(weights, str) and weights == "imagenet":
        if include_top and classes != 1000:
            raise ValueError(
                'weights="imagenet" with include_top=True needs classes=1000 (the ImageNet '
                f"classes), got classes={classes!r}; use include_top=False to put your own head "
                "on the pretrained features."
            )
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


def load_weights(model, weights, source_grid_size=None):
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

    Raises:
        ValueError: the file is unreadable, unsafe or does not fit; the model is then unchanged.

    >>> import keras_convit, tempfile, os
    >>> model = keras_convit.ConViT(
    ...     64, 4, depth=2, local_up_to_layer=1, input_shape=(32, 32, 3), classes=3
    ... )
    >>> path = os.path.join(tempfile.mkdtemp(), "ref.safetensors")
    >>> keras_convit.weights.export_reference_weights(model, path)
    >>> load_weights(model, path)
    """
    if isinstance(weights, str) and weights == "imagenet":
        weights = imagenet.fetch_imagenet_weights(_imagenet_variant_of(model))
    path = os.fspath(weights)
    state_dict, file_grid = read_state_dict(path)
    load_reference_state_dict(
        model, state_dict, source_grid_size=source_grid_size or file_grid, source=path
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


def load_reference_state_dict(model, state_dict, source_grid_size=None, source="state_dict"):
    """Assigns a reference state_dict (reference keys, PyTorch layouts) to `model`, all or nothing.

    Every key and shape is checked first; one ValueError lists the missing, unexpected and
    mismatched keys and the model is left unchanged. The classifier (`head.*`) is skipped when
    the model has no head. A `pos_embed` of another grid is resampled bicubically to the model's
    grid (`resample_position_embedding`): fine-tune at 384x384 from 224x224 weights this way.
    GPSA's relative positions are not weights; they always follow the model's own grid.
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

    >>> import keras_convit, numpy as np
    >>> model = keras_convit.ConViT(
    ...     64, 4, depth=2, local_up_to_layer=1, input_shape=(64, 32, 3), classes=3
    ... )
    >>> state = keras_convit.weights.reference_state_dict(model)
    >>> state["pos_embed"] = np.zeros((1, 4, 64), "float32")  # a 2x2 grid, resampled to 4x2
    >>> load_reference_state_dict(model, state)
    """
    arrays = {key: _to_numpy(value) for key, value in state_dict.items()}
    variables = {reference_key(variable.path): variable for variable in model.weights}
    if not any(key.startswith("head.") for key in variables):
        arrays = {
            key: value
            for key, value in arrays.items()
            if not key.startswith(("head.", "head_dist."))
        }
    arrays = _match_distillation_token(arrays, variables)
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
        if tuple(tensor.shape) != expected:
            mismatched.append(f"{key}: file {tuple(tensor.shape)} vs model {expected}")
            continue
        values.append((variable, from_reference_layout(variable.path, tensor)))
    if missing or unexpected or mismatched:
        message = _mismatch_message(model, source, missing, unexpected, mismatched, variables)
        raise ValueError(message)
    for variable, value in values:
        variable.assign(keras.ops.cast(value, variable.dtype))


def _match_distillation_token(arrays, variables):
    """`arrays` with DeiT's distillation token and head added (copies of the class token and
    head) or left out, to match whether the model has them."""
    if "dist_token" in variables and "dist_token" not in arrays and "cls_token" in arrays:
        copies = {"dist_token": "cls_token", "head_dist.weight": "head.weight"}
        copies["head_dist.bias"] = "head.bias"
        return {
            **arrays,
            **{key: arrays[source] for key, source in copies.items() if source in arrays},
        }
    if "dist_token" in arrays and "dist_token" not in variables:
        return {
            key: value
            for key, value in arrays.items()
            if key != "dist_token" and not key.startswith("head_dist.")
        }
    return arrays


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

    def listing(title, entries):
        if entries:
            lines.append(f"{title} ({len(entries)}):")
            lines.extend(f"  {entry}" for entry in entries)

    shapes = {key: reference_shape(v.path, v.shape) for key, v in variables.items()}
    listing("Missing from the file", [f"{key} {shapes[key]}" for key in missing])
    listing("Unexpected in the file", unexpected)
    listing("Mismatched shapes (reference layout)", mismatched)
    only_head = all(entry.startswith("head.") for entry in mismatched)
    if mismatched and only_head and not missing and not unexpected:
        lines.append(
            "Only the classifier differs: build with include_top=False (and add your own head) "
            "to fine-tune on another number of classes."
        )
    return "\n".join(lines)


def parse_grid(text):
    """The grid metadata as a tuple: "14,14" gives (14, 14), None gives None."""
    if not text:
        return None
    return tuple(int(side) for side in text.split(","))
