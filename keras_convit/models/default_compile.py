"""The compile settings a ConViT classifier comes with, so that `fit` works at once."""

import keras

from keras_convit.models.labels import ClassifierAccuracy, ClassifierCrossentropy, outputs_logits
from keras_convit.models.weight_decay import ConViTAdamW

DEFAULT_LEARNING_RATE = 1e-3
DEFAULT_WEIGHT_DECAY = 0.05


def default_jit_compile():
    """The `jit_compile` keras_convit compiles with: Keras' "auto", except on TensorFlow.

    There "auto" turns XLA off on machines without a GPU, and XLA makes a ConViT-Ti training
    step about 1.5x faster on a CPU (benchmarks/README.md). Under a `tf.distribute` strategy it
    stays "auto", which leaves the choice to Keras. JAX always compiles; on PyTorch "auto" is
    eager, since `torch.compile` costs minutes at start-up for little gain (same benchmark).
    """
    if keras.backend.backend() != "tensorflow":
        return "auto"
    import tensorflow as tf  # only reached on the TensorFlow backend, where it is loaded

    return "auto" if tf.distribute.has_strategy() else True


def compile_classifier(model):
    """AdamW (lr 1e-3, weight decay 0.05 off the reference's no-decay variables), cross-entropy
    on integer or one-hot / soft labels (from logits unless the head ends in a softmax) and
    accuracy."""
    model.compile(
        optimizer=ConViTAdamW(
            learning_rate=DEFAULT_LEARNING_RATE, weight_decay=DEFAULT_WEIGHT_DECAY
        ),
        loss=ClassifierCrossentropy(from_logits=outputs_logits(model)),
        metrics=[ClassifierAccuracy()],
        jit_compile=default_jit_compile(),
    )
