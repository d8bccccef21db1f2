"""Keras' image preprocessing internals: the augmentation base class, its seeds, and
RandAugment's equalization."""

import contextlib

import keras

# Core Keras has no RandomResizedCrop. Its image augmentation layers share this base class, which
# makes a layer safe inside tf.data under every backend (it switches to TensorFlow ops there) and
# handles single images, batches and {"images", "labels"} dicts. It is not exported (3.15.1).
from keras.src.layers.preprocessing.image_preprocessing.base_image_preprocessing_layer import (  # noqa: E501
    BaseImagePreprocessingLayer,  # noqa: F401 -- the package exports it
)

from keras_convit._keras_compat.layer_tree import sublayers


def layer_seed_generator(layer):
    """The seed generator of a `BaseImagePreprocessingLayer` for the ops in use.

    Inside tf.data the layer runs TensorFlow ops under any backend, and needs a generator of
    that backend; Keras' own random layers ask `_get_seed_generator(self.backend._backend)`,
    which has no public form (3.15.1).
    """
    return layer._get_seed_generator(layer.backend._backend)


class _StatelessSeeds(keras.random.SeedGenerator):
    """Hands out `tf.random.experimental.stateless_fold_in(seed, k)` for k = 0, 1, ...: a new
    stateless seed per draw, derived from one (2,) seed tensor and Python's count of draws.

    Keras' random ops take a seed only as an int or a `SeedGenerator` (`draw_seed`, 3.15.1),
    and the generator's state is a variable: drawn from parallel tf.data maps, its values
    depend on thread timing. This subclass keeps no state but the draw count of one trace, so
    its `__init__` skips the variable.
    """

    def __init__(self, seed):  # noqa: D107 -- no super().__init__(): no state variable
        self.seed_tensor = seed
        self.draws = 0

    def next(self, ordered=True):
        import tensorflow as tf

        self.draws += 1
        return tf.random.experimental.stateless_fold_in(self.seed_tensor, self.draws)


@contextlib.contextmanager
def drawing_from(layer, seed):
    """Within the block, every random draw of `layer` and of its sublayers comes from the (2,)
    integer tensor `seed` (a new stateless seed per draw): a tf.data map gives each example its
    own seed, so the augmentation repeats exactly whatever the threads do.

    Keras' image layers draw from `self._get_seed_generator(backend)`, and RandAugment hands
    its own to its sublayers, ignoring a `seed=` argument (3.15.1): shadowing that private
    method on the instances is the one way to reach every draw.
    """
    seeds = _StatelessSeeds(seed)
    layers = [layer, *sublayers(layer)]
    for each in layers:
        object.__setattr__(each, "_get_seed_generator", lambda backend=None: seeds)
    try:
        yield
    finally:
        for each in layers:
            object.__delattr__(each, "_get_seed_generator")


class HistogramEqualization(keras.layers.Equalization):
    """Keras' Equalization, with its histogram chosen by the ops in use, not the backend.

    Keras 3.15.1 picks a 256-step Python loop (for JAX jit) whenever the global backend is JAX,
    even inside tf.data where TensorFlow ops run: that made RandAugment about 10x slower under
    JAX than under the other backends. TensorFlow ops have a bincount. Overrides the private
    `_custom_histogram_fixed_width` (3.15.1).
    """

    def _custom_histogram_fixed_width(self, values, value_range, nbins):
        if self.backend.name == "jax":
            return super()._custom_histogram_fixed_width(values, value_range, nbins)
        values = self.backend.cast(values, "float32")
        low, high = value_range
        indices = self.backend.cast((values - low) * (nbins - 1) / (high - low), "int32")
        indices = self.backend.numpy.clip(indices, 0, nbins - 1)
        return self.backend.numpy.bincount(
            self.backend.numpy.reshape(indices, [-1]), minlength=nbins
        )


def with_fast_equalization(rand_augment):
    """`rand_augment` (a `keras.layers.RandAugment`) with `HistogramEqualization` swapped in.

    RandAugment draws its operations by the attribute names in its private `_AUGMENT_LAYERS`
    list, "equalization" among them (3.15.1); replacing that attribute is the only way in.
    """
    rand_augment.equalization = HistogramEqualization(value_range=rand_augment.value_range)
    return rand_augment
