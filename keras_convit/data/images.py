"""Image files as every part of keras_convit reads them: which files are images, which folders
hold a test split, and one decoder (`tf.io.decode_image`: grey and RGBA become RGB) shared by
the folder scan, the training pipelines and `predict`, so a file that passes the scan decodes
everywhere. The decoder reads the header first (`image_header.read_header`): an image over the
pixel limit (`set_max_image_pixels`, Pillow's 89,478,485 by default) is refused before it is
decoded, and the EXIF orientation is applied, as `PIL.ImageOps.exif_transpose` applies it."""

import re

from keras_convit.data.image_header import (
    DEFAULT_MAX_IMAGE_PIXELS,
    ImageTooLargeError,
    check_pixels,
    read_header,
)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
TEST_FOLDER_NAMES = ("test", "val", "validation")

_settings = {"max_image_pixels": DEFAULT_MAX_IMAGE_PIXELS}


def set_max_image_pixels(max_pixels):
    """Sets the pixel limit of every decoder of keras_convit (the folder scan, the pipelines,
    `predict`) and returns the previous one; None lifts it. Default: 89,478,485, Pillow's.

    >>> previous = set_max_image_pixels(4096 * 4096)
    >>> max_image_pixels(), set_max_image_pixels(previous) == 4096 * 4096
    (16777216, True)
    """
    if max_pixels is not None and (
        isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or max_pixels < 1
    ):
        raise ValueError(f"max_pixels={max_pixels!r}: expected a positive int or None.")
    previous, _settings["max_image_pixels"] = _settings["max_image_pixels"], max_pixels
    return previous


def max_image_pixels():
    """The pixel limit in force (None: none); see `set_max_image_pixels`."""
    return _settings["max_image_pixels"]


def _limit(max_pixels):
    return max_image_pixels() if max_pixels is None else max_pixels


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


def decode_image(contents, max_pixels=None, name=None, orientation=None):
    """The encoded image bytes `contents` (a string tensor) as a uint8 (height, width, 3)
    tensor, turned upright by its EXIF orientation. Images stay uint8 until augmentation: 4x
    less memory in shuffle buffers. Works eagerly and inside tf.data.

    The header is read first: more pixels than `max_pixels` (default: `max_image_pixels()`)
    raises `tf.errors.InvalidArgumentError` naming `name` (a path tensor or string) before any
    pixel is decoded. Inside tf.data that read is a `tf.py_function` (about 0.5 ms an image,
    under the GIL); a caller that read the header already, as the folder scan does, passes
    its `orientation` (an int or int tensor) instead: nothing is read or checked then."""
    import tensorflow as tf

    limit = _limit(max_pixels)
    if orientation is not None:
        orientation = tf.convert_to_tensor(orientation, "int32")
    elif tf.executing_eagerly():  # checked here, so the error is one clean line
        header = read_header(contents.numpy())
        try:
            check_pixels(header, limit)  # the caller knows the path
        except ImageTooLargeError as error:
            raise tf.errors.InvalidArgumentError(None, None, str(error)) from None
        orientation = tf.constant(1 if header is None else header.orientation)
    else:

        @tf.autograph.experimental.do_not_convert
        def orientation_of(contents, name):  # a message, not an exception: no traceback log
            header = read_header(contents.numpy())
            try:
                check_pixels(header, limit, name.numpy().decode("utf-8", "replace"))
            except ImageTooLargeError as error:
                return 1, str(error)
            return (1 if header is None else header.orientation), ""

        name = tf.constant("image") if name is None else name
        orientation, message = tf.py_function(orientation_of, [contents, name], ["int32", "string"])
        check = tf.debugging.Assert(tf.equal(message, ""), [message])
        with tf.control_dependencies([check]):
            orientation = tf.identity(orientation)
    with tf.control_dependencies([orientation]):
        image = tf.io.decode_image(contents, channels=3, expand_animations=False)
    image = tf.cast(image, "uint8")
    image.set_shape([None, None, 3])
    image = orient(image, orientation)
    image.set_shape([None, None, 3])
    return image


def read_image(path, max_pixels=None, orientation=None):
    """`decode_image` of the file at `path`, upright by its EXIF orientation; raises
    `tf.errors.OpError` when it does not decode or is over the pixel limit (see
    `decode_error_reason`). This is the one reader of image files: the scan, the pipelines
    and `predict` call it."""
    import tensorflow as tf

    return decode_image(
        tf.io.read_file(path), max_pixels=max_pixels, name=path, orientation=orientation
    )


def image_error(path, max_pixels=None):
    """None when the file at `path` decodes as `read_image` decodes it, else the reason it
    does not, in one line (over the pixel limit, truncated, not an image, ...)."""
    return inspect_image(path, max_pixels)[0]


def inspect_image(path, max_pixels=None):
    """(None, EXIF orientation) when the file at `path` decodes as `read_image` decodes it,
    else (the reason it does not, in one line, 1): what the folder scan records of a file."""
    import tensorflow as tf

    try:
        with open(path, "rb") as file:
            contents = file.read()
        header = read_header(contents)
        check_pixels(header, _limit(max_pixels))
        orientation = 1 if header is None else header.orientation
        decode_image(tf.constant(contents), orientation=orientation)
    except ImageTooLargeError as error:
        return str(error), 1
    except OSError as error:
        return f"{type(error).__name__}: {error.strerror}", 1
    except tf.errors.OpError as error:
        return decode_error_reason(error), 1
    return None, orientation


def image_header(path, max_pixels=None):
    """The `ImageHeader` (size, EXIF orientation) of the image file at `path`, or None for a
    format it does not know; raises `ImageTooLargeError` (a ValueError) over the pixel limit.
    Plain Python: for decoders without TensorFlow (Pillow), with `orient_array`."""
    with open(path, "rb") as file:
        header = read_header(file.read())
    check_pixels(header, _limit(max_pixels))
    return header


def orient_array(pixels, orientation):
    """`orient` for a numpy (height, width, channels) array.

    >>> pixels = np.arange(6).reshape(2, 3, 1)
    >>> orient_array(pixels, 6)[..., 0].tolist()  # stored turned 90 anticlockwise
    [[3, 0], [4, 1], [5, 2]]
    """
    import numpy as np

    transposed = np.transpose(pixels, (1, 0, 2))
    return {
        2: lambda: pixels[:, ::-1],
        3: lambda: pixels[::-1, ::-1],
        4: lambda: pixels[::-1],
        5: lambda: transposed,
        6: lambda: transposed[:, ::-1],
        7: lambda: transposed[::-1, ::-1],
        8: lambda: transposed[::-1],
    }.get(int(orientation), lambda: pixels)()


def orient(image, orientation):
    """The (height, width, channels) `image` turned upright by the EXIF `orientation` (1 to 8;
    a scalar, a tensor inside tf.data), as `PIL.ImageOps.exif_transpose` turns it."""
    import tensorflow as tf

    def transpose(pixels):
        return tf.transpose(pixels, [1, 0, 2])

    branches = [
        lambda: image,  # 1: upright
        lambda: tf.reverse(image, [1]),  # 2: mirrored left-right
        lambda: tf.reverse(image, [0, 1]),  # 3: rotated 180
        lambda: tf.reverse(image, [0]),  # 4: mirrored top-bottom
        lambda: transpose(image),  # 5: transposed
        lambda: tf.image.rot90(image, 3),  # 6: turned 90 clockwise to be upright
        lambda: tf.reverse(transpose(image), [0, 1]),  # 7: transversed
        lambda: tf.image.rot90(image, 1),  # 8: turned 90 anticlockwise to be upright
    ]
    index = tf.clip_by_value(tf.cast(orientation, "int32") - 1, 0, 7)
    return tf.switch_case(index, branches)


def decode_error_reason(error):
    """The message of a TensorFlow decoding error without its op decoration:
    "{{function_node ...}} Invalid PNG data, size 45 [Op:DecodeImage] name: " -> "Invalid PNG
    data, size 45"."""
    message = re.sub(r"^\{\{.*?\}\}\s*", "", error.message).split("\nTraceback")[0]
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
