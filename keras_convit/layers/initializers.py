"""Initialisers that reproduce the reference (timm / official ConViT) initialisation."""

import math

import keras


def linear_kernel_initializer():
    """timm's `trunc_normal_(std=0.02)` for Linear weights, cls_token and pos_embed.

    timm truncates at the absolute values +-2, which is 100 standard deviations at std 0.02, so
    the distribution is a plain N(0, 0.02^2). Keras' `TruncatedNormal` would cut at 2 sigma.
    """
    return keras.initializers.RandomNormal(stddev=0.02)


def conv_kernel_initializer():
    """PyTorch's default Conv2d weight init, kaiming_uniform(a=sqrt(5)) = U(+-1/sqrt(fan_in)).

    The reference never re-initialises the patch-embedding convolution.
    """
    return keras.initializers.VarianceScaling(
        scale=1.0 / 3.0, mode="fan_in", distribution="uniform"
    )


def conv_bias_initializer(fan_in):
    """PyTorch's default Conv2d bias init, U(+-1/sqrt(fan_in))."""
    bound = 1.0 / math.sqrt(fan_in)
    return keras.initializers.RandomUniform(minval=-bound, maxval=bound)
