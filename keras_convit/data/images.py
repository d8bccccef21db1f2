"""Image files as every part of keras_convit reads them: which files are images, which folders
hold a test split, and one decoder (`tf.io.decode_image`: grey and RGBA become RGB) shared by
the folder scan, the training pipelines and `predict`, so a file that passes the scan decodes
everywhere."""

import re

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
TEST_FOLDER_NAMES = ("test", "val", "validation")


def is_image_file(name):
    """Whether the file `name` has an image extension (any case).

    >>> is_image_file("cats/a.JPG"), is_image_file("notes.txt")
    (True, False)
    """
    return str(name).lower().endswith(IMAGE_EXTENSIONS)


def require_tensorflow():
    """Raises a clear ImportError when TensorFlow, which decodes images and runs the tf.data
    pipelines, is missing."""
    try:
        import tensorflow  # noqa: F401
    except ImportError as error:
        raise ImportError(
            "keras_convit's data pipelines use tf.data, which feeds every Keras backend: "
            "pip install tensorflow-cpu (or tensorflow) beside your backend."
        ) from error


def decode_image(contents):
    """The encoded image bytes `contents` (a string tensor) as a uint8 (height, width, 3)
    tensor. Images stay uint8 until augmentation: 4x less memory in shuffle buffers."""
    import tensorflow as tf

    image = tf.io.decode_image(contents, channels=3, expand_animations=False)
    image.set_shape([None, None, 3])
    return tf.cast(image, "uint8")


def read_image(path):
    """`decode_image` of the file at `path`; raises `tf.errors.OpError` when it does not
    decode (see `decode_error_reason`)."""
    import tensorflow as tf

    return decode_image(tf.io.read_file(path))


def decode_error_reason(error):
    """The message of a TensorFlow decoding error without its op decoration:
    "{{function_node ...}} Invalid PNG data, size 45 [Op:DecodeImage] name: " -> "Invalid PNG
    data, size 45"."""
    message = re.sub(r"^\{\{.*?\}\}\s*", "", error.message)
    return re.sub(r"\s*\[Op:.*$", "", message, flags=re.S).strip() or type(error).__name__


def as_rgb(image):
    """(h, w, c) with c = 1 (grey), 2 (grey and alpha), 3 or 4 (RGBA) -> (h, w, 3); alpha is
    dropped, as `tf.io.decode_image(..., channels=3)` drops it."""
    import tensorflow as tf

    channels = image.shape[-1]
    if channels == 3:
        return image
    if channels in (1, 2):
        return tf.image.grayscale_to_rgb(image[..., :1])
    if channels == 4:
        return image[..., :3]
    if channels is not None:
        raise ValueError(f"Images with {channels} channels: expected 1, 2, 3 or 4.")
    # Channels known only when run: grey (and alpha) repeats channel 0, colour keeps 0, 1, 2.
    picks = tf.where(tf.shape(image)[-1] < 3, tf.zeros(3, "int32"), tf.range(3))
    image = tf.gather(image, picks, axis=-1)
    image.set_shape(image.shape[:-1].concatenate([3]))
    return image
