import keras

from keras_convit.layers.composite import CompositeLayer
from keras_convit.layers.initializers import linear_kernel_initializer


@keras.saving.register_keras_serializable(package="keras_convit")
class DistillationHeads(CompositeLayer):
    """DeiT's two classifiers (Touvron et al. 2021, section 5): `head` on the class token
    (index 0) and `head_dist` on the distillation token (index 1); the output is the
    activation of their averaged logits, DeiT's inference.

    Training reads both logits through `logits(tokens)`: the class head learns the labels,
    the distillation head the teacher's (`keras_convit.training.HardDistillation`).

    Args:
        classes: int, number of classes of each head.
        activation: applied to the averaged logits ("softmax", or None for logits).

    Call arguments:
        inputs: (batch, T, C) normed tokens, the class token first, the distillation token
            second.

    Returns:
        (batch, classes).

    Example:
    >>> heads = keras_convit.layers.DistillationHeads(10)
    >>> tokens = np.random.rand(2, 6, 32).astype("float32")
    >>> class_logits, distillation_logits = heads.logits(tokens)
    >>> tuple(heads(tokens).shape), tuple(distillation_logits.shape)
    ((2, 10), (2, 10))
    """

    def __init__(self, classes, activation="softmax", **kwargs):
        super().__init__(**kwargs)
        self.classes = classes
        self.activation = keras.activations.get(activation)

    def build(self, input_shape):
        token_shape = (input_shape[0], input_shape[-1])
        for name in ("head", "head_dist"):
            head = keras.layers.Dense(
                self.classes,
                kernel_initializer=linear_kernel_initializer(),
                dtype=self.sublayer_dtype(name),
                name=name,
            )
            head.build(token_shape)
            setattr(self, name, head)

    def logits(self, inputs):
        """(class logits, distillation logits), each (batch, classes)."""
        if not self.built:
            self.build(tuple(inputs.shape))
        return self.head(inputs[:, 0]), self.head_dist(inputs[:, 1])

    def call(self, inputs):
        class_logits, distillation_logits = self.logits(inputs)
        return self.activation((class_logits + distillation_logits) / 2)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.classes)

    def get_config(self):
        return {
            **super().get_config(),
            "classes": self.classes,
            "activation": keras.activations.serialize(self.activation),
        }
