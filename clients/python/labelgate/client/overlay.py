"""Drawing masks and boxes over an image, for a quick look at what the server returned."""

from __future__ import annotations

import colorsys
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

MASK_ALPHA = 0.45


def palette(count: int) -> list[tuple[int, int, int]]:
    """`count` distinct saturated colours (golden-ratio hue steps, so neighbours differ)."""
    colours = []
    for index in range(count):
        hue = (0.12 + index * 0.618033988749895) % 1.0
        r, g, b = colorsys.hsv_to_rgb(hue, 0.85, 1.0)
        colours.append((round(r * 255), round(g * 255), round(b * 255)))
    return colours


def draw_overlay(image_rgb: np.ndarray, masks: Sequence[np.ndarray], boxes: Sequence = (),
                 labels: Sequence[str] = ()) -> Image.Image:
    """An RGB PIL image: each mask tinted in its own semi-transparent colour with a solid contour,
    then each box drawn as a rectangle with its label above it.

    `boxes[i]` is (x_min, y_min, x_max, y_max) or None (nothing drawn); it gets the colour of
    `masks[i]`, so pass them in the same order to match objects with their boxes. `labels[i]`
    (optional, may be shorter than `boxes`) is written on box i.
    """
    pixels = _as_rgb(image_rgb)
    height, width = pixels.shape[:2]
    colours = palette(max(len(masks), len(boxes)))
    out = pixels.astype(np.float32)
    contours = []
    for index, mask in enumerate(masks):
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != (height, width):
            raise ValueError(f"mask {index} has shape {mask.shape}, the image is {(height, width)}")
        colour = np.array(colours[index], dtype=np.float32)
        out[mask] = out[mask] * (1.0 - MASK_ALPHA) + colour * MASK_ALPHA
        contours.append((_contour(mask), colours[index]))
    out = out.round().astype(np.uint8)
    for edge, colour in contours:
        out[edge] = colour
    canvas = Image.fromarray(out)
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    line = max(1, round(min(width, height) / 300))
    for index, box in enumerate(boxes):
        if box is None:
            continue
        x_min, y_min, x_max, y_max = (float(v) for v in box)
        colour = colours[index]
        draw.rectangle([x_min, y_min, max(x_min, x_max - 1), max(y_min, y_max - 1)], outline=colour, width=line)
        label = labels[index] if index < len(labels) else ""
        if label:
            _label(draw, font, label, x_min, y_min, colour)
    return canvas


def _as_rgb(image: np.ndarray) -> np.ndarray:
    pixels = np.asarray(image)
    if pixels.dtype == bool:
        pixels = pixels.astype(np.uint8) * 255
    if pixels.dtype != np.uint8:
        raise ValueError(f"expected uint8 pixels, got {pixels.dtype}")
    if pixels.ndim == 2:
        return np.repeat(pixels[:, :, None], 3, axis=2)
    if pixels.ndim == 3 and pixels.shape[2] in (3, 4):
        return np.ascontiguousarray(pixels[:, :, :3])
    raise ValueError(f"expected an H x W x 3 RGB or H x W greyscale image, got shape {pixels.shape}")


def _contour(mask: np.ndarray) -> np.ndarray:
    """Mask pixels with a 4-neighbour outside the mask (the image border counts as outside)."""
    padded = np.pad(mask, 1, constant_values=False)
    interior = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return mask & ~interior


def _label(draw: ImageDraw.ImageDraw, font, text: str, x: float, y: float, colour) -> None:
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    text_w, text_h = right - left, bottom - top
    pad = 2
    top_y = y - text_h - 2 * pad
    if top_y < 0:  # no room above the box: write inside it
        top_y = y
    draw.rectangle([x, top_y, x + text_w + 2 * pad, top_y + text_h + 2 * pad], fill=colour)
    luminance = 0.299 * colour[0] + 0.587 * colour[1] + 0.114 * colour[2]
    draw.text((x + pad - left, top_y + pad - top), text, fill=(0, 0, 0) if luminance > 140 else (255, 255, 255), font=font)
