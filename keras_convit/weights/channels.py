"""Channel adaptation: RGB weights into a model of another channel count, as timm's
`adapt_input_conv` (timm/models/_manipulate.py), and the preprocessing statistics to match."""

import math

import numpy as np

RGB_CHANNELS = 3


def adapt_input_conv(weight, channels):
    """The patch embedding `weight` of an RGB checkpoint for a model of `channels` channels.

    timm's rule: 1 channel sums the RGB filters; any other count repeats them
    ceil(channels / 3) times, keeps the first `channels` and rescales by 3 / channels (so an
    image of repeated RGB planes gives the RGB model's embedding). A matching count is unchanged.

    Args:
        weight: (out, in, kh, kw) array, the reference (PyTorch) layout.
        channels: int, the model's input channels.

    Returns:
        (out, channels, kh, kw) array of the same dtype.

    Raises:
        ValueError: `weight` is not a convolution kernel, or it has neither 3 channels nor
            `channels` (only RGB weights are adapted).

    >>> weight = np.ones((8, 3, 4, 4), "float32")
    >>> adapt_input_conv(weight, 1)[0, :, 0, 0], adapt_input_conv(weight, 5)[0, :, 0, 0]
    (array([3.], dtype=float32), array([0.6, 0.6, 0.6, 0.6, 0.6], dtype=float32))
    """
    weight = np.asarray(weight)
    if weight.ndim != 4:
        raise ValueError(f"A convolution kernel (out, in, kh, kw) is needed, got {weight.shape}.")
    source = weight.shape[1]
    if source == channels:
        return weight
    if source != RGB_CHANNELS or not (isinstance(channels, int) and channels > 0):
        raise ValueError(
            f"Only RGB (3-channel) weights adapt to another channel count; the file has "
            f"{source} channels, the model {channels}."
        )
    if channels == 1:
        return weight.sum(axis=1, keepdims=True, dtype=weight.dtype)
    repeats = math.ceil(channels / RGB_CHANNELS)
    repeated = np.tile(weight, (1, repeats, 1, 1))[:, :channels]
    return repeated * weight.dtype.type(RGB_CHANNELS / channels)


def adapt_statistics(values, channels):
    """Per-channel normalisation statistics (a `mean` or `std`) for `channels` channels.

    Statistics of the right length (or of length 1) are kept. RGB statistics follow the
    weights: 1 channel takes their mean (as for a grey image), any other count repeats them,
    channel i taking RGB statistic i mod 3, as `adapt_input_conv` repeats the filters.

    >>> [round(value, 4) for value in adapt_statistics((0.485, 0.456, 0.406), 1)]
    [0.449]
    >>> adapt_statistics((0.1, 0.2, 0.3), 5)
    (0.1, 0.2, 0.3, 0.1, 0.2)
    """
    values = tuple(float(value) for value in np.ravel(values))
    if len(values) in (1, channels):
        return values
    if len(values) != RGB_CHANNELS:
        raise ValueError(
            f"Normalisation statistics for {channels} channels must have {channels} values "
            f"(or 1, or 3 RGB values to adapt), got {len(values)}: {values}."
        )
    if channels == 1:
        return (math.fsum(values) / RGB_CHANNELS,)
    return tuple(values[index % RGB_CHANNELS] for index in range(channels))
