"""scikit-learn's bundled handwritten digits: real data that is available offline."""

import numpy as np

DIGITS_CLASSES = 10


def load_digits(image_size=32, test_fraction=0.2, seed=0):
    """Loads the 1,797 8x8 digits as RGB images in [0, 255], split per class into train and test.

    Args:
        image_size: int, output side; the 8x8 images are upsampled by pixel repetition, so it
            must be a multiple of 8.
        test_fraction: float in (0, 1), the held-out share of each class.
        seed: int, the shuffle seed of the split.

    Returns:
        ((x_train, y_train), (x_test, y_test)): float32 images (n, size, size, 3), int32 labels.

    Example:
    >>> (x_train, y_train), (x_test, y_test) = keras_convit.data.load_digits(image_size=16)
    >>> x_train.shape[1:], len(x_train) + len(x_test)
    ((16, 16, 3), 1797)
    """
    try:
        from sklearn.datasets import load_digits as sklearn_load_digits
    except ImportError as error:
        raise ImportError(
            "The digits data set comes with scikit-learn: pip install 'keras-convit[data]'."
        ) from error
    if image_size % 8 or image_size <= 0:
        raise ValueError(f"`image_size` must be a positive multiple of 8, got {image_size!r}.")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"`test_fraction` must be in (0, 1), got {test_fraction!r}.")
    digits = sklearn_load_digits()
    scale = image_size // 8
    images = digits.images.repeat(scale, axis=1).repeat(scale, axis=2) * (255.0 / 16.0)
    images = np.repeat(images[..., None], 3, axis=-1).astype("float32")
    labels = digits.target.astype("int32")

    rng = np.random.default_rng(seed)
    test_mask = np.zeros(len(labels), dtype=bool)
    for label in range(DIGITS_CLASSES):
        members = rng.permutation(np.flatnonzero(labels == label))
        test_mask[members[: round(len(members) * test_fraction)]] = True
    order = rng.permutation(len(labels))
    train, test = order[~test_mask[order]], order[test_mask[order]]
    return (images[train], labels[train]), (images[test], labels[test])
