"""Image files for inference: found from paths, folders and globs, decoded as the training
pipelines decode them (`tf.io.decode_image`; grey and RGBA become RGB) and brought to the
model's input size by the evaluation transform (resize and centre crop, `RandomResizedCrop` in
inference), as float32 RGB in [0, 255].

Without TensorFlow (a deployment with only onnxruntime or LiteRT), Pillow decodes the files, by
the same rules: the first frame, no EXIF rotation, grey repeated, alpha dropped."""

import glob
import os

import keras
import numpy as np

from keras_convit.data.crop import RandomResizedCrop
from keras_convit.data.images import (
    IMAGE_EXTENSIONS,
    decode_error_reason,
    image_header,
    is_image_file,
    orient_array,
    read_image,
)

_GLOB_CHARACTERS = frozenset("*?[")


def find_images(inputs):
    """The image files named by `inputs`, in order and without repeats, and what matched none.

    Each input is a file (taken whatever its suffix), a folder (its image files, recursively,
    in sorted path order; hidden entries skipped) or a glob (`**` recursive). Returns
    `(paths, missing)`: `missing` holds (input, reason) for each input that names nothing.

    Example:
    >>> import pathlib, tempfile
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> (root / "cats").mkdir()
    >>> for name in ("cats/b.png", "cats/a.jpg", "notes.txt"):
    ...     _ = (root / name).write_bytes(b"")
    >>> paths, missing = find_images([str(root), str(root / "*.gif")])
    >>> [os.path.relpath(path, root) for path in paths], len(missing)
    (['cats/a.jpg', 'cats/b.png'], 1)
    """
    paths, missing = {}, []
    for item in inputs:
        item = os.fspath(item)
        if os.path.isdir(item):
            found = _folder_images(item)
            reason = f"no image files ({', '.join(IMAGE_EXTENSIONS)}) in this folder"
        elif os.path.lexists(item):
            found, reason = [item], None
        elif not _GLOB_CHARACTERS & set(item):
            found, reason = [], "no such file or folder"
        else:
            found = []
            for match in sorted(glob.glob(item, recursive=True)):
                if os.path.isdir(match):
                    found.extend(_folder_images(match))
                elif is_image_file(match):
                    found.append(match)
            reason = "matches no image file"
        if not found:
            missing.append((item, reason))
        paths.update(dict.fromkeys(found))
    return list(paths), missing


def load_images(paths, image_size, crop_fraction=1.0):
    """Decodes the image files `paths` and brings each to `image_size` (height, width).

    Resize and centre crop as the evaluation pipeline does: the central box of the output's
    aspect ratio covering `crop_fraction` of the shorter side (1.0: all of it) is resized,
    bilinearly. A file that does not decode is left out, with the reason.

    Returns:
        (images float32 (n, height, width, 3) in [0, 255], the n paths that decoded,
        [(path, reason)] of those that did not).

    Example:
    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> keras.utils.save_img(os.path.join(folder, "grey.png"), np.zeros((20, 30, 1)))
    >>> _ = open(os.path.join(folder, "bad.jpg"), "wb").write(b"not a JPEG")
    >>> images, good, bad = load_images(
    ...     [os.path.join(folder, name) for name in ("grey.png", "bad.jpg")], (16, 16))
    >>> images.shape, [os.path.basename(p) for p in good], [os.path.basename(p) for p, _ in bad]
    ((1, 16, 16, 3), ['grey.png'], ['bad.jpg'])
    """
    decode = _decoder()
    height, width = image_size
    crop = RandomResizedCrop(height, width, crop_fraction=crop_fraction)
    images, good, bad = [], [], []
    for path in paths:
        try:
            image = decode(path)
        except _Unreadable as error:
            bad.append((path, str(error)))
            continue
        if image.shape[:2] != (height, width) or crop_fraction != 1.0:
            image = keras.ops.convert_to_numpy(crop(image.astype("float32"), training=False))
        images.append(image.astype("float32"))
        good.append(path)
    stacked = np.stack(images) if images else np.zeros((0, height, width, 3), "float32")
    return stacked, good, bad


class _Unreadable(Exception):
    """A file that does not decode as an image; the message says why."""


def _decoder():
    """path -> uint8 (height, width, 3): TensorFlow's decoder where TensorFlow is installed
    (the training pipelines' own), else Pillow's."""
    try:
        import tensorflow as tf
    except ImportError:
        return _pillow_decode

    def decode(path):
        try:
            return read_image(path).numpy()
        except tf.errors.OpError as error:
            raise _Unreadable(decode_error_reason(error)) from error

    return decode


def _pillow_decode(path):
    from PIL import Image

    try:
        header = image_header(path)  # the pixel limit, before decoding; the EXIF orientation
        with Image.open(path) as image:
            if image.mode in ("I;16", "I;16B", "I;16L", "I"):  # 16 bits: scaled as TF does
                pixels = np.asarray(image, dtype="float64")
                image = Image.fromarray((pixels / 257.0).round().clip(0, 255).astype("uint8"))
            pixels = np.asarray(image.convert("RGB"), dtype="uint8")
        return orient_array(pixels, header.orientation if header is not None else 1)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        raise _Unreadable(str(error) or type(error).__name__) from error


def _folder_images(folder):
    found = []
    for directory, subfolders, files in os.walk(folder):
        subfolders[:] = [name for name in subfolders if not name.startswith(".")]
        found.extend(
            os.path.join(directory, name)
            for name in files
            if not name.startswith(".") and is_image_file(name)
        )
    return sorted(found)
