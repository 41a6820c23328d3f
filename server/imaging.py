"""Decoding and validating uploaded images into RGB pixels with a content-derived id."""

from __future__ import annotations

import hashlib
import io
import re
import struct
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps

from labelgate.core.errors import InvalidInput
from labelgate.server.quoting import quoted

SUPPORTED = "PNG, JPEG, WebP, BMP or TIFF"
# The only Pillow decoders that ever see uploaded bytes. The JPEG one also opens MPO (a JPEG
# with extra embedded pictures, common from phones): its first frame is the photo.
_DECODERS = ("PNG", "JPEG", "WEBP", "BMP", "TIFF")
# What Pillow may raise on malformed input, besides DecompressionBombError.
_DECODE_ERRORS = (OSError, ValueError, EOFError, SyntaxError, IndexError, struct.error)
_IMAGE_ID = re.compile(r"img_[0-9a-f]{32}")
_SIGNATURES = {
    b"\x89PNG\r\n\x1a\n": "PNG",
    b"\xff\xd8\xff": "JPEG",
    b"BM": "BMP",
    b"II*\x00": "TIFF",
    b"MM\x00*": "TIFF",
}
# Base64 of the signatures above, and data URLs: a common client mistake.
_BASE64_PREFIXES = (b"data:image/", b"iVBORw0KGgo", b"/9j/", b"UklGR", b"SUkqA", b"TU0AK")


@dataclass(frozen=True, eq=False)  # eq on an ndarray field would raise; compare image_id
class DecodedImage:
    pixels: np.ndarray  # H x W x 3 uint8 RGB, C-contiguous, read-only
    image_id: str

    @property
    def width(self) -> int:
        return self.pixels.shape[1]

    @property
    def height(self) -> int:
        return self.pixels.shape[0]


def decode_image(data: bytes, max_pixels: int) -> DecodedImage:
    """Decode a PNG, JPEG, WebP, BMP or TIFF upload into upright RGB pixels.

    The pixel limit is checked on the header's size, before any pixel is decoded, so a small
    file that expands to a huge image costs nothing. Raises InvalidInput with a message meant
    for the caller.
    """
    if not data:
        raise InvalidInput(f"image is empty: send the encoded bytes of a {SUPPORTED} file")
    img = _open(data, max_pixels)
    _check_size(*img.size, max_pixels)
    _load(img, max_pixels)
    pixels = _to_rgb(img)
    pixels.setflags(write=False)
    return DecodedImage(pixels=pixels, image_id=image_id_for(pixels))


def image_id_for(pixels: np.ndarray) -> str:
    """Content hash of decoded H x W x C uint8 pixels: equal pixels give equal ids whatever
    file format carried them."""
    if pixels.ndim != 3 or pixels.dtype != np.uint8:
        raise ValueError(f"expected H x W x C uint8 pixels, got {pixels.shape} {pixels.dtype}")
    h, w, c = pixels.shape
    digest = hashlib.blake2b(f"{h}x{w}x{c}:".encode(), digest_size=16)
    digest.update(memoryview(np.ascontiguousarray(pixels)))
    return "img_" + digest.hexdigest()


def looks_like_image_id(value: str) -> bool:
    return _IMAGE_ID.fullmatch(value) is not None  # not re.match + "$": that allows "\n"


def _open(data: bytes, max_pixels: int) -> Image.Image:
    """Read the header only, with nothing but the supported decoders."""
    try:
        return Image.open(io.BytesIO(data), formats=_DECODERS)
    except Image.DecompressionBombError as err:
        raise _too_large(max_pixels, err) from None
    except _DECODE_ERRORS:
        raise _unrecognised(data) from None


def _unrecognised(data: bytes) -> InvalidInput:
    claimed = _claimed_format(data)
    if claimed is not None:
        return InvalidInput(
            f"the data starts like a {claimed} file but its header is invalid or truncated "
            f"({len(data)} bytes received)"
        )
    other = _identify_unsupported(data)
    if other is not None:
        return InvalidInput(f"{other} images are not supported: send a {SUPPORTED} file")
    hint = ""
    if data.lstrip().startswith(_BASE64_PREFIXES):
        hint = " (this looks like base64 text: send the raw file bytes instead)"
    return InvalidInput(
        f"could not decode the image: received {len(data)} bytes starting with "
        f"{quoted(data[:16])}, which is not a {SUPPORTED} image{hint}"
    )


def _claimed_format(data: bytes) -> str | None:
    """The supported format whose signature the data starts with, if any."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WebP"
    return next((fmt for sig, fmt in _SIGNATURES.items() if data.startswith(sig)), None)


def _identify_unsupported(data: bytes) -> str | None:
    """Name of a format Pillow recognises but this service does not accept, if any."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            return img.format
    except Exception:  # only used to word an error message: any failure means "unknown"
        return None


def _check_size(width: int, height: int, max_pixels: int) -> None:
    if width <= 0 or height <= 0:
        raise InvalidInput(f"image is {width} x {height} pixels: it has no pixels")
    if width * height > max_pixels:
        raise InvalidInput(
            f"image is {width} x {height} = {width * height} pixels, over this server's "
            f"limit of {max_pixels} (--max-image-pixels)"
        )


def _too_large(max_pixels: int, err: Exception) -> InvalidInput:
    return InvalidInput(
        f"image is too large to decode: {err} This server accepts at most {max_pixels} "
        "pixels (--max-image-pixels)"
    )


def _load(img: Image.Image, max_pixels: int) -> None:
    """Decode the pixels, then turn them upright per the EXIF orientation tag."""
    try:
        img.load()
        ImageOps.exif_transpose(img, in_place=True)
    except Image.DecompressionBombError as err:
        raise _too_large(max_pixels, err) from None
    except _DECODE_ERRORS as err:
        raise InvalidInput(
            f"the {img.format} image is truncated or corrupt and could not be decoded ({err})"
        ) from None


def _to_rgb(img: Image.Image) -> np.ndarray:
    """H x W x 3 uint8 RGB. Alpha is dropped (as `convert("RGB")` does in SAM 2 examples).

    16-bit greyscale is scaled to 8 bits here because Pillow's convert clips it at 255,
    which would turn most of the image white; Pillow already scales 16-bit RGB this way.
    """
    if img.mode.startswith("I;16"):
        grey = (np.asarray(img).astype(np.uint16) >> 8).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(grey[:, :, None], 3, axis=2))
    if img.mode != "RGB":
        try:
            img = img.convert("RGB")
        except ValueError as err:
            raise InvalidInput(
                f"cannot convert a {img.mode} image to RGB ({err}): send an RGB or greyscale "
                f"{SUPPORTED} file"
            ) from None
    return np.asarray(img)
