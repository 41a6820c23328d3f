import hashlib
import io
import struct
import time
import zlib

import numpy as np
import pytest
from PIL import Image, ImageFile

from labelgate.core.errors import InvalidInput
from labelgate.server.imaging import (
    DecodedImage,
    decode_image,
    image_id_for,
    looks_like_image_id,
)

W, H = 40, 30
LIMIT = 10_000_000


def _pixels(seed: int = 0) -> np.ndarray:
    """A smooth gradient (so JPEG stays close) plus a little noise (so every pixel matters)."""
    y, x = np.mgrid[0:H, 0:W]
    base = np.stack([x * 255 // (W - 1), y * 255 // (H - 1), (x + y) * 255 // (W + H - 2)], -1)
    noise = np.random.default_rng(seed).integers(0, 8, size=(H, W, 3))
    return (base + noise).clip(0, 255).astype(np.uint8)


def _encode(img: Image.Image, fmt: str, **params) -> bytes:
    out = io.BytesIO()
    img.save(out, fmt, **params)
    return out.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _one_bit_png(width: int, height: int) -> bytes:
    """A valid all-black 1-bit PNG built by hand, so making a huge one costs no pixel memory."""
    rows = (b"\x00" + bytes((width + 7) // 8)) * height
    return b"".join([
        b"\x89PNG\r\n\x1a\n",
        _png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)),
        _png_chunk(b"IDAT", zlib.compress(rows)),
        _png_chunk(b"IEND", b""),
    ])


def _invalid_input(data: bytes, max_pixels: int = LIMIT) -> str:
    with pytest.raises(InvalidInput) as caught:
        decode_image(data, max_pixels)
    return str(caught.value)


LOSSLESS = {
    "PNG": {},
    "WEBP": {"lossless": True},
    "BMP": {},
    "TIFF": {},
    "TIFF-LZW": {"compression": "tiff_lzw"},
}


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "BMP", "TIFF"])
def test_every_format_decodes_to_rgb(fmt):
    source = _pixels()
    decoded = decode_image(_encode(Image.fromarray(source), fmt), LIMIT)
    assert isinstance(decoded, DecodedImage)
    assert decoded.pixels.shape == (H, W, 3)
    assert decoded.pixels.dtype == np.uint8
    assert decoded.pixels.flags.c_contiguous
    assert (decoded.width, decoded.height) == (W, H)
    assert looks_like_image_id(decoded.image_id)
    diff = np.abs(decoded.pixels.astype(int) - source.astype(int)).mean()
    assert diff < 4  # exact for the lossless ones, checked below


@pytest.mark.parametrize("name", sorted(LOSSLESS))
def test_lossless_formats_match_png_pixels_and_id(name):
    image = Image.fromarray(_pixels())
    reference = decode_image(_encode(image, "PNG"), LIMIT)
    decoded = decode_image(_encode(image, name.split("-")[0], **LOSSLESS[name]), LIMIT)
    np.testing.assert_array_equal(decoded.pixels, reference.pixels)
    np.testing.assert_array_equal(decoded.pixels, _pixels())
    assert decoded.image_id == reference.image_id


def test_jpeg_with_extra_pictures_mpo_is_accepted():
    image = Image.fromarray(_pixels())
    data = _encode(image, "MPO", save_all=True, append_images=[Image.fromarray(_pixels(1))])
    assert Image.open(io.BytesIO(data)).format == "MPO"
    decoded = decode_image(data, LIMIT)
    assert decoded.pixels.shape == (H, W, 3)
    assert np.abs(decoded.pixels.astype(int) - _pixels().astype(int)).mean() < 4


def test_greyscale_becomes_rgb():
    grey = _pixels()[:, :, 0]
    decoded = decode_image(_encode(Image.fromarray(grey, "L"), "PNG"), LIMIT)
    np.testing.assert_array_equal(decoded.pixels, np.repeat(grey[:, :, None], 3, axis=2))


def test_one_bit_becomes_rgb():
    decoded = decode_image(_one_bit_png(10, 4), LIMIT)
    assert decoded.pixels.shape == (4, 10, 3)
    assert not decoded.pixels.any()


def test_sixteen_bit_greyscale_is_scaled_not_clipped():
    grey16 = np.array([[0, 255, 256, 1000, 40000, 65535]], dtype=np.uint16)
    image = Image.fromarray(grey16)
    assert image.mode == "I;16"
    decoded = decode_image(_encode(image, "PNG"), LIMIT)
    expected = np.array([0, 0, 1, 3, 156, 255], dtype=np.uint8)
    np.testing.assert_array_equal(decoded.pixels[0], np.repeat(expected[:, None], 3, axis=1))


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_alpha_is_dropped(mode):
    rgba = np.dstack([_pixels(), np.arange(H * W, dtype=np.uint8).reshape(H, W)])
    image = Image.fromarray(rgba, "RGBA").convert(mode)
    decoded = decode_image(_encode(image, "PNG"), LIMIT)
    np.testing.assert_array_equal(decoded.pixels, np.asarray(image.convert("RGB")))
    if mode == "RGBA":
        np.testing.assert_array_equal(decoded.pixels, _pixels())


def test_palette_becomes_rgb():
    image = Image.fromarray(_pixels()).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    data = _encode(image, "PNG")
    assert Image.open(io.BytesIO(data)).mode == "P"
    decoded = decode_image(data, LIMIT)
    np.testing.assert_array_equal(decoded.pixels, np.asarray(image.convert("RGB")))


def test_cmyk_becomes_rgb():
    image = Image.fromarray(_pixels()).convert("CMYK")
    decoded = decode_image(_encode(image, "TIFF"), LIMIT)
    np.testing.assert_array_equal(decoded.pixels, np.asarray(image.convert("RGB")))


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_exif_orientation_is_applied(fmt):
    source = _pixels()
    image = Image.fromarray(source)
    exif = image.getexif()
    exif[0x0112] = 6  # the camera was turned: rotate 90 degrees clockwise to display
    decoded = decode_image(_encode(image, fmt, exif=exif), LIMIT)
    assert (decoded.width, decoded.height) == (H, W)
    upright = np.rot90(source, k=-1)
    diff = np.abs(decoded.pixels.astype(int) - upright.astype(int)).mean()
    assert diff == 0 if fmt == "PNG" else diff < 4
    assert decoded.pixels.flags.c_contiguous


def test_empty_bytes():
    assert "image is empty" in _invalid_input(b"")


def test_garbage_bytes():
    garbage = np.random.default_rng(0).integers(0, 256, 500, dtype=np.uint8).tobytes()
    message = _invalid_input(b"\x13\x37" + garbage)
    assert "not a PNG, JPEG, WebP, BMP or TIFF image" in message
    assert "502 bytes" in message


def test_text_is_shown_and_base64_gets_a_hint():
    assert "b'<html><body>" in _invalid_input(b"<html><body>Not found</body></html>")
    base64_png = b"iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"
    assert "base64" in _invalid_input(base64_png)


def test_truncated_png():
    data = _encode(Image.fromarray(_pixels()), "PNG")
    assert "truncated or corrupt" in _invalid_input(data[: len(data) * 2 // 3])


def test_truncated_jpeg():
    noise = np.random.default_rng(0).integers(0, 256, (200, 200, 3), dtype=np.uint8)
    data = _encode(Image.fromarray(noise), "JPEG")
    assert "truncated or corrupt" in _invalid_input(data[: len(data) // 2])


def test_corrupt_png_pixel_data():
    data = bytearray(_encode(Image.fromarray(_pixels()), "PNG"))
    start = data.index(b"IDAT") + 4
    data[start + 10 : start + 60] = bytes(50)
    assert "truncated or corrupt" in _invalid_input(bytes(data))


def test_png_with_broken_header():
    assert "starts like a PNG file" in _invalid_input(_one_bit_png(0, 5))
    assert "starts like a PNG file" in _invalid_input(b"\x89PNG\r\n\x1a\n\x00\x00")


def test_gif_is_named_as_unsupported():
    message = _invalid_input(_encode(Image.fromarray(_pixels()), "GIF"))
    assert "GIF images are not supported" in message
    assert "PNG, JPEG, WebP, BMP or TIFF" in message


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_bomb_is_rejected_from_the_header(monkeypatch):
    data = _one_bit_png(10_000, 10_000)
    assert len(data) < 100_000

    def no_decoding(self):
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    start = time.perf_counter()
    message = _invalid_input(data, max_pixels=1_000_000)
    assert time.perf_counter() - start < 1
    assert "10000 x 10000 = 100000000 pixels" in message
    assert "limit of 1000000 (--max-image-pixels)" in message


def test_pixel_limit_is_inclusive():
    data = _one_bit_png(10, 10)
    assert decode_image(data, max_pixels=100).width == 10
    assert "limit of 99" in _invalid_input(data, max_pixels=99)


def test_pillow_decompression_bomb_error_is_invalid_input(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # Pillow raises above twice this
    message = _invalid_input(_one_bit_png(20, 20), max_pixels=LIMIT)
    assert "too large" in message
    assert f"at most {LIMIT} pixels (--max-image-pixels)" in message


def test_pixels_are_read_only():
    decoded = decode_image(_encode(Image.fromarray(_pixels()), "PNG"), LIMIT)
    with pytest.raises(ValueError):
        decoded.pixels[0, 0, 0] = 1


def test_same_bytes_same_id_and_different_pixels_different_id():
    data = _encode(Image.fromarray(_pixels()), "PNG")
    assert decode_image(data, LIMIT).image_id == decode_image(data, LIMIT).image_id
    other = _encode(Image.fromarray(_pixels(seed=1)), "PNG")
    assert decode_image(other, LIMIT).image_id != decode_image(data, LIMIT).image_id


def test_image_id_covers_shape_and_hashes_as_documented():
    pixels = np.arange(24, dtype=np.uint8).reshape(2, 4, 3)
    expected = hashlib.blake2b(b"2x4x3:" + pixels.tobytes(), digest_size=16).hexdigest()
    assert image_id_for(pixels) == "img_" + expected
    assert image_id_for(pixels.reshape(4, 2, 3)) != image_id_for(pixels)


def test_image_id_of_a_non_contiguous_view():
    pixels = _pixels()
    view = pixels[:, ::-1]
    assert image_id_for(view) == image_id_for(np.ascontiguousarray(view))


def test_looks_like_image_id():
    assert looks_like_image_id("img_" + "0123456789abcdef" * 2)
    assert not looks_like_image_id("img_" + "0123456789ABCDEF" * 2)
    assert not looks_like_image_id("img_" + "0" * 31)
    assert not looks_like_image_id("0" * 32)
    assert not looks_like_image_id("img_" + "0" * 32 + "\n")


def test_broken_webp_header_is_named_but_other_riff_is_not():
    assert "starts like a WebP file" in _invalid_input(b"RIFF\x10\x00\x00\x00WEBPVP8 ")
    assert "starts like" not in _invalid_input(b"RIFF\x10\x00\x00\x00WAVEfmt ")
