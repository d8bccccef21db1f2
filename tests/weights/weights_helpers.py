"""Helpers of the weights tests: timm reference models with seeded random weights, a real photo,
and forward passes that return the logits and every block's hidden states on both sides."""

import keras
import numpy as np
import pytest

from keras_convit.models.preprocessing import IMAGENET_MEAN, IMAGENET_STD

# A small reference config (timm's `embed_dim` is per head: 16 x 4 heads = 64 wide).
TINY_TIMM = dict(
    img_size=32, embed_dim=16, num_heads=4, depth=3, local_up_to_layer=2, num_classes=5
)
TINY_KERAS = dict(hidden_dim=64, num_heads=4, depth=3, local_up_to_layer=2, classes=5)


def timm_or_skip():
    from timm_reference import import_timm

    try:
        return import_timm()
    except ImportError:
        pytest.skip("timm is not installed")


def seeded_timm_convit(seed=0, **kwargs):
    """A timm `ConVit` in eval mode: its own init, then every parameter perturbed (seeded), so no
    weight sits at a value the init alone would give (gates, biases and norms included)."""
    timm_or_skip()
    import torch
    from timm.models.convit import ConVit

    torch.manual_seed(seed)
    model = ConVit(**kwargs).eval()
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            scale = 1.0 if name.endswith("gating_param") else 0.1 if parameter.ndim == 1 else 0.02
            parameter.add_(torch.randn(parameter.shape, generator=generator) * scale)
    return model


def perturb(model, rng, scale=0.05):
    """Moves every weight of a Keras model off its initial value (gates and norms included)."""
    model.set_weights(
        [w + rng.normal(0, scale, w.shape).astype(w.dtype) for w in model.get_weights()]
    )
    return model


def numpy_state_dict(torch_model):
    return {key: value.detach().numpy().copy() for key, value in torch_model.state_dict().items()}


def photo(height=224, width=224):
    """scikit-learn's china.jpg, resized (bicubic): float32 (1, height, width, 3) in [0, 255]."""
    datasets = pytest.importorskip("sklearn.datasets")
    image = pytest.importorskip("PIL.Image")
    picture = image.fromarray(datasets.load_sample_image("china.jpg"))
    resized = picture.resize((width, height), image.Resampling.BICUBIC)
    return np.asarray(resized, dtype="float32")[None]


def timm_forward(reference, images):
    """Logits and per-block outputs of a timm ConVit on [0, 255] NHWC images (numpy)."""
    import torch

    normalized = (images / 255.0 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    inputs = torch.from_numpy(normalized.astype("float32")).permute(0, 3, 1, 2)
    blocks = []
    hooks = [
        block.register_forward_hook(lambda module, args, output: blocks.append(output.numpy()))
        for block in reference.blocks
    ]
    try:
        with torch.no_grad():
            logits = reference(inputs).numpy()
    finally:
        for hook in hooks:
            hook.remove()
    return logits, blocks


def keras_forward(model, images):
    """Logits and per-block outputs of a Keras ConViT (one eager call)."""
    depth = len([layer for layer in model.layers if layer.name.startswith("blocks_")])
    outputs = [model.get_layer(f"blocks_{i}").output for i in range(depth)] + [model.output]
    values = keras.Model(model.input, outputs)(images)
    values = [keras.ops.convert_to_numpy(value) for value in values]
    return values[-1], values[:-1]


def assert_matches_timm(model, reference, images, atol=1e-4):
    """Per-block hidden states (a mismatch names its block), then logits within `atol`.

    Returns the max abs logit difference."""
    logits, blocks = keras_forward(model, images)
    expected_logits, expected_blocks = timm_forward(reference, images)
    assert len(blocks) == len(expected_blocks)
    for index, (block, expected) in enumerate(zip(blocks, expected_blocks, strict=True)):
        scale = max(1.0, float(np.abs(expected).max()))
        difference = float(np.abs(block - expected).max())
        assert difference <= atol * scale, (
            f"blocks_{index} differs from timm's blocks.{index}: max abs difference "
            f"{difference:.3g} (values up to {scale:.3g})"
        )
    difference = float(np.abs(logits - expected_logits).max())
    assert difference <= atol, f"logits differ from timm's by {difference:.3g}"
    return difference
