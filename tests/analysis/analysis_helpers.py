"""Tiny ConViTs and helpers for the analysis tests: 32x32 images, few blocks and heads."""

import keras
import numpy as np
from harness import TINY_CONVIT as TINY

import keras_convit
from keras_convit import analysis


def build(**overrides):
    """A tiny ConViT (3 blocks: 2 GPSA, the class token, 1 attention block)."""
    return keras_convit.ConViT(**{**TINY, **overrides})


def weights_of(model):
    return [keras.ops.convert_to_numpy(variable).copy() for variable in model.weights]


def assert_same_weights(before, model):
    after = weights_of(model)
    assert len(before) == len(after)
    for old, new in zip(before, after, strict=True):
        np.testing.assert_array_equal(old, new)


def randomize_gating(model, rng):
    """Gates away from their initial value, as after training."""
    for block in analysis.gpsa_blocks(model):
        block.attn.gating_param.assign(rng.normal(0.0, 2.0, block.num_heads).astype("float32"))
