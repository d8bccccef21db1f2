"""Every layer of `keras_convit.layers` through the harness: built, called, its config and its
serialization round-tripped, and run under the mixed precision policies with `dtype=`."""

import numpy as np
import pytest
from harness import run_layer_test, run_precision_test

import keras_convit
from keras_convit.layers import (
    MLP,
    ClassAttention,
    ClassAttentionBlock,
    ClassTokenInsertion,
    DistillationHeads,
    DropPath,
    GatedPositionalSelfAttention,
    ImageInputCheck,
    Linear,
    MultiHeadSelfAttention,
    PatchEmbedding,
    PositionEmbedding,
    TokenPooling,
    TransformerBlock,
)

# name: (class, constructor arguments other than the defaults, input shape, output shape).
# Each layer's own test file may round-trip another set of arguments (GPSA, the block, the MLP).
LAYERS = {
    "ClassAttention": (
        ClassAttention,
        dict(hidden_dim=32, num_heads=4, num_query_tokens=2, qkv_bias=True),
        (2, 6, 32),
        (2, 2, 32),
    ),
    "ClassAttentionBlock": (
        ClassAttentionBlock,
        dict(hidden_dim=32, num_heads=4, num_query_tokens=2, mlp_ratio=2.0, drop_path_rate=0.1),
        (2, 6, 32),
        (2, 6, 32),
    ),
    "ClassTokenInsertion": (ClassTokenInsertion, {}, (2, 6, 32), (2, 7, 32)),
    "DistillationHeads": (
        DistillationHeads,
        dict(classes=5, activation=None),
        (2, 6, 32),
        (2, 5),
    ),
    "DropPath": (DropPath, dict(rate=0.25, seed=3), (2, 6, 32), (2, 6, 32)),
    "GatedPositionalSelfAttention": (  # the square grid inferred from the sequence length
        GatedPositionalSelfAttention,
        dict(hidden_dim=32, num_heads=4, qkv_bias=True, use_conv_init=False),
        (2, 16, 32),
        (2, 16, 32),
    ),
    "ImageInputCheck": (
        ImageInputCheck,
        dict(image_shape=(8, 12, 3)),
        (2, 8, 12, 3),
        (2, 8, 12, 3),
    ),
    "Linear": (Linear, dict(units=16), (2, 6, 32), (2, 6, 16)),
    "MLP": (MLP, dict(hidden_dim=32, intermediate_dim=64), (2, 6, 32), (2, 6, 32)),
    "MultiHeadSelfAttention": (
        MultiHeadSelfAttention,
        dict(hidden_dim=32, num_heads=4, qkv_bias=True, attention_dropout_rate=0.1),
        (2, 6, 32),
        (2, 6, 32),
    ),
    "PatchEmbedding": (
        PatchEmbedding,
        dict(hidden_dim=32, patch_size=4),
        (2, 8, 12, 3),
        (2, 6, 32),
    ),
    "PositionEmbedding": (PositionEmbedding, {}, (2, 6, 32), (2, 6, 32)),
    "TokenPooling": (TokenPooling, dict(mode="avg", num_prefix_tokens=2), (2, 6, 32), (2, 32)),
    "TransformerBlock": (  # plain attention, frozen; test_block.py round-trips a GPSA block
        TransformerBlock,
        dict(
            hidden_dim=32, num_heads=4, qkv_bias=True, drop_path_rate=0.1, trainable_attention=False
        ),
        (2, 6, 32),
        (2, 6, 32),
    ),
}


def test_every_layer_is_in_the_table():
    assert sorted(LAYERS) == sorted(keras_convit.layers.__all__)


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_round_trip(name):
    layer_class, init_kwargs, input_shape, output_shape = LAYERS[name]
    run_layer_test(layer_class, init_kwargs, input_shape, output_shape)


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_mixed_precision(name):
    layer_class, init_kwargs, input_shape, _ = LAYERS[name]
    if layer_class is ImageInputCheck:
        inputs = np.random.default_rng(0).uniform(0, 255, input_shape).astype("float32")
    else:
        inputs = np.random.default_rng(0).standard_normal(input_shape).astype("float32")
    run_precision_test(layer_class, inputs, init_kwargs)
