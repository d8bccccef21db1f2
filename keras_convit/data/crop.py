"""The random resized crop of Inception and timm, which core Keras lacks: random in training,
resize and centre crop in inference (the evaluation transform of every pipeline and `predict`)."""

import math

import keras

from keras_convit._keras_compat import BaseImagePreprocessingLayer, layer_seed_generator
from keras_convit.presets import IMAGENET_CROP_FRACTION


@keras.saving.register_keras_serializable(package="keras_convit")
class RandomResizedCrop(BaseImagePreprocessingLayer):
    """Inception-style random resized crop in training; resize and centre crop in inference.

    Training (as torchvision/timm `RandomResizedCrop`): a box of `scale` times the image area and
    aspect ratio in `ratio` (log-uniform) is drawn, up to 10 tries, else the whole image clamped to
    `ratio`, and resized (bilinear, half-pixel centres) to `(height, width)`. Inference: the central
    box of the output's aspect ratio covering `crop_fraction` of the shorter side, resized; with
    0.875 it is DeiT's evaluation transform (resize to 256, centre crop 224).

    Input: one image (h, w, c) or a batch (batch, h, w, c) of any size, channels last; a dict with
    "images" (and "labels", passed through) also works. Output: (..., height, width, c), float.
    Safe inside a tf.data pipeline under any backend.

    Args:
        height, width: output size.
        scale: (min, max) share of the image area to crop in training.
        ratio: (min, max) aspect ratio (width / height) of the crop in training.
        crop_fraction: share of the shorter side kept in inference.
        interpolation: "bilinear" or "nearest".
        seed: optional int.

    Example:
    >>> crop = keras_convit.data.RandomResizedCrop(16, 16, seed=0)
    >>> images = np.random.uniform(0, 255, (2, 40, 30, 3))
    >>> tuple(crop(images).shape), tuple(crop(images, training=False).shape)
    ((2, 16, 16, 3), (2, 16, 16, 3))
    """

    def __init__(
        self,
        height,
        width,
        scale=(0.08, 1.0),
        ratio=(3.0 / 4.0, 4.0 / 3.0),
        crop_fraction=IMAGENET_CROP_FRACTION,
        interpolation="bilinear",
        seed=None,
        data_format=None,
        **kwargs,
    ):
        super().__init__(data_format=data_format, **kwargs)
        if self.data_format != "channels_last":
            raise ValueError("RandomResizedCrop supports channels_last images only.")
        if not (0.0 < scale[0] <= scale[1] <= 1.0):
            raise ValueError(f"`scale` must satisfy 0 < min <= max <= 1, got scale={scale!r}.")
        if not (0.0 < ratio[0] <= ratio[1]):
            raise ValueError(f"`ratio` must satisfy 0 < min <= max, got ratio={ratio!r}.")
        if not 0.0 < crop_fraction <= 1.0:
            raise ValueError(f"`crop_fraction` must be in (0, 1], got {crop_fraction!r}.")
        if interpolation not in ("bilinear", "nearest"):
            raise ValueError(
                f'`interpolation` must be "bilinear" or "nearest", got {interpolation!r}.'
            )
        self.height = int(height)
        self.width = int(width)
        self.scale = tuple(float(s) for s in scale)
        self.ratio = tuple(float(r) for r in ratio)
        self.crop_fraction = float(crop_fraction)
        self.interpolation = interpolation
        self.seed = seed
        self.generator = keras.random.SeedGenerator(seed)

    def get_random_transformation(self, data, training=True, seed=None):
        images = data["images"] if isinstance(data, dict) else data
        shape = self.backend.shape(images)
        batch_size = shape[0] if len(shape) == 4 else 1
        image_height = self.backend.cast(shape[-3], "float32")
        image_width = self.backend.cast(shape[-2], "float32")
        if not training:
            return {"boxes": self._center_box(batch_size, image_height, image_width)}
        return {"boxes": self._random_box(batch_size, image_height, image_width, seed)}

    def _center_box(self, batch_size, image_height, image_width):
        np_ = self.backend.numpy
        box_scale = np_.minimum(image_height / self.height, image_width / self.width)
        box_height = self.height * box_scale * self.crop_fraction
        box_width = self.width * box_scale * self.crop_fraction
        box = np_.stack(
            [
                (image_height - box_height) / 2.0,
                (image_width - box_width) / 2.0,
                box_height,
                box_width,
            ]
        )
        return np_.zeros((batch_size, 1), dtype="float32") + box[None, :]

    def _random_box(self, batch_size, image_height, image_width, seed, attempts=10):
        np_, random = self.backend.numpy, self.backend.random
        seed = seed or layer_seed_generator(self)
        area = image_height * image_width
        target_area = area * random.uniform(
            (batch_size, attempts), self.scale[0], self.scale[1], seed=seed
        )
        log_ratio = random.uniform(
            (batch_size, attempts), math.log(self.ratio[0]), math.log(self.ratio[1]), seed=seed
        )
        aspect = np_.exp(log_ratio)
        widths = np_.round(np_.sqrt(target_area * aspect))
        heights = np_.round(np_.sqrt(target_area / aspect))
        fits = (widths >= 1) & (widths <= image_width) & (heights >= 1) & (heights <= image_height)
        # The first attempt that fits, as in torchvision.
        attempt_index = np_.arange(attempts, dtype="int32")[None, :]
        first = np_.min(np_.where(fits, attempt_index, attempts - 1), axis=1)[:, None]
        found = np_.any(fits, axis=1)
        chosen_width = np_.take_along_axis(widths, first, axis=1)[:, 0]
        chosen_height = np_.take_along_axis(heights, first, axis=1)[:, 0]

        # Fallback: the whole image, its aspect ratio clamped into `ratio`, centred.
        image_ratio = image_width / image_height
        fallback_width = np_.where(
            image_ratio > self.ratio[1], np_.round(image_height * self.ratio[1]), image_width
        )
        fallback_height = np_.where(
            image_ratio < self.ratio[0], np_.round(image_width / self.ratio[0]), image_height
        )
        box_width = np_.where(found, chosen_width, fallback_width)
        box_height = np_.where(found, chosen_height, fallback_height)
        offsets = random.uniform((batch_size, 2), 0.0, 1.0, seed=seed)
        top = np_.where(
            found,
            np_.floor(offsets[:, 0] * (image_height - box_height + 1.0)),
            np_.floor((image_height - box_height) / 2.0),
        )
        left = np_.where(
            found,
            np_.floor(offsets[:, 1] * (image_width - box_width + 1.0)),
            np_.floor((image_width - box_width) / 2.0),
        )
        return np_.stack([top, left, box_height, box_width], axis=1)

    def transform_images(self, images, transformation, training=True):
        images = self.backend.cast(images, self.compute_dtype)
        return self._crop_and_resize(images, transformation["boxes"], self.interpolation)

    def transform_segmentation_masks(self, segmentation_masks, transformation, training=True):
        return self._crop_and_resize(segmentation_masks, transformation["boxes"], "nearest")

    def transform_labels(self, labels, transformation, training=True):
        return labels

    def transform_bounding_boxes(self, bounding_boxes, transformation, training=True):
        raise NotImplementedError("RandomResizedCrop does not transform bounding boxes.")

    def _crop_and_resize(self, images, boxes, interpolation):
        """Samples (batch, height, width, c) in boxes (batch, 4): top, left, h, w in pixels."""
        np_ = self.backend.numpy
        shape = self.backend.shape(images)
        batch_size, image_height, image_width, channels = shape[0], shape[1], shape[2], shape[3]
        dtype = "float32"

        def sample_points(start, length, size, limit):
            # Half-pixel centres: output pixel i reads input coordinate start + (i + 0.5) * step
            # - 0.5, as torchvision/PIL resize (align_corners=False).
            centres = (np_.arange(size, dtype=dtype) + 0.5) / size
            points = start[:, None] + centres[None, :] * length[:, None] - 0.5
            return np_.clip(points, 0.0, self.backend.cast(limit, dtype) - 1.0)

        rows = sample_points(boxes[:, 0], boxes[:, 2], self.height, image_height)
        cols = sample_points(boxes[:, 1], boxes[:, 3], self.width, image_width)
        flat = np_.reshape(images, [-1, channels])
        base = np_.arange(batch_size)[:, None, None] * (image_height * image_width)

        def gather(row_index, col_index):
            row_index = self.backend.cast(row_index, "int32")
            col_index = self.backend.cast(col_index, "int32")
            index = base + row_index[:, :, None] * image_width + col_index[:, None, :]
            return np_.take(flat, np_.reshape(index, [-1]), axis=0)

        out_shape = [batch_size, self.height, self.width, channels]
        if interpolation == "nearest":
            return np_.reshape(gather(np_.round(rows), np_.round(cols)), out_shape)

        row_low, col_low = np_.floor(rows), np_.floor(cols)
        row_high = np_.minimum(row_low + 1.0, self.backend.cast(image_height, dtype) - 1.0)
        col_high = np_.minimum(col_low + 1.0, self.backend.cast(image_width, dtype) - 1.0)
        row_weight = np_.reshape(rows - row_low, [-1, self.height, 1, 1])
        col_weight = np_.reshape(cols - col_low, [-1, 1, self.width, 1])
        row_weight = self.backend.cast(row_weight, self.compute_dtype)
        col_weight = self.backend.cast(col_weight, self.compute_dtype)

        def corner(row_index, col_index):
            return np_.reshape(gather(row_index, col_index), out_shape)

        top = corner(row_low, col_low) * (1.0 - col_weight) + corner(row_low, col_high) * col_weight
        bottom = (
            corner(row_high, col_low) * (1.0 - col_weight) + corner(row_high, col_high) * col_weight
        )
        return top * (1.0 - row_weight) + bottom * row_weight

    def compute_output_shape(self, input_shape):
        if isinstance(input_shape, dict):
            return {
                key: self.compute_output_shape(value) if key == "images" else value
                for key, value in input_shape.items()
            }
        return tuple(input_shape[:-3]) + (self.height, self.width, input_shape[-1])

    def get_config(self):
        return {
            **super().get_config(),
            "height": self.height,
            "width": self.width,
            "scale": self.scale,
            "ratio": self.ratio,
            "crop_fraction": self.crop_fraction,
            "interpolation": self.interpolation,
            "seed": self.seed,
        }
