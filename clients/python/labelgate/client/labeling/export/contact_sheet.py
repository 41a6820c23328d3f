"""A contact sheet: one PNG with a grid of sample images, their masks and boxes drawn, for a person
to eyeball a labeling run before trusting it.

The sample is the images whose keys hash lowest (sha256), so it is the same on every run and every
machine, and picked while streaming with only the sample held in memory.
"""

from __future__ import annotations

import hashlib
import heapq
import math
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from labelgate.client.labeling.export.common import decode_mask, image_file
from labelgate.client.labeling.records import LabeledImage, Provenance
from labelgate.client.overlay import draw_overlay
from PIL import Image, ImageDraw, ImageFont

CAPTION_HEIGHT = 14
PLACEHOLDER = (64, 64, 64)


def export_contact_sheet(images: Iterable[LabeledImage], classes: Sequence[str], provenance: Provenance,
                         out_dir: Path, *, sample: int = 16, cell: int = 256, image_root: Path | str | None = None,
                         **_) -> list[Path]:
    """`sample` images, each drawn into a `cell` x `cell` square with its key under it; an image
    whose file cannot be read is a grey square."""
    if sample < 1 or cell < 16:
        raise ValueError(f"sample must be >= 1 and cell >= 16, got sample={sample}, cell={cell}")
    chosen = sample_images(images, sample)
    columns = max(1, math.ceil(math.sqrt(len(chosen))))
    rows = max(1, math.ceil(len(chosen) / columns))
    sheet = Image.new("RGB", (columns * cell, rows * (cell + CAPTION_HEIGHT)), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    for position, image in enumerate(chosen):
        left, top = (position % columns) * cell, (position // columns) * (cell + CAPTION_HEIGHT)
        tile = _tile(image, image_root, cell)
        sheet.paste(tile, (left + (cell - tile.width) // 2, top + (cell - tile.height) // 2))
        draw.text((left + 2, top + cell), _fit(draw, font, f"{image.key} ({len(image.objects)})", cell - 4),
                  fill=(0, 0, 0), font=font)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "contact_sheet.png"
    partial = path.with_name(path.name + ".partial")
    sheet.save(partial, format="PNG")
    partial.replace(path)
    return [path]


def sample_images(images: Iterable[LabeledImage], count: int) -> list[LabeledImage]:
    """The `count` images with the lowest sha256(key), in that order."""
    heap: list[tuple[bytes, int, LabeledImage]] = []  # max-heap on the digest, by negating its bytes
    for arrival, image in enumerate(images):
        digest = hashlib.sha256(image.key.encode()).digest()
        entry = (bytes(255 - b for b in digest), arrival, image)
        if len(heap) < count:
            heapq.heappush(heap, entry)
        elif entry[0] > heap[0][0]:
            heapq.heapreplace(heap, entry)
    return [image for _, _, image in sorted(heap, key=lambda entry: entry[0], reverse=True)]


def _tile(image: LabeledImage, image_root, cell: int) -> Image.Image:
    path = image_file(image, image_root)
    pixels = None
    if path is not None:
        try:
            with Image.open(path) as opened:
                pixels = np.asarray(opened.convert("RGB"))
        except OSError:
            pixels = None
    if pixels is None or pixels.shape[:2] != (image.height, image.width):
        return Image.new("RGB", (cell, cell), PLACEHOLDER)
    with_masks = [obj for obj in image.objects if obj.rle is not None]
    boxes_only = [obj for obj in image.objects if obj.rle is None]
    ordered = with_masks + boxes_only
    overlay = draw_overlay(pixels, [decode_mask(obj) for obj in with_masks], [obj.box for obj in ordered],
                           [f"{obj.class_name} {obj.score:.2f}" for obj in ordered])
    overlay.thumbnail((cell, cell))
    return overlay


def _fit(draw: ImageDraw.ImageDraw, font, text: str, width: int) -> str:
    while len(text) > 1 and draw.textlength(text, font=font) > width:
        text = "..." + text[4:]
    return text
