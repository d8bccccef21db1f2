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


def compile_portably(model, jit_compile=None, steps_per_execution=1, **arguments):
    """`model.compile(**arguments)` with `jit_compile` (default: `default_jit_compile()`) and
    `steps_per_execution` for this process, but saved in the model's compile config as None and
    1: Keras then resolves `jit_compile` when the model runs, by the rule of the backend that
    loaded the `.keras` file, and a file trained with several steps per call still loads on
    PyTorch (whose trainer refuses more than one, even to predict).

    Keras 3.15 stores the `jit_compile` that `compile` resolved ("auto" becomes True on JAX),
    so a file saved on JAX loaded on PyTorch ran under `torch.compile` (62 s for its first
    `predict`), and one saved on PyTorch ran eagerly on JAX (15x slower). A None in the config
    is resolved lazily, as "auto", on every load and every re-save. On TensorFlow that is
    Keras' rule (XLA only with a GPU), not `default_jit_compile`'s (XLA on CPUs too).
    """
    model.compile(**arguments, jit_compile=None)
    jit_compile = default_jit_compile() if jit_compile is None else jit_compile
    if jit_compile != "auto":
        model.jit_compile = jit_compile  # this process only; the config keeps None
    model.steps_per_execution = steps_per_execution  # likewise; the config keeps 1


def compile_classifier(model):
    """AdamW (lr 1e-3, weight decay 0.05 off the reference's no-decay variables), cross-entropy
    on integer or one-hot / soft labels (from logits unless the head ends in a softmax) and
    accuracy."""
    compile_portably(
        model,
        optimizer=ConViTAdamW(
            learning_rate=DEFAULT_LEARNING_RATE, weight_decay=DEFAULT_WEIGHT_DECAY
        ),
        loss=ClassifierCrossentropy(from_logits=outputs_logits(model)),
        metrics=[ClassifierAccuracy()],
    )
