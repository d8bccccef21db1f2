"""`keras-convit convert SRC DST`: converts ConViT weights between Keras `.weights.h5` files and
reference (timm / official) checkpoints, either way. The architecture is read from the tensor
shapes of SRC; DST's kind follows its suffix (`.weights.h5` or `.safetensors`)."""

import argparse
import inspect
import os
import sys

from keras_convit.models.convit import CONFIGS, ConViT
from keras_convit.weights.architecture import infer_architecture
from keras_convit.weights.export import export_reference_weights
from keras_convit.weights.loading import load_reference_state_dict, read_state_dict


def configure_parser(parser):
    parser.description = __doc__
    parser.add_argument("source", help="a .weights.h5, .safetensors, .pth or .bin file")
    parser.add_argument("destination", help="the file to write: .weights.h5 or .safetensors")
    parser.add_argument(
        "--image-size",
        type=int,
        nargs=2,
        metavar=("HEIGHT", "WIDTH"),
        help="input size of the converted model (default: the source's); another size resamples "
        "the position embedding, e.g. 384 384 to fine-tune 224x224 weights at 384x384",
    )
    parser.add_argument(
        "--num-heads",
        type=int,
        help="head count, needed only for a source without GPSA blocks (nothing else shows it)",
    )


def run(args):
    try:
        config = convert_weights(
            args.source, args.destination, image_size=args.image_size, num_heads=args.num_heads
        )
    except (ValueError, OSError, ImportError) as error:
        print(f"keras-convit convert: error: {error}", file=sys.stderr)
        return 1
    print(f"Wrote {args.destination}, the weights of {describe(config)}")
    return 0


def convert_weights(source, destination, image_size=None, num_heads=None):
    """Converts the weight file `source` to `destination`; returns the `ConViT` arguments.

    Args:
        source: a Keras `.weights.h5` file or a reference checkpoint, recognised by content.
        destination: path ending in `.weights.h5` (Keras) or `.safetensors` (timm layout).
        image_size: optional (height, width) of the converted model; another grid than the
            source's resamples the position embedding.
        num_heads: the head count, for sources without GPSA blocks.

    >>> import keras_convit, os, tempfile
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
    model, config = _model_from(os.fspath(source), image_size, num_heads)
    if destination.endswith(".weights.h5"):
        model.save_weights(destination)
    else:
        export_reference_weights(model, destination)
    return config


def _model_from(source, image_size, num_heads):
    """Builds the source's architecture (at `image_size` if given) and loads the source into it."""
    state_dict, source_grid = read_state_dict(source)
    shapes = {key: value.shape for key, value in state_dict.items()}
    if source_grid is None and image_size is not None and "pos_embed" in shapes:
        # Without a recorded grid, a non-square source is read as the requested image size.
        patch = shapes["patch_embed.proj.weight"][2]
        grid = (image_size[0] // patch, image_size[1] // patch)
        source_grid = grid if grid[0] * grid[1] == shapes["pos_embed"][1] else None
    config = infer_architecture(shapes, grid_size=source_grid, num_heads=num_heads)
    if image_size is not None:
        config["input_shape"] = (*image_size, config["input_shape"][2])
    model = ConViT(
        **config,
        include_preprocessing=config["input_shape"][2] == 3,
        classifier_activation=None,
        compile=False,
    )
    load_reference_state_dict(model, state_dict, source_grid_size=source_grid, source=source)
    return model, config


def describe(config):
    """`keras_convit.ConViT(...)` with the arguments that differ from the defaults."""
    defaults = {
        name: parameter.default for name, parameter in inspect.signature(ConViT).parameters.items()
    }
    arguments = ", ".join(
        f"{name}={value!r}" for name, value in config.items() if defaults.get(name) != value
    )
    text = f"keras_convit.ConViT({arguments})"
    width = {key: value for key, value in config.items() if key in ("hidden_dim", "num_heads")}
    reference = dict(depth=12, local_up_to_layer=10, patch_size=16, mlp_ratio=4.0)
    for name, variant in CONFIGS.items():
        if variant == width and all(config[key] == value for key, value in reference.items()):
            text += f" (the {name} architecture)"
    return text


def main(argv=None):
    """`python -m keras_convit.weights.convert SRC DST`, the same as `keras-convit convert`."""
    parser = argparse.ArgumentParser(prog="keras-convit convert")
    configure_parser(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
