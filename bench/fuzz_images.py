"""Odd and broken image uploads for the fuzzer, each with what the server must make of it.

Every sample says whether it must decode (and to what upright size), must be refused as a bad
image, or may go either way (a corrupted byte may land where no decoder looks). Pixels come from
a few seeds, so the same sample recurs and the server's caches keep the fuzz run cheap.
"""

from __future__ import annotations

import base64
import functools
import io
import math
import struct
import zlib
from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st
from PIL import Image

# Formats the service decodes, with the Pillow modes each can store.
SUPPORTED_MODES = {
    "PNG": ("1", "L", "LA", "P", "P+transparency", "RGB", "RGBA", "I;16"),
    "JPEG": ("L", "RGB", "CMYK"),
    "WEBP": ("L", "RGB", "RGBA"),
    "BMP": ("1", "L", "P", "RGB", "RGBA"),
    "TIFF": ("1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "I;16", "I", "F", "YCbCr", "LAB"),
}
# Multi-frame files of the supported formats: the first frame is the image.
ANIMATED = ("PNG", "WEBP", "TIFF", "MPO")
UNSUPPORTED = ("GIF", "ICO", "PCX", "TGA", "PPM", "SGI", "IM", "XBM", "QOI", "DDS", "JPEG2000", "EPS", "SPIDER", "PDF")
TINY_SIZES = ((1, 1), (2, 1), (1, 3), (7, 5), (16, 16), (40, 24))
# Largest JPEG and WebP sides; PNG, BMP and TIFF carry the extreme shapes.
_SIDE_LIMITS = {"JPEG": 65_500, "WEBP": 16_383, "MPO": 65_500}
# Real pixels are only built up to this many (header-only samples go past any limit for free).
AFFORDABLE_PIXELS = 1_000_000
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class FuzzImage:
    data: bytes
    label: str
    decodes: bool | None  # True: must decode; False: must be refused; None: either
    size: tuple[int, int] | None = None  # (width, height) once decoded and turned upright


def images(max_pixels: int) -> st.SearchStrategy[FuzzImage]:
    return st.one_of(
        supported_images(max_pixels),
        broken_images(),
        header_bombs(max_pixels),
        unsupported_images(),
        junk(),
    )


# --- files the service must decode ---------------------------------------------------------------


def supported_images(max_pixels: int) -> st.SearchStrategy[FuzzImage]:
    """Every mode of every supported format at tiny sizes, multi-frame files, PNGs Pillow cannot
    write, and the extreme shapes. One pixel seed: each distinct file costs the server an encode."""
    plain = st.sampled_from(sorted(SUPPORTED_MODES)).flatmap(
        lambda fmt: st.builds(
            plain_image,
            st.just(fmt),
            st.sampled_from(SUPPORTED_MODES[fmt]),
            st.sampled_from(TINY_SIZES),
            st.just(0),
            st.sampled_from((1, 1, 1, 3, 6, 8)) if fmt in ("JPEG", "PNG", "WEBP") else st.just(1),
        )
    )
    return st.one_of(
        plain,
        extreme_images(max_pixels),
        st.builds(_animated, st.sampled_from(ANIMATED), st.sampled_from(TINY_SIZES), st.just(0)),
        st.builds(_raw_png, st.sampled_from(TINY_SIZES), st.sampled_from(_RAW_PNG_KINDS)),
    )


# (PNG colour type, bit depth): grey, RGB, grey + alpha, RGBA at 16 bits; grey at 2 and 4 bits.
_RAW_PNG_KINDS = ((0, 16), (2, 16), (4, 16), (6, 16), (0, 2), (0, 4))


def extreme_images(max_pixels: int) -> st.SearchStrategy[FuzzImage]:
    """100000 x 1 and 1 x 100000 (or as long as the pixel limit and the format allow), and where the
    limit is affordable, exactly at it: a row, and a square."""
    return st.sampled_from(sorted(SUPPORTED_MODES)).flatmap(
        lambda fmt: st.builds(plain_image, st.just(fmt), st.just("RGB"), _extreme_sizes(fmt, max_pixels), st.just(0),
                              st.just(1)))


def _extreme_sizes(fmt: str, max_pixels: int) -> st.SearchStrategy[tuple[int, int]]:
    side = _SIDE_LIMITS.get(fmt, 1 << 31)
    sizes = [(min(100_000, max_pixels, side), 1), (1, min(100_000, max_pixels, side))]
    if max_pixels <= AFFORDABLE_PIXELS:
        sizes += [(min(max_pixels, side), 1), (math.isqrt(max_pixels), math.isqrt(max_pixels))]
    return st.sampled_from(sizes)


def _pixels(width: int, height: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _converted(pixels: np.ndarray, mode: str) -> Image.Image:
    image = Image.fromarray(pixels)
    if mode == "P+transparency":
        image = image.convert("P")
        image.info["transparency"] = 0
        return image
    return image.convert(mode)


def _save(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


@functools.lru_cache(maxsize=256)
def plain_image(fmt: str, mode: str, size: tuple[int, int], seed: int, orientation: int) -> FuzzImage:
    width, height = size
    options = {}
    if orientation != 1:
        exif = Image.Exif()
        exif[0x0112] = orientation
        options["exif"] = exif.tobytes()
    data = _save(_converted(_pixels(width, height, seed), mode), fmt, **options)
    upright = (height, width) if orientation in (5, 6, 7, 8) else (width, height)
    return FuzzImage(data, f"{fmt}/{mode} {width}x{height} orientation {orientation}", True, upright)


@functools.lru_cache(maxsize=64)
def _animated(fmt: str, size: tuple[int, int], seed: int) -> FuzzImage:
    width, height = size
    frames = [Image.fromarray(_pixels(width, height, seed + i)) for i in range(3)]
    data = _save(frames[0], fmt, save_all=True, append_images=frames[1:])
    return FuzzImage(data, f"animated {fmt} {width}x{height} x3 frames", True, size)


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _png(width: int, height: int, color_type: int, depth: int, idat: bytes | None) -> bytes:
    header = _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, color_type, 0, 0, 0))
    return _PNG_SIGNATURE + header + (_chunk(b"IDAT", idat) if idat is not None else b"") + _chunk(b"IEND", b"")


@functools.lru_cache(maxsize=64)
def _raw_png(size: tuple[int, int], kind: tuple[int, int]) -> FuzzImage:
    """16-bit RGB / RGBA / grey+alpha and 2- and 4-bit greys, which Pillow reads but cannot write."""
    (width, height), (color_type, depth) = size, kind
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[color_type]
    row_bytes = math.ceil(width * channels * depth / 8)
    rows = np.random.default_rng(width * height).integers(0, 256, (height, row_bytes), dtype=np.uint8)
    raw = np.concatenate([np.zeros((height, 1), np.uint8), rows], axis=1).tobytes()  # filter byte 0 per row
    data = _png(width, height, color_type, depth, zlib.compress(raw))
    return FuzzImage(data, f"PNG color type {color_type} at {depth} bits {width}x{height}", True, size)


# --- files it must refuse, or may -----------------------------------------------------------------


def unsupported_images() -> st.SearchStrategy[FuzzImage]:
    return st.builds(_unsupported, st.sampled_from(UNSUPPORTED + ("animated GIF",)))


@functools.lru_cache(maxsize=64)
def _unsupported(fmt: str) -> FuzzImage:
    mode = {"XBM": "1", "SPIDER": "F", "ICO": "RGBA"}.get(fmt, "RGB")
    frames = [Image.fromarray(_pixels(7, 5, i)).convert(mode) for i in range(3)]
    if fmt == "animated GIF":
        return FuzzImage(_save(frames[0], "GIF", save_all=True, append_images=frames[1:]), fmt, False)
    return FuzzImage(_save(frames[0], fmt), f"{fmt} (unsupported)", False)


def broken_images() -> st.SearchStrategy[FuzzImage]:
    base = st.builds(plain_image, st.sampled_from(sorted(SUPPORTED_MODES)), st.just("RGB"),
                     st.sampled_from(TINY_SIZES[3:]), st.just(0), st.just(1))
    return st.builds(_broken, base, st.sampled_from(("truncated", "header only", "flipped", "zeroed tail",
                                                     "appended", "prepended", "base64", "data URL")),
                     st.floats(0, 1), st.integers(0, 2**32 - 1))


def _broken(base: FuzzImage, how: str, fraction: float, seed: int) -> FuzzImage:
    data, name = base.data, base.label.split()[0]
    if how == "truncated":
        cut = min(len(data) - 1, max(1, int(len(data) * fraction)))
        return FuzzImage(data[:cut], f"{name} truncated to {cut}/{len(data)} bytes", None)
    if how == "header only":
        return FuzzImage(data[: 1 + int(7 * fraction)], f"{name} first bytes only", False)
    if how == "flipped":
        rng = np.random.default_rng(seed)
        corrupted = bytearray(data)
        for position in rng.integers(0, len(data), 1 + int(8 * fraction)):
            corrupted[position] ^= int(rng.integers(1, 256))
        return FuzzImage(bytes(corrupted), f"{name} with flipped bytes (seed {seed})", None)
    if how == "zeroed tail":
        keep = int(len(data) * fraction)
        return FuzzImage(data[:keep] + bytes(len(data) - keep), f"{name} zeroed after byte {keep}", None)
    if how == "appended":
        junk_bytes = np.random.default_rng(seed).bytes(1 + int(1000 * fraction))
        return FuzzImage(data + junk_bytes, f"{name} + trailing junk", None)
    if how == "prepended":
        return FuzzImage(b"\0junk" + data, f"{name} after 5 junk bytes", False)
    encoded = base64.b64encode(data)
    if how == "data URL":
        encoded = b"data:image/png;base64," + encoded
    return FuzzImage(encoded, f"{name} as {how} text", False)


def header_bombs(max_pixels: int) -> st.SearchStrategy[FuzzImage]:
    """Headers that claim a size and carry no (or a little) pixel data: over the limit, zero, or
    under the limit with the pixels missing. All must be refused before any large allocation."""
    over = math.isqrt(max_pixels) + 1
    sizes = st.sampled_from(((over, over), (max_pixels + 1, 1), (1, max_pixels + 1), (2**31 - 1, 2**31 - 1),
                             (0, 0), (0, 5), (5, 0), (8, 8), (64, 1)))
    kinds = st.sampled_from(("PNG", "PNG+zeros", "BMP", "BMP top-down", "JPEG", "TIFF", "WEBP", "GIF"))
    return st.builds(_header_only, kinds, sizes, st.just(max_pixels))


@functools.lru_cache(maxsize=128)
def _header_only(fmt: str, size: tuple[int, int], max_pixels: int) -> FuzzImage:
    width, height = size
    label = f"{fmt} header only claiming {width}x{height}"
    if fmt == "PNG+zeros" and 0 < width * height <= max_pixels and height * (3 * width + 1) <= 1 << 20:
        # The zeros fill every row of a size this small: a black image, or an error about the extra data.
        return FuzzImage(_png(width, height, 2, 8, zlib.compress(bytes(1 << 20), 9)), label, None)
    if fmt.startswith("PNG"):
        zeros = zlib.compress(bytes(1 << 20), 9) if fmt == "PNG+zeros" else None  # 1 MiB of zeros in ~1 kB
        data = _png(min(width, 2**31 - 1), min(height, 2**31 - 1), 2, 8, zeros)
    elif fmt.startswith("BMP"):
        signed_height = -height if fmt.endswith("top-down") else height
        info = struct.pack("<IiiHHIIiiII", 40, _int32(width), _int32(signed_height), 1, 24, 0, 0, 2835, 2835, 0, 0)
        data = b"BM" + struct.pack("<IHHI", 54, 0, 0, 54) + info
    elif fmt == "JPEG":
        components = b"\x01\x11\x00\x02\x11\x00\x03\x11\x00"  # 3 x (id, sampling, quantization table)
        frame = struct.pack(">BHHB", 8, min(height, 65535), min(width, 65535), 3) + components
        data = b"\xff\xd8\xff\xc0" + struct.pack(">H", len(frame) + 2) + frame + b"\xff\xd9"
    elif fmt == "TIFF":
        data = _tiff_header(min(width, 2**32 - 1), min(height, 2**32 - 1))
    elif fmt == "WEBP":
        canvas = bytes(4) + ((max(width, 1) - 1) & 0xFFFFFF).to_bytes(3, "little") + (
            (max(height, 1) - 1) & 0xFFFFFF).to_bytes(3, "little")
        body = b"WEBP" + b"VP8X" + struct.pack("<I", len(canvas)) + canvas
        data = b"RIFF" + struct.pack("<I", len(body)) + body
    else:
        data = b"GIF89a" + struct.pack("<HH", min(width, 65535), min(height, 65535)) + b"\x00\x00\x00;"
    return FuzzImage(data, label, False)


def _int32(value: int) -> int:
    return max(-(2**31), min(2**31 - 1, value))


def _tiff_header(width: int, height: int) -> bytes:
    """A little-endian TIFF with one IFD (8-bit grey, one strip) whose strip lies past the end."""
    tags = [(256, 4, width), (257, 4, height), (258, 3, 8), (259, 3, 1), (262, 3, 1), (273, 4, 4096), (277, 3, 1),
            (278, 4, height), (279, 4, min(width * height, 2**32 - 1))]
    entries = b"".join(struct.pack("<HHII", tag, kind, 1, value) for tag, kind, value in tags)
    ifd = struct.pack("<H", len(tags)) + entries
    return b"II*\x00" + struct.pack("<I", 8) + ifd + struct.pack("<I", 0)


def junk() -> st.SearchStrategy[FuzzImage]:
    """Bytes that are no image: short arbitrary ones, text, and large random blobs."""
    return st.one_of(
        st.binary(min_size=1, max_size=64).map(lambda data: FuzzImage(data, f"{len(data)} arbitrary bytes", False)),
        st.sampled_from((b"hello", b"<svg xmlns='http://www.w3.org/2000/svg'/>", b"%PDF-1.4", b"\x00" * 4096))
        .map(lambda data: FuzzImage(data, f"not an image: {data[:12]!r}", False)),
        st.builds(_random_blob, st.sampled_from((1_000, 100_000)), st.integers(0, 3)),
    )


@functools.lru_cache(maxsize=16)
def _random_blob(size: int, seed: int) -> FuzzImage:
    return FuzzImage(b"\x00" + np.random.default_rng(seed).bytes(size - 1), f"{size} random bytes", False)
