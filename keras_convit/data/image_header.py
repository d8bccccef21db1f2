"""What an image file's header says, read in plain Python before anything is decoded: the
size (PNG IHDR, JPEG SOFn, GIF logical screen, BMP info header) and the EXIF orientation
(JPEG APP1 "Exif", PNG eXIf). A decompression bomb is refused from its header, the way
Pillow's `Image.MAX_IMAGE_PIXELS` guard refuses it, before a byte of pixels is allocated."""

import dataclasses
import struct

# Pillow's default (`PIL.Image.MAX_IMAGE_PIXELS`, 1024 * 1024 * 1024 // 4 // 3): an RGB image
# of this many pixels is 256 MiB as uint8, 1 GiB as float32.
DEFAULT_MAX_IMAGE_PIXELS = 89_478_485

_ORIENTATION_TAG = 0x0112
# JPEG start-of-frame markers: C0-CF except DHT (C4), JPG (C8) and DAC (CC).
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


class ImageTooLargeError(ValueError):
    """An image whose header declares more pixels than the limit allows."""


@dataclasses.dataclass(frozen=True)
class ImageHeader:
    """`format` ("png", "jpeg", "gif", "bmp"), `width` and `height` as stored (before the
    orientation is applied) and the EXIF `orientation` (1 to 8; 1 when absent or invalid)."""

    format: str
    width: int
    height: int
    orientation: int = 1

    @property
    def pixels(self):
        return self.width * self.height


def read_header(contents):
    """The `ImageHeader` of the encoded image `contents` (bytes), or None when the format is
    none of PNG, JPEG, GIF, BMP or the header is cut short (the decoder then says why).

    >>> read_header(b"GIF89a" + (640).to_bytes(2, "little") + (480).to_bytes(2, "little"))
    ImageHeader(format='gif', width=640, height=480, orientation=1)
    """
    contents = bytes(contents)
    try:
        if contents.startswith(b"\x89PNG\r\n\x1a\n"):
            return _png(contents)
        if contents.startswith(b"\xff\xd8"):
            return _jpeg(contents)
        if contents[:6] in (b"GIF87a", b"GIF89a"):
            width, height = struct.unpack_from("<HH", contents, 6)
            return ImageHeader("gif", width, height)
        if contents.startswith(b"BM"):
            return _bmp(contents)
    except struct.error:
        return None
    return None


def check_pixels(header, max_pixels, name=None):
    """Raises `ImageTooLargeError` when `header` declares more than `max_pixels` pixels
    (None: no limit); `name` (a path), when given, leads the message."""
    if header is None or max_pixels is None or header.pixels <= max_pixels:
        return
    raise ImageTooLargeError(
        ("" if name is None else f"{name}: ")
        + f"{header.width}x{header.height} = {header.pixels:,} pixels, over the limit of "
        f"{max_pixels:,} (a decompression-bomb guard; raise it with --max-image-pixels on the "
        "command line, or keras_convit.data.images.set_max_image_pixels(n) or max_pixels=)"
    )


def _png(contents):
    if contents[12:16] != b"IHDR":
        return None
    width, height = struct.unpack_from(">II", contents, 16)
    orientation, offset = 1, 8
    # Walk the chunks up to the first IDAT: eXIf must come before it (PNG 1.5 extensions).
    while offset + 8 <= len(contents):
        length, kind = struct.unpack_from(">I4s", contents, offset)
        if kind in (b"IDAT", b"IEND"):
            break
        if kind == b"eXIf":
            orientation = _tiff_orientation(contents[offset + 8 : offset + 8 + length])
        offset += 12 + length
    return ImageHeader("png", width, height, orientation)


def _jpeg(contents):
    offset, orientation = 2, 1
    while offset + 4 <= len(contents):
        if contents[offset] != 0xFF:
            return None
        marker = contents[offset + 1]
        if marker == 0xFF:  # fill bytes before a marker
            offset += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # markers without a length
            offset += 2
            continue
        (length,) = struct.unpack_from(">H", contents, offset + 2)
        segment = contents[offset + 4 : offset + 2 + length]
        if marker == 0xE1 and segment.startswith(b"Exif\x00\x00") and orientation == 1:
            orientation = _tiff_orientation(segment[6:])
        elif marker in _SOF_MARKERS:
            height, width = struct.unpack_from(">HH", segment, 1)
            return ImageHeader("jpeg", width, height, orientation)
        elif marker == 0xDA:  # start of scan without a frame header
            return None
        offset += 2 + length
    return None


def _bmp(contents):
    (size,) = struct.unpack_from("<I", contents, 14)
    if size == 12:  # OS/2 BITMAPCOREHEADER
        width, height = struct.unpack_from("<HH", contents, 18)
    else:
        width, height = struct.unpack_from("<ii", contents, 18)
    return ImageHeader("bmp", abs(width), abs(height))  # negative height: stored top-down


def _tiff_orientation(tiff):
    """The Orientation tag of IFD0 of a TIFF (EXIF) block; 1 when absent or invalid."""
    try:
        order = {b"II": "<", b"MM": ">"}[tiff[:2]]
        (ifd,) = struct.unpack_from(order + "I", tiff, 4)
        (count,) = struct.unpack_from(order + "H", tiff, ifd)
        for index in range(count):
            tag, kind, _, value = struct.unpack_from(order + "HHI2s", tiff, ifd + 2 + 12 * index)
            if tag == _ORIENTATION_TAG and kind == 3:  # SHORT
                (orientation,) = struct.unpack(order + "H", value)
                return orientation if 1 <= orientation <= 8 else 1
    except (KeyError, struct.error):
        pass
    return 1
