"""Converting ConViT weights between Keras `.weights.h5` files and reference (timm / official)
checkpoints, either way (`keras-convit convert`). The architecture is read from the tensor
shapes of the source; the destination's kind follows its suffix."""

import inspect
import os

from keras_convit._files import save_weights_safely
from keras_convit.models.convit import ConViT
from keras_convit.presets import preset_of_architecture
from keras_convit.weights.architecture import infer_architecture
from keras_convit.weights.export import export_reference_weights
from keras_convit.weights.loading import load_reference_state_dict, read_state_dict


def convert_weights(source, destination, image_size=None, num_heads=None):
    """Converts the weight file `source` to `destination`; returns the `ConViT` arguments.

    Args:
        source: a Keras `.weights.h5` file or a reference checkpoint, recognised by content.
        destination: path ending in `.weights.h5` (Keras) or `.safetensors` (timm layout).
        image_size: optional (height, width) of the converted model; another grid than the
            source's resamples the position embedding.
        num_heads: the head count, for sources without GPSA blocks.

    >>> import os, tempfile
    >>> folder = tempfile.mkdtemp()
    >>> model = keras_convit.ConViT(
    ...     64, 4, depth=2, local_up_to_layer=1, input_shape=(32, 32, 3), classes=3
    ... )
    >>> model.save_weights(os.path.join(folder, "model.weights.h5"))
    >>> config = convert_weights(os.path.join(folder, "model.weights.h5"),
    ...                          os.path.join(folder, "model.safetensors"))
    >>> config["hidden_dim"], config["depth"], config["input_shape"]
    (64, 2, (32, 32, 3))
    """
    destination = os.fspath(destination)
    if not destination.endswith((".weights.h5", ".safetensors")):
        raise ValueError(
            f"The destination {destination!r} must end in .weights.h5 (Keras) or .safetensors "
            "(timm / PyTorch)."
        )
    model, config = model_from_weights(source, image_size=image_size, num_heads=num_heads)
    if destination.endswith(".weights.h5"):
        save_weights_safely(model, destination)
    else:
        export_reference_weights(model, destination)
    return config


def model_from_weights(source, preset=None, image_size=None, num_heads=None):
    """(a `ConViT` holding the weight file `source`, its `ConViT` arguments). The architecture
    is read from the file's tensor shapes; the model gives logits and is not compiled.

    Args:
        source: a Keras `.weights.h5` file or a reference checkpoint, recognised by content.
        preset: optional `keras_convit.presets.Preset` the file must hold the architecture of
            (a ValueError names the differences); the model then takes the preset's name.
        image_size: optional (height, width) of the model; another grid than the source's
            resamples the position embedding.
        num_heads: the head count, for sources without GPSA blocks (default: the preset's).
    """
    source = os.fspath(source)
    state_dict, source_grid = read_state_dict(source)
    shapes = {key: tuple(value.shape) for key, value in state_dict.items()}
    if source_grid is None and image_size is not None and "pos_embed" in shapes:
        # Without a recorded grid, a non-square source is read as the requested image size.
        patch = shapes["patch_embed.proj.weight"][2]
        grid = (image_size[0] // patch, image_size[1] // patch)
        source_grid = grid if grid[0] * grid[1] == shapes["pos_embed"][1] else None
    if num_heads is None and preset is not None:
        num_heads = preset.num_heads
    config = infer_architecture(shapes, grid_size=source_grid, num_heads=num_heads)
    if preset is not None:
        different = [key for key, value in preset.architecture.items() if config[key] != value]
        if different:
            expected = ", ".join(f"{key} {preset.architecture[key]!r}" for key in different)
            raise ValueError(
                f"{source!r} holds {describe_architecture(config)}, not the {preset.name} "
                f"architecture ({expected})"
            )
    if image_size is not None:
        config["input_shape"] = (*image_size, config["input_shape"][2])
    model = ConViT(
        **config,
        include_preprocessing=config["input_shape"][2] == 3,
        classifier_activation=None,
        compile=False,
        **({"name": preset.name} if preset is not None else {}),
    )
    load_reference_state_dict(model, state_dict, source_grid_size=source_grid, source=source)
    return model, config


def describe_architecture(config):
    """`keras_convit.ConViT(...)` with the arguments that differ from the defaults, and the
    preset whose architecture it is.

    >>> describe_architecture({"hidden_dim": 64, "num_heads": 4, "depth": 2})
    'keras_convit.ConViT(hidden_dim=64, num_heads=4, depth=2)'
    >>> describe_architecture(dict(keras_convit.PRESETS["convit_small"].architecture)).endswith(
    ...     "(the convit_small architecture)")
    True
    """
    defaults = {
        name: parameter.default for name, parameter in inspect.signature(ConViT).parameters.items()
    }
    arguments = ", ".join(
        f"{name}={value!r}" for name, value in config.items() if defaults.get(name) != value
    )
    text = f"keras_convit.ConViT({arguments})"
    preset = preset_of_architecture(config)
    if preset is not None:
        text += f" (the {preset.name} architecture)"
    return text
