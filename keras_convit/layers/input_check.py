"""The model's first layer: refuses images of the wrong shape and makes integer images float."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_convit")
class ImageInputCheck(keras.layers.Layer):
    """Checks that images are (batch, *image_shape) and casts integer images to float, values
    unchanged (0-255 stays 0-255: no rescaling).

    A wrong shape raises a ValueError naming both shapes when the shape is known at trace time:
    always on JAX and PyTorch, and on TensorFlow unless a tf.data pipeline or a `tf.function`
    signature leaves a side as None. In that one case the sides are checked when the graph runs:
    a mismatch stops it with an InvalidArgumentError naming both shapes, where the patch
    embedding's reshape would silently turn 64x64 images into 4 times as many 32x32 rows.

    Input: (batch, height, width, channels), any real dtype. Output: the same values in the
    layer's compute dtype (float32 by default), of static shape (batch, *image_shape).

    Args:
        image_shape: (height, width, channels) the model takes.

    Example:
    >>> check = keras_convit.layers.ImageInputCheck((4, 4, 3))
    >>> images = check(np.full((2, 4, 4, 3), 255, "uint8"))
    >>> keras.backend.standardize_dtype(images.dtype), float(keras.ops.max(images))
    ('float32', 255.0)
    >>> check(np.zeros((2, 4, 4, 1), "float32"))
    Traceback (most recent call last):
    ...
    ValueError: ...(height, width, channels) = (4, 4, 3)...: 1 channel instead of 3...
    """

    def __init__(self, image_shape, **kwargs):
        super().__init__(**kwargs)
        if not (
            isinstance(image_shape, (tuple, list))
            and len(image_shape) == 3
            and all(isinstance(side, int) and side > 0 for side in image_shape)
            and not any(isinstance(side, bool) for side in image_shape)
        ):
            raise ValueError(
                "`image_shape` must be a (height, width, channels) tuple of positive integers, "
                f"got image_shape={image_shape!r}."
            )
        self.image_shape = tuple(image_shape)

    def call(self, images):
        self._check_static_shape(images.shape)
        if not keras.backend.is_float_dtype(images.dtype):
            images = ops.cast(images, self.compute_dtype)
        if any(side is None for side in images.shape[1:]):
            # Only a TensorFlow graph traced without the image size gets here. Concatenation
            # needs equal sides (no broadcast of a side of 1, unlike `broadcast_to`), also under
            # XLA: joining an empty batch of the right shape checks the sides when the graph
            # runs, and gives the output its static shape.
            empty = ops.zeros((0, *self.image_shape), dtype=images.dtype)
            images = ops.concatenate([empty, images], axis=0)
        return images

    def _check_static_shape(self, shape):
        shape = tuple(shape)
        sides = shape[1:]
        if len(sides) == 3 and all(
            side is None or side == expected
            for side, expected in zip(sides, self.image_shape, strict=True)
        ):
            return
        message = (
            f"Expected images of shape (height, width, channels) = {self.image_shape}, got a "
            f"batch of shape {shape}"
        )
        if len(sides) == 3 and sides[:2] == self.image_shape[:2] and sides[2] == 1:
            message += (
                f": 1 channel instead of {self.image_shape[2]} (convert grayscale images to RGB "
                "first)"
            )
        elif len(sides) == 3 and sides[2] in (None, self.image_shape[2]):
            message += " (resize or crop the images to the model's height and width)"
        raise ValueError(message + ".")

    def compute_output_shape(self, input_shape):
        self._check_static_shape(input_shape)
        return (input_shape[0], *self.image_shape)

    def get_config(self):
        return {**super().get_config(), "image_shape": self.image_shape}
