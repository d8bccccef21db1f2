"""ImageNet normalisation, the preprocessing of the reference checkpoints."""

import keras
import numpy as np

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def imagenet_rescaling(name="preprocessing"):
    """A weightless layer mapping RGB in [0, 255] to (x / 255 - mean) / std, channels last."""
    mean, std = np.array(IMAGENET_MEAN), np.array(IMAGENET_STD)
    return keras.layers.Rescaling(
        scale=(1.0 / (255.0 * std)).tolist(), offset=(-mean / std).tolist(), name=name
    )
