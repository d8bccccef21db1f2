import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_convit")
class DropPath(keras.layers.Layer):
    """Stochastic depth: drops the whole residual branch per sample (Huang et al. 2016).

    Surviving samples are scaled by 1 / (1 - rate), as in timm, so inference is the identity.

    Args:
        rate: float in [0, 1), the probability of dropping a sample's branch.
        seed: optional int for the random generator.

    Example:
    >>> layer = keras_convit.layers.DropPath(0.5, seed=0)
    >>> tuple(layer(np.ones((2, 4, 8)), training=True).shape)
    (2, 4, 8)
    >>> bool(np.all(keras.ops.convert_to_numpy(layer(np.ones((2, 4, 8)))) == 1.0))
    True
    """

    def __init__(self, rate=0.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"DropPath `rate` must be in [0, 1), got rate={rate!r}.")
        self.rate = rate
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed) if rate > 0 else None
        self.supports_masking = True

    def call(self, inputs, training=None):
        if not training or self.rate == 0.0:
            return inputs
        keep_prob = 1.0 - self.rate
        shape = (ops.shape(inputs)[0],) + (1,) * (len(inputs.shape) - 1)
        keep = keras.random.uniform(shape, seed=self.seed_generator) < keep_prob
        return inputs * ops.cast(keep, inputs.dtype) / keep_prob

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}
