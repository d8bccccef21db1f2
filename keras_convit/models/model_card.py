"""The model card (README.md) of a preset folder: what the model is, what it eats, how it was
trained and how it scored, its license and how to cite it."""

from keras_convit.models.conversion import describe_architecture

LICENSE = "Apache-2.0"
CITATION = """@inproceedings{dascoli2021convit,
  title={ConViT: Improving Vision Transformers with Soft Convolutional Inductive Biases},
  author={d'Ascoli, St{\\'e}phane and Touvron, Hugo and Leavitt, Matthew L and Morcos, Ari S
          and Biroli, Giulio and Sagun, Levent},
  booktitle={International Conference on Machine Learning (ICML)},
  year={2021}
}"""


def model_card(arguments, metadata, preprocessor, training=None, metrics=None):
    """The README.md text of a preset (Hugging Face's front matter, then Markdown)."""
    architecture = {
        key: value
        for key, value in arguments.items()
        if key not in ("name", "mean", "std", "input_shape", "dtype")
    }
    height, width = preprocessor["image_size"]
    lines = [
        "---",
        "library_name: keras",
        f"license: {LICENSE.lower()}",
        "tags:",
        "- keras",
        "- keras_convit",
        "- image-classification",
        "- vision-transformer",
        "---",
        "",
        f"# {arguments['name']}",
        "",
        "A ConViT (d'Ascoli et al., ICML 2021): a vision transformer whose first "
        f"{arguments['local_up_to_layer']} of {arguments['depth']} blocks use gated positional "
        "self-attention, initialised as a convolution. Made with keras_convit "
        f"{metadata['keras_convit_version']} (Keras {metadata['keras_version']}, "
        f"{metadata['backend']} backend); it loads on TensorFlow, JAX and PyTorch.",
        "",
        "```python",
        "import keras_convit",
        "",
        'model = keras_convit.from_preset("path/to/this/folder")  # or "hf://org/name"',
        "```",
        "",
        "## Model",
        "",
        f"- Architecture: `{describe_architecture(architecture)}`",
        f"- Parameters: {metadata['parameter_count']:,}",
        f"- Based on: {metadata.get('preset') or 'no named preset'}",
        f"- Input: {height}x{width}x{preprocessor['channels']}, "
        f"{preprocessor['inputs']}; mean {preprocessor['mean']}, std {preprocessor['std']}, "
        f"evaluation crop fraction {preprocessor['crop_fraction']}",
    ]
    names = preprocessor.get("class_names")
    if arguments.get("include_top"):
        shown = ", ".join(names[:20]) + (", ..." if len(names) > 20 else "") if names else ""
        lines.append(f"- Classes: {arguments['classes']}" + (f" ({shown})" if shown else ""))
    if training:
        lines += ["", "## Training", "", "| setting | value |", "|---|---|"]
        lines += [
            f"| {key} | {value} |"
            for key, value in sorted(training.items())
            if isinstance(value, (str, int, float, bool)) or value is None
        ]
    scores = {
        key: value
        for key, value in (metrics or {}).items()
        if isinstance(value, (int, float)) and not isinstance(value, bool)
    }
    if scores:
        lines += ["", "## Evaluation", "", "| metric | value |", "|---|---|"]
        lines += [f"| {key} | {_number(value)} |" for key, value in sorted(scores.items())]
    lines += [
        "",
        "## License",
        "",
        f"keras_convit is {LICENSE}; the weights' terms are those of the data they were "
        "trained on.",
        "",
        "## Citation",
        "",
        "```bibtex",
        CITATION,
        "```",
        "",
    ]
    return "\n".join(lines)


def _number(value):
    return f"{value:.4f}" if isinstance(value, float) else str(value)
