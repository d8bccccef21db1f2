"""`keras-convit convert SRC DST`: converts ConViT weights between Keras `.weights.h5` files and
reference (timm / official) checkpoints, either way. The architecture is read from the tensor
shapes of SRC; DST's kind follows its suffix (`.weights.h5` or `.safetensors`)."""

from keras_convit.models.conversion import convert_weights, describe_architecture


def configure_parser(parser):
    """Adds the `convert` arguments."""
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
    return parser


def run(args):
    """Converts; a file that cannot be read or does not fit raises (one line from the CLI)."""
    config = convert_weights(
        args.source, args.destination, image_size=args.image_size, num_heads=args.num_heads
    )
    print(f"Wrote {args.destination}, the weights of {describe_architecture(config)}")
    return 0
