"""Test-time masking: a ConViT run with its absolute position embedding masked (paper Table 5)
or with sigma(lambda) forced to 1 (content masked) or 0 (position masked) in its first k GPSA
blocks (paper Table 6). Only the computation changes; the stored weights are never written."""

import keras
import numpy as np

from keras_convit.analysis.forward import forced_gpsa_blocks, model_layers, run_model


class _MaskedConViT(keras.Model):
    """A ConViT's layers (shared, not copied) run by `forward_layers` with a fixed masking."""

    def __init__(self, convit, masking, **kwargs):
        super().__init__(**kwargs)
        self.convit = convit
        self.masking = masking
        self.built = True

    def call(self, inputs, training=None):
        return run_model(self.convit, inputs, **self.masking)


def masked_model(model, gate_override=None, override_layers=None, mask_position_embedding=False):
    """A `keras.Model` for inference that shares `model`'s layers and weights but masks them.

    Use it as any model: `predict`, or `compile` then `evaluate`. It always runs in inference
    mode; training it would train `model` itself.

    Args:
        model: a ConViT functional model.
        gate_override: None or a float in [0, 1] forced as sigma(lambda): 1 masks the content
            attention, 0 the positional attention (Table 6).
        override_layers: int k, force the first k GPSA blocks only; None: all of them.
        mask_position_embedding: bool, drop the learned absolute position embedding (Table 5).
            A model without one is unchanged.

    Example:
    >>> from keras_convit import analysis
    >>> model = keras_convit.ConViT(hidden_dim=32, num_heads=4, depth=2, local_up_to_layer=1,
    ...                             patch_size=8, input_shape=(32, 32, 3), classes=10)
    >>> masked = analysis.masked_model(model, gate_override=1.0, override_layers=1)
    >>> tuple(masked(np.zeros((2, 32, 32, 3))).shape)
    (2, 10)
    """
    masking = dict(
        gate_override=gate_override,
        override_layers=override_layers,
        mask_position_embedding=bool(mask_position_embedding),
    )
    model_layers(model)
    forced_gpsa_blocks(model, gate_override, override_layers)
    return _MaskedConViT(model, masking, name=f"{model.name}_masked")


def predict_masked(model, images, batch_size=32, **masking):
    """`model`'s predictions on `images` under a masking (keywords of `masked_model`), as a numpy
    array.

    Example:
    >>> from keras_convit import analysis
    >>> model = keras_convit.ConViT(hidden_dim=32, num_heads=4, depth=2, local_up_to_layer=1,
    ...                             patch_size=8, input_shape=(32, 32, 3), classes=10)
    >>> analysis.predict_masked(model, np.zeros((3, 32, 32, 3)), mask_position_embedding=True).shape
    (3, 10)
    """
    return masked_model(model, **masking).predict(images, batch_size=batch_size, verbose=0)


def masked_accuracy(model, images, labels, batch_size=32, **masking):
    """Top-1 accuracy of `model` on (`images`, `labels`) under a masking (keywords of
    `masked_model`): one cell of the paper's Tables 5 and 6. Labels are integers or one-hot /
    soft (batch, classes), as `keras_convit.data` pipelines give (the top label counts).

    Example:
    >>> from keras_convit import analysis
    >>> model = keras_convit.ConViT(hidden_dim=32, num_heads=4, depth=2, local_up_to_layer=1,
    ...                             patch_size=8, input_shape=(32, 32, 3), classes=10)
    >>> accuracy = analysis.masked_accuracy(model, np.zeros((4, 32, 32, 3)), np.zeros(4, int),
    ...                                     gate_override=0.0)
    >>> 0.0 <= accuracy <= 1.0
    True
    """
    predictions = predict_masked(model, images, batch_size=batch_size, **masking)
    labels = np.asarray(labels)
    if labels.ndim == 2 and labels.shape[-1] > 1:
        labels = np.argmax(labels, axis=-1)
    labels = labels.reshape(-1)
    return float(np.mean(np.argmax(predictions, axis=-1) == labels))
