"""Image decoding: EXIF orientation honoured, images over the pixel limit refused from their
header before decoding (the scan lists them), on real files made with Pillow."""

import io
import struct
import zlib

import numpy as np
import pytest

from keras_convit.data import images, scan_folder
from keras_convit.data.image_header import ImageTooLargeError, read_header

tf = pytest.importorskip("tensorflow")
Image = pytest.importorskip("PIL.Image")
ImageOps = pytest.importorskip("PIL.ImageOps")

# Pillow's table (`PIL.ImageOps.exif_transpose`), written out as the reference.
PILLOW_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def _oriented(path, orientation, kind="JPEG"):
    """A 12x8 (width x height) image saved with the EXIF Orientation tag `orientation`."""
    pixels = np.random.default_rng(orientation).integers(0, 256, (8, 12, 3), dtype="uint8")
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(pixels).save(path, kind, exif=exif, quality=95)
    return path


def _bomb_png(path, width=20000, height=20000):
    """A valid 1-bit greyscale PNG of zeros: 20000x20000 is 400 million pixels in ~50 kB."""

    def chunk(kind, data):
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    rows = zlib.compress(bytes(height * (1 + (width + 7) // 8)), 9)
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")
    )
    return path


@pytest.mark.parametrize("orientation", range(1, 9))
def test_each_exif_orientation_decodes_upright(tmp_path, orientation):
    path = str(_oriented(tmp_path / "photo.jpg", orientation))
    stored = tf.io.decode_jpeg(tf.io.read_file(path)).numpy()  # the pixels as stored
    expected = Image.fromarray(stored)
    if orientation != 1:
        expected = expected.transpose(PILLOW_TRANSPOSE[orientation])
    decoded = images.read_image(path).numpy()
    np.testing.assert_array_equal(decoded, np.asarray(expected))
    # The plain-Python pair for decoders without TensorFlow (predict's Pillow path).
    header = images.image_header(path)
    assert (header.orientation, header.width, header.height) == (orientation, 12, 8)
    np.testing.assert_array_equal(images.orient_array(stored, orientation), decoded)
    assert decoded.shape == ((12, 8, 3) if orientation >= 5 else (8, 12, 3))
    # Pillow's own decoder and exif_transpose agree within JPEG decoders' rounding.
    with Image.open(path) as opened:
        pillow = np.asarray(ImageOps.exif_transpose(opened))
    assert np.abs(decoded.astype(int) - pillow).max() <= 8
    # Inside tf.data (a graph: the header is read by a py_function) as eagerly.
    piped = next(iter(tf.data.Dataset.from_tensors(path).map(images.read_image))).numpy()
    np.testing.assert_array_equal(piped, decoded)


def test_png_exif_orientation_and_headers(tmp_path):
    path = _oriented(tmp_path / "photo.png", 6, kind="PNG")
    assert read_header(path.read_bytes()).orientation == 6
    assert images.read_image(str(path)).shape == (12, 8, 3)
    for kind, mode in [("GIF", "P"), ("BMP", "RGB"), ("JPEG", "L"), ("PNG", "RGBA")]:
        buffer = io.BytesIO()
        Image.new(mode, (13, 7)).save(buffer, kind)
        header = read_header(buffer.getvalue())
        assert (header.format, header.width, header.height) == (kind.lower(), 13, 7)
    assert read_header(b"not an image") is None


def test_an_image_over_the_pixel_limit_is_refused_before_decoding(tmp_path):
    (tmp_path / "data" / "ant").mkdir(parents=True)
    bomb = _bomb_png(tmp_path / "data" / "ant" / "bomb.png")
    small = tmp_path / "data" / "bee" / "small.png"
    small.parent.mkdir()
    Image.new("RGB", (32, 32)).save(small)
    assert bomb.stat().st_size < 100_000
    with pytest.raises(tf.errors.InvalidArgumentError, match="20000x20000 = 400,000,000 pixels"):
        images.read_image(str(bomb))
    with pytest.raises(tf.errors.InvalidArgumentError, match="over the limit of 89,478,485"):
        next(iter(tf.data.Dataset.from_tensors(str(bomb)).map(images.read_image)))
    report = scan_folder(str(tmp_path / "data"), progress=False)
    assert [(path, reason.split(" (")[0]) for path, reason in report.unreadable] == [
        (str(bomb), "20000x20000 = 400,000,000 pixels, over the limit of 89,478,485")
    ]
    # A smaller limit, by argument or by the module setting, invalidates the cache's verdicts.
    assert len(scan_folder(str(tmp_path / "data"), progress=False, max_pixels=1000).unreadable) == 2
    previous = images.set_max_image_pixels(None)
    try:
        assert images.max_image_pixels() is None
        assert images.image_error(str(small)) is None
        assert "1,024 pixels, over the limit of 1,000" in images.image_error(str(small), 1000)
        with pytest.raises(ImageTooLargeError, match="32x32 = 1,024 pixels"):
            images.image_header(str(small), max_pixels=1000)
    finally:
        images.set_max_image_pixels(previous)
    with pytest.raises(ValueError, match="max_pixels=0"):
        images.set_max_image_pixels(0)


def test_the_folder_pipeline_turns_images_upright_from_the_scan(tmp_path):
    """The scan keeps each file's orientation (cached), so tf.data reads no header."""
    from keras_convit.data import folder_source

    for orientation in (1, 6, 8):
        (tmp_path / f"class{orientation}").mkdir()
        _oriented(tmp_path / f"class{orientation}" / "photo.jpg", orientation)
    for _ in range(2):  # decoded, then from the cache
        source = folder_source(str(tmp_path), test_fraction=0.0)
        assert sorted(source.scan.orientations.values()) == [6, 8]
        for image, label in source.make("train"):
            name = source.class_names[int(label)]
            path = str(tmp_path / name / "photo.jpg")
            np.testing.assert_array_equal(image.numpy(), images.read_image(path).numpy())
            assert image.shape == ((8, 12, 3) if name == "class1" else (12, 8, 3))
