"""Post-training quantization of ConViT models, through Keras' own `model.quantize(mode)`.

`model.quantize("int8")` (or "int4", "float8") works on any ConViT, right after construction or
after loading weights, under TensorFlow, JAX and PyTorch (Keras 3.15.1). What it changes:
- every `Dense` (the attention's `qk`, `v`, `qkv`, `proj`, the MLP's `fc1` / `fc2`, the head)
  gets a quantized kernel and a `kernel_scale`, and quantizes its inputs on the fly;
- the patch embedding (a `Conv2D`: Keras 3.15.1 quantizes no convolution), the norms, the
  position embedding and the class token stay float;
- GPSA's positional weights `pos_proj` stay float on purpose (`PositionalProjection`): the
  positional attention, its centres and spans are those of the float model, exactly.
The quantized model survives `get_config` / `from_config` and `.keras` files: the composite
layers record their quantized sublayers' policies (`keras_convit.layers.composite`).

Keras warns once for each layer type it leaves float ("Layer Conv2D does not have a `quantize`
method implemented"); that is expected. "gptq" and "awq" need a calibration data set and a
`get_quantization_layer_structure` that ConViT models do not declare.
"""

from keras_convit._keras_compat import sublayers


def quantized_layers(model):
    """{layer path: quantization mode} of every quantized layer nested in `model`.

    Keras lists a model's top layers only (`model.layers`), and the quantized `Dense` layers of
    a ConViT sit inside its blocks; this finds them all, in model order.

    Example:
    >>> import keras_convit
    >>> from keras_convit.deploy.quantization import quantized_layers
    >>> model = keras_convit.ConViT(32, 4, depth=2, local_up_to_layer=1, patch_size=8,
    ...                             input_shape=(16, 16, 3), classes=3, compile=False)
    >>> quantized_layers(model)
    {}
    >>> import warnings
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")  # Keras' note for each layer type it leaves float
    ...     model.quantize("int8")
    >>> layers = quantized_layers(model)
    >>> layers["blocks_0/attn/qk"], layers["head"], "blocks_0/attn/pos_proj" in layers
    ('int8', 'int8', False)
    """
    return {
        layer.path: layer.quantization_mode
        for layer in sublayers(model)
        if layer.quantization_mode is not None
    }
