import keras

from keras_convit._keras_compat import sublayers
from keras_convit.layers.remat import rematerialized


class CompositeLayer(keras.layers.Layer):
    """Base of the layers that create their sublayers in `build()`, whose quantized sublayers
    survive `get_config` / `from_config` and `.keras` files, and that rematerialize correctly
    under a `keras.RematScope` (`rematerialized_call`).

    `model.quantize(mode)` quantizes the leaf layers (the `Dense` sublayers) and leaves this
    layer's own policy float, so the constructor argument `dtype` alone would rebuild them
    float. When a sublayer is quantized, `get_config()` therefore returns as `dtype` a
    `keras.dtype_policies.DTypePolicyMap` (as keras-hub's backbones do): this layer's own policy
    as the default, and each quantized sublayer's policy under its path (`blocks_0/attn/qk`).
    `get_config()` still holds only constructor arguments, and is unchanged for a float layer.

    Subclasses build every sublayer in `build()`, weightless ones (dropout) included, since
    `model.quantize` refuses a layer that is not built; a leaf sublayer takes
    `dtype=self.sublayer_dtype(name)`, a composite one `dtype=self.dtype_policy` (the map whole,
    to resolve its own sublayers).
    """

    def rematerialized_call(self, layer_call, *args, **kwargs):
        """Under a `keras.RematScope` that selects this layer, `layers.remat.rematerialized`
        instead of Keras' own wrapper, which fails on our blocks (see that module)."""
        if super().rematerialized_call(layer_call, *args, **kwargs) is layer_call:
            return layer_call
        return rematerialized(self, layer_call)

    def randomly_dropped(self, layer, inputs, training):
        """`inputs` through `layer`, a dropout or `DropPath` sublayer, when it drops anything:
        in training, at a rate above 0. Otherwise `inputs` as they are, without the call (the
        layer would return them): a Keras layer call costs about 0.15 ms in eager PyTorch, and a
        ConViT-Ti forward pass has 62 of these."""
        if training and layer.rate > 0:
            return layer(inputs, training=training)
        return inputs

    def sublayer_dtype(self, name):
        """The dtype policy of the leaf sublayer `name` (a `Dense`, a norm, a dropout): this
        layer's own, or, rebuilt from a config that recorded quantized sublayers, the one
        recorded under the sublayer's path.

        The policy is resolved here rather than passed on as a map: Keras 3.15.1's
        `Dense.quantize` names a layer's new policy after its current one, and fails on a map
        ("Cannot convert 'map_float32'"), so a loaded, partly quantized model could not be
        quantized further.
        """
        policy = self.dtype_policy
        if isinstance(policy, keras.dtype_policies.DTypePolicyMap):
            return policy[f"{self.path}/{name}"]
        return policy

    def arguments(self, names):
        """{name: this layer's attribute of that name} for the constructor arguments `names`,
        which each layer keeps under their own names."""
        return {name: getattr(self, name) for name in names}

    def get_config(self):
        config = super().get_config()
        quantized = {}
        for layer in sublayers(self):
            if layer.quantization_mode is not None:
                quantized[layer.path] = _own_policy(layer)
        if quantized:
            policy_map = keras.dtype_policies.DTypePolicyMap(
                default_policy=_own_policy(self), policy_map=quantized
            )
            config["dtype"] = keras.dtype_policies.serialize(policy_map)
        return config


def _own_policy(layer):
    """The `DTypePolicy` that applies to `layer`, looked up by its path in a `DTypePolicyMap`."""
    policy = layer.dtype_policy
    if isinstance(policy, keras.dtype_policies.DTypePolicyMap):
        return policy[layer.path]
    return policy
