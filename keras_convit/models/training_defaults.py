"""The compile settings a ConViT classifier comes with, so that `fit` works at once."""

import keras

# Reference `no_weight_decay()` names, in Keras variable paths.
NO_WEIGHT_DECAY_PATHS = ("pos_embed/embedding", "cls_token/token")


def no_weight_decay_variables(model):
    """The variables the reference excludes from weight decay.

    Every 1-D variable (biases, LayerNorm scales, GPSA gating parameters) plus the position
    embedding and the class token. `pos_proj`'s kernel is decayed, as in the reference.
    """
    return [
        variable
        for variable in model.trainable_variables
        if len(variable.shape) <= 1 or variable.path.endswith(NO_WEIGHT_DECAY_PATHS)
    ]


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


def compile_classifier(model, classifier_activation):
    """AdamW (lr 1e-3, weight decay 0.05 off the `no_weight_decay_variables`), sparse
    categorical cross-entropy (from logits unless the head ends in a softmax) and accuracy."""
    optimizer = keras.optimizers.AdamW(learning_rate=1e-3, weight_decay=0.05)
    optimizer.exclude_from_weight_decay(var_list=no_weight_decay_variables(model))
    from_logits = classifier_activation in (None, "linear")
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits),
        metrics=["accuracy"],
        jit_compile=default_jit_compile(),
    )
