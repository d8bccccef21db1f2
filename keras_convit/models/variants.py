"""The six paper variants as `keras.applications`-style functions, and `from_preset` for any
named model of `keras_convit.presets.PRESETS`; each reads its architecture from the preset."""

from keras_convit.models.convit import ConViT
from keras_convit.presets import get_preset

VARIANT_DOCSTRING = """{description}: {hidden_dim} wide, {num_heads} heads, {depth} blocks.

    ConViT (d'Ascoli et al., ICML 2021) is a vision transformer whose first {local_up_to_layer}
    of {depth} blocks use gated positional self-attention (GPSA), initialised as a convolution;
    a class token joins before the last ordinary attention blocks. The architecture is the
    `keras_convit.presets.PRESETS["{name}"]` record.

    The model takes RGB images in [0, 255] (the ImageNet normalisation is inside it) unless
    `include_preprocessing=False`. A classifier comes compiled (AdamW with the reference's
    weight-decay exclusions, cross-entropy that takes integer or one-hot / soft labels,
    accuracy), so `fit` works at once; `compile()` overrides it.

    Args:
        include_top: whether to include the classification head.
        weights: None (random initialisation), {imagenet_text}or the path to a weights file:
            Keras `.weights.h5`, or a timm / official checkpoint (`.safetensors`, `.pth`,
            `.bin`). Checkpoints of another input size load too: the position embedding is
            resampled to this model's grid. RGB weights load into another channel count as
            timm's `adapt_input_conv` does (1 channel: the filters summed). Everything else
            must fit, or nothing is loaded.
        input_tensor: optional Keras tensor (output of `keras.Input()`) to use as image input.
        input_shape: (height, width, channels), static, default {input_shape}. Height and
            width must be multiples of the patch size {patch_size}. Any channel count: the
            preprocessing of 1 channel uses the mean of the RGB statistics.
        pooling: "token" (the class token, default) or "avg" (mean of the patch tokens). With
            `include_top=False`, None returns the whole normed token sequence
            (batch, 1 + patches, {hidden_dim}).
        classes: number of classes of the head. With `weights`, another count than the
            file's loads every weight but the head, which is new (one log line says so).
        classifier_activation: activation of the head: "softmax" (default) or None for logits;
            with weights, only these two (as `keras.applications`).
        include_preprocessing: whether the model normalises [0, 255] RGB input itself.
        compile: whether to compile a classifier with the default settings.
        dtype: the dtype policy of every layer ("mixed_bfloat16", "bfloat16", ...), as
            keras-hub's backbones; None: the global policy. GPSA's softmaxes and gating stay
            float32.
        name: the model name, default "{name}".
        **kwargs: further `keras_convit.ConViT` arguments, such as `drop_path_rate`, `use_gpsa`
            or `locality_strength`.

    Returns:
        A `keras.Model`.

    Example:
    >>> model = keras_convit.{function}(input_shape=(32, 32, 3), classes=10){skip}
    >>> tuple(model.predict(np.zeros((2, 32, 32, 3)), verbose=0).shape){skip}
    (2, 10)
"""
# The six examples differ only in the name: the suite runs the Tiny one, where the others would
# build up to 153M parameters (minutes in all) to show the same shapes.
_EXAMPLE_RUN_BY = "ConViTTiny"


def _build_variant(preset_name, arguments):
    """`ConViT` with the preset's architecture and the variant function's `arguments`."""
    preset = get_preset(preset_name)
    arguments = dict(arguments)
    kwargs = arguments.pop("kwargs")
    clashing = sorted(set(kwargs) & set(preset.architecture))
    if clashing:
        raise ValueError(
            f"{preset.function} fixes {', '.join(clashing)} (the {preset.name} architecture); "
            "use keras_convit.ConViT to choose them."
        )
    if arguments["name"] is None:
        arguments["name"] = preset.name
    if arguments["input_shape"] is None and arguments["input_tensor"] is None:
        arguments["input_shape"] = (*preset.input_size, 3)
    normalization = {"mean": preset.mean, "std": preset.std}
    return ConViT(**preset.architecture, **{**normalization, **arguments, **kwargs})


def _document(function):
    """Formats `VARIANT_DOCSTRING` for a variant function, from its preset."""
    preset = get_preset(function.__name__)
    imagenet_text = (
        f'"imagenet" (the official ImageNet-1k weights, timm tag `{preset.imagenet_tag}`, '
        "downloaded once), "
        if preset.has_imagenet_weights
        else ""
    )
    function.__doc__ = VARIANT_DOCSTRING.format(
        **preset.architecture,
        name=preset.name,
        function=preset.function,
        description=preset.description,
        input_shape=(*preset.input_size, 3),
        imagenet_text=imagenet_text,
        skip="" if preset.function == _EXAMPLE_RUN_BY else "  # doctest: +SKIP",
    )
    return function


# Written out, as keras.applications does, so that `inspect.signature` and go-to-definition show
# the real arguments; the architecture comes from the preset table.
def ConViTTiny(
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling="token",
    classes=1000,
    classifier_activation="softmax",
    include_preprocessing=True,
    compile=True,
    dtype=None,
    name=None,
    **kwargs,
):
    return _build_variant("convit_tiny", locals())


def ConViTTinyPlus(
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling="token",
    classes=1000,
    classifier_activation="softmax",
    include_preprocessing=True,
    compile=True,
    dtype=None,
    name=None,
    **kwargs,
):
    return _build_variant("convit_tiny_plus", locals())


def ConViTSmall(
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling="token",
    classes=1000,
    classifier_activation="softmax",
    include_preprocessing=True,
    compile=True,
    dtype=None,
    name=None,
    **kwargs,
):
    return _build_variant("convit_small", locals())


def ConViTSmallPlus(
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling="token",
    classes=1000,
    classifier_activation="softmax",
    include_preprocessing=True,
    compile=True,
    dtype=None,
    name=None,
    **kwargs,
):
    return _build_variant("convit_small_plus", locals())


def ConViTBase(
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling="token",
    classes=1000,
    classifier_activation="softmax",
    include_preprocessing=True,
    compile=True,
    dtype=None,
    name=None,
    **kwargs,
):
    return _build_variant("convit_base", locals())


def ConViTBasePlus(
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling="token",
    classes=1000,
    classifier_activation="softmax",
    include_preprocessing=True,
    compile=True,
    dtype=None,
    name=None,
    **kwargs,
):
    return _build_variant("convit_base_plus", locals())


for _variant in (
    ConViTTiny,
    ConViTTinyPlus,
    ConViTSmall,
    ConViTSmallPlus,
    ConViTBase,
    ConViTBasePlus,
):
    _document(_variant)


def from_preset(preset, **kwargs):
    """Any named model of `keras_convit.presets.PRESETS`, with `ConViT` arguments overriding
    the preset's (architecture included). `weights=` with another `classes` than the file's
    puts a new head on; another channel count adapts RGB weights and statistics.

    A `depth` override keeps the preset's number of late attention blocks (those after the
    class token joins): `local_up_to_layer` becomes `depth` minus that number (at least 0)
    unless it is given too. ConViT-S (10 GPSA blocks of 12) at `depth=6` has 4 GPSA blocks.

    Example:
    >>> model = keras_convit.from_preset("convit_digits", classes=10, compile=False)
    >>> model.name, model.input_shape
    ('convit_digits', (None, 16, 16, 3))
    >>> shallow = keras_convit.from_preset("convit_digits", depth=2, classes=10, compile=False)
    >>> [shallow.get_layer(f"blocks_{i}").use_gpsa for i in range(2)]
    [True, False]
    """
    preset = get_preset(preset)
    arguments = {"input_shape": (*preset.input_size, 3), "name": preset.name}
    arguments.update(mean=preset.mean, std=preset.std, **preset.architecture)
    if "depth" in kwargs and "local_up_to_layer" not in kwargs:
        late_blocks = preset.architecture["depth"] - preset.architecture["local_up_to_layer"]
        arguments["local_up_to_layer"] = max(kwargs["depth"] - late_blocks, 0)
    arguments.update(kwargs)
    if "input_tensor" in kwargs and "input_shape" not in kwargs:
        del arguments["input_shape"]
    return ConViT(**arguments)
