"""Writes the paper's analysis figures of a ConViT as PNG files: the attention of a query patch
for every block and head over an image (Fig. 7), the nonlocality of each layer (Figs. 4-5) and
the gating of each GPSA layer (Fig. 6).

The nonlocality and gating figures are drawn across epochs from an `AnalysisLogger` log when one
is given (`--log`), otherwise from the model as it is (one point per line).

    # a saved model (.keras)
    python examples/visualize_attention.py --model run/model.keras --out figures/
    # a variant and a weights file, with a training log and an image of your own
    python examples/visualize_attention.py --variant ConViTTiny --weights convit_tiny.weights.h5 \\
        --log run/analysis.jsonl --image cat.jpg --out figures/
    # any architecture: the keyword arguments of keras_convit.ConViT as JSON
    python examples/visualize_attention.py --weights tiny.weights.h5 --out figures/ \\
        --config '{"hidden_dim": 32, "num_heads": 4, "depth": 2, "local_up_to_layer": 1,
                   "patch_size": 8, "input_shape": [32, 32, 3], "classes": 10}'
"""

import argparse
import json
import os

import keras
import numpy as np

import keras_convit
from keras_convit import analysis


def load_model(args):
    if args.model:
        return keras.saving.load_model(args.model, compile=False)
    if args.config:
        config = json.loads(args.config)
    else:
        size = args.input_size
        config = {"input_shape": (size, size, 3), "classes": args.classes}
    config = {"compile": False, **config}
    if "input_shape" in config:
        config["input_shape"] = tuple(config["input_shape"])
    builder = getattr(keras_convit, args.variant) if args.variant else keras_convit.ConViT
    return builder(weights=args.weights, **config)


def load_image(path, height, width):
    if path:
        image = keras.utils.load_img(path, target_size=(height, width))
        return keras.utils.img_to_array(image)
    # A synthetic scene (a disc and a bar on a gradient), so that the script needs no download.
    rows, cols = np.mgrid[0:height, 0:width] / max(height, width)
    image = np.stack([rows, cols, 0.5 * (rows + cols)], axis=-1)
    image[(rows - 0.35) ** 2 + (cols - 0.35) ** 2 < 0.04] = (1.0, 0.2, 0.1)
    image[(rows > 0.65) & (rows < 0.8) & (cols > 0.2)] = (0.1, 0.3, 1.0)
    return (255.0 * image).astype("float32")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_argument_group("model (a .keras file, or a builder and weights)")
    source.add_argument("--model", help="a saved model, .keras")
    source.add_argument("--weights", help="a .weights.h5 file for the built model")
    source.add_argument("--variant", help="a keras_convit variant, such as ConViTTiny")
    source.add_argument("--config", help="JSON keyword arguments of the builder")
    source.add_argument("--input-size", type=int, default=224)
    source.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--image", help="an image file (default: a synthetic image)")
    parser.add_argument(
        "--query",
        type=int,
        nargs=2,
        metavar=("ROW", "COL"),
        help="the query patch (default: the central one)",
    )
    parser.add_argument("--log", help="an AnalysisLogger log (.jsonl) or its run directory")
    parser.add_argument("--out", default="figures", help="output directory")
    args = parser.parse_args(argv)
    if not args.model and not args.weights:
        parser.error("give --model, or --weights with --variant or --config")

    model = load_model(args)
    height, width = model.input_shape[1:3]
    image = load_image(args.image, height, width)
    os.makedirs(args.out, exist_ok=True)
    written = []

    path = os.path.join(args.out, "attention_grid.png")
    analysis.plot_attention_grid(model, image, path=path, query=args.query)
    written.append(path)
    if analysis.gpsa_blocks(model):
        path = os.path.join(args.out, "positional_attention_grid.png")
        analysis.plot_attention_grid(model, image, path=path, query=args.query, part="positional")
        written.append(path)

    log = (
        analysis.read_log(args.log)
        if args.log
        else [{"epoch": 0, **analysis.analysis_record(model, image[None])}]
    )
    path = os.path.join(args.out, "nonlocality.png")
    analysis.plot_nonlocality(log, path=path)
    written.append(path)
    if log[-1]["gpsa_layers"]:
        path = os.path.join(args.out, "gating.png")
        analysis.plot_gating(log, path=path)
        written.append(path)

    nonlocality = np.array(log[-1]["nonlocality"], dtype=float).mean(axis=-1)
    print("nonlocality per layer (patches):", np.round(nonlocality, 3).tolist())
    for path in written:
        print("wrote", path)


if __name__ == "__main__":
    main()
