"""Rematerialization (gradient checkpointing) of keras_convit's layers under `keras.RematScope`,
the same on every backend and with the same results as without it.

Keras 3.15.1 rematerializes a layer by wrapping its whole `call` in the backend's checkpoint
(`tf.recompute_grad`, `jax.checkpoint`, `torch.utils.checkpoint`), which fails on our blocks
in two ways: it hands the Python keyword arguments (`training=True`) to `jax.checkpoint`, which
traces them (a bool becomes an array: "Attempted boolean conversion"), and to TensorFlow's
`custom_gradient`, which refuses keywords outside eager execution; and the recomputation in the
backward pass draws its random numbers again (drop path, dropout) from seed generators that the
forward pass has already advanced: other masks than the forward's (wrong gradients) and every
generator advanced twice a step. Here the keyword arguments are bound outside the checkpoint,
and the checkpointed function sets the layer's random state (its variables that are not weights:
the seed generators' states) to its value from before the call, and returns the state it ends
in, which is assigned outside: the recomputation starts from the same state as the forward pass,
and the state advances once.
"""

import keras


def rematerialized(layer, layer_call):
    """`layer_call(inputs, **kwargs)` for `layer`, recomputed in the backward pass instead of
    keeping its intermediate tensors (only in training: inference keeps nothing anyway).

    Example (what a `keras.RematScope` naming the block gives):
    >>> with keras.RematScope(mode="list_of_layers", layer_names=["block"]):
    ...     block = keras_convit.layers.TransformerBlock(32, 4, drop_path_rate=0.1, name="block")
    >>> x = np.random.rand(2, 5, 32).astype("float32")
    >>> tuple(block(x, training=True).shape)
    (2, 5, 32)
    """

    def call(inputs, *args, **kwargs):
        if not kwargs.get("training"):
            return layer_call(inputs, *args, **kwargs)
        weights = {id(weight) for weight in layer.weights}
        state = [v for v in layer.variables if id(v) not in weights]

        # A copy: PyTorch assigns in place, and the recomputation needs the value from before.
        # Closed over, not an argument: TensorFlow would watch the integers and warn.
        start = [keras.ops.copy(keras.ops.convert_to_tensor(variable)) for variable in state]

        def forward(inputs):
            for variable, value in zip(state, start, strict=True):
                variable.assign(value)
            outputs = layer_call(inputs, *args, **kwargs)
            return outputs, [keras.ops.convert_to_tensor(variable) for variable in state]

        outputs, end = keras.remat(forward)(inputs)
        for variable, value in zip(state, end, strict=True):
            variable.assign(value)
        return outputs

    return call
