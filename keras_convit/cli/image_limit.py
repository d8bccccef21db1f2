"""`--max-image-pixels`: the pixel limit of the image decoders (a decompression-bomb guard, see
`keras_convit.data.images.set_max_image_pixels`) on the commands that read images."""

import argparse
import contextlib

from keras_convit.data.image_header import DEFAULT_MAX_IMAGE_PIXELS
from keras_convit.data.images import set_max_image_pixels

FLAG = "--max-image-pixels"
NO_LIMIT = "none"


def add_max_image_pixels_flag(parser):
    """Adds `--max-image-pixels N|none` to `parser` (a parser or an argument group); absent
    unless given, so the library's limit stays in force."""
    parser.add_argument(
        FLAG,
        type=pixel_limit,
        default=argparse.SUPPRESS,
        metavar="N",
        help=f"Images of more than N pixels (width x height, read from the file's header before "
        f"decoding) are skipped as unreadable, as Pillow guards against decompression bombs "
        f"(default {DEFAULT_MAX_IMAGE_PIXELS:,}; {NO_LIMIT!r}: no limit).",
    )


def pixel_limit(text):
    """The argparse type of the flag: a positive int, or None for "none".

    >>> pixel_limit("4096"), pixel_limit("none")
    (4096, None)
    """
    if text.strip().lower() == NO_LIMIT:
        return None
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(
            f"expected a positive number of pixels or {NO_LIMIT!r}, got {text!r}"
        )
    return value


@contextlib.contextmanager
def max_image_pixels_of(args):
    """The limit given in `args` in force inside the block (none given: the current one), the
    previous one restored after it, so that a command run in-process leaves no trace."""
    if not hasattr(args, "max_image_pixels"):
        yield
        return
    previous = set_max_image_pixels(args.max_image_pixels)
    try:
        yield
    finally:
        set_max_image_pixels(previous)
