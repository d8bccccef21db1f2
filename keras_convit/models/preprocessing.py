"""The normalisation inside the models (a preset's mean and std: ImageNet's for the reference
checkpoints) and decoding of ImageNet-1k predictions."""

import functools
import json
import os

import keras
import numpy as np

from keras_convit.presets import IMAGENET_MEAN, IMAGENET_STD

_CLASSES_FILE = os.path.join(os.path.dirname(__file__), "imagenet_classes.json")


def scale_and_offset(mean, std):
    """(scale, offset) lists with x * scale + offset = (x / 255 - mean) / std: one multiply-add,
    the same arithmetic inside and outside the model."""
    mean, std = np.asarray(mean, "float64"), np.asarray(std, "float64")
    if mean.shape != std.shape or mean.ndim != 1 or np.any(std <= 0):
        raise ValueError(
            f"`mean` and `std` must be per-channel sequences of one length, `std` > 0; got "
            f"mean={mean.tolist()}, std={std.tolist()}."
        )
    return (1.0 / (255.0 * std)).tolist(), (-mean / std).tolist()


def normalization(mean=IMAGENET_MEAN, std=IMAGENET_STD, name="preprocessing", dtype=None):
    """A weightless layer mapping images in [0, 255] to (x / 255 - mean) / std, channels last."""
    scale, offset = scale_and_offset(mean, std)
    return keras.layers.Rescaling(scale=scale, offset=offset, dtype=dtype, name=name)


def preprocess_input(x, mean=IMAGENET_MEAN, std=IMAGENET_STD):
    """Normalises images in [0, 255] as the models do inside: (x / 255 - mean) / std, with a
    preset's `mean` and `std` (default ImageNet's, which every preset uses).

    Only for models built with `include_preprocessing=False`; by default the models do this
    themselves. Channels last.

    Args:
        x: images (..., height, width, 3), RGB in [0, 255]: a numpy array or a backend tensor.
        mean, std: per-channel statistics in [0, 1] units (`keras_convit.PRESETS[name].mean`).

    Returns:
        float32 images of the same shape (a numpy array for numpy input).

    >>> import numpy as np
    >>> preprocess_input(np.full((1, 2, 2, 3), 255.0))[0, 0, 0].round(4)
    array([2.2489, 2.4286, 2.64  ], dtype=float32)
    """
    scale, offset = scale_and_offset(mean, std)
    if isinstance(x, (np.ndarray, list, tuple, int, float)):
        x = np.asarray(x, dtype=np.float32)
        return x * np.float32(scale) + np.float32(offset)
    x = keras.ops.cast(x, "float32")
    return x * keras.ops.convert_to_tensor(scale, "float32") + keras.ops.convert_to_tensor(
        offset, "float32"
    )


@functools.cache
def imagenet_classes():
    """The 1000 ImageNet-1k classes in model output order: ((wnid, description), ...).

    >>> imagenet_classes()[0]
    ('n01440764', 'tench, Tinca tinca')
    """
    with open(_CLASSES_FILE, encoding="utf-8") as file:
        return tuple(tuple(entry) for entry in json.load(file)["classes"])


def decode_predictions(preds, top=5):
    """The `top` ImageNet classes of each prediction, best first, offline.

    Args:
        preds: (batch, 1000) scores (probabilities or logits), numpy array or tensor.
        top: how many classes to return per image.

    Returns:
        a list (one per image) of lists of `(wnid, name, score)` tuples, `wnid` the WordNet id
        (e.g. "n01440764"), `name` the class's first lemma ("tench").

    >>> import numpy as np
    >>> scores = np.zeros((1, 1000), "float32"); scores[0, 1] = 0.5
    >>> decode_predictions(scores, top=1)
    [[('n01443537', 'goldfish', 0.5)]]
    """
    preds = np.asarray(keras.ops.convert_to_numpy(preds))
    if preds.ndim != 2 or preds.shape[1] != 1000:
        raise ValueError(
            "`decode_predictions` expects ImageNet predictions of shape (batch, 1000), got "
            f"shape {preds.shape}."
        )
    classes = imagenet_classes()
    decoded = []
    for row in preds:
        best = np.argsort(-row, kind="stable")[:top]
        decoded.append([(classes[i][0], classes[i][1].split(",")[0], float(row[i])) for i in best])
    return decoded
