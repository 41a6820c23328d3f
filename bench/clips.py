"""A generated clip of any length for the video section: a red square moving across and a green disc
moving down and up on a grey background, each bouncing off the edges, saved as the `<index>.jpg`
folder sam2's `init_state` reads. (tests/video_clip.py's clip is short, with exact positions its
tests check; this one keeps its objects in the frame however long it runs.)"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

SQUARE_SPEED, DISC_SPEED = 3, 2  # pixels a frame


def _bounce(t: int, speed: int, span: int) -> int:
    """Position at frame `t` of a point moving `speed` pixels a frame in [0, span], bouncing at its ends."""
    phase = (t * speed) % (2 * span)
    return phase if phase <= span else 2 * span - phase


def square_box(t: int, width: int, height: int) -> tuple[float, float, float, float]:
    side = max(4, min(width, height) // 4)
    x0 = _bounce(t, SQUARE_SPEED, width - side - 1)
    y0 = height // 3
    return float(x0), float(y0), float(x0 + side), float(y0 + side)


def disc_centre(t: int, width: int, height: int) -> tuple[float, float]:
    radius = max(2, min(width, height) // 8)
    return float(width - 2 * radius), float(radius + _bounce(t, DISC_SPEED, height - 2 * radius - 1))


def frame(t: int, width: int, height: int) -> np.ndarray:
    pixels = np.full((height, width, 3), 90, np.uint8)
    x0, y0, x1, y1 = (int(v) for v in square_box(t, width, height))
    pixels[y0:y1, x0:x1] = (220, 40, 40)
    cx, cy = disc_centre(t, width, height)
    radius = max(2, min(width, height) // 8)
    ys, xs = np.mgrid[0:height, 0:width]
    pixels[(ys - cy) ** 2 + (xs - cx) ** 2 <= radius ** 2] = (40, 200, 60)
    return pixels


def write_clip(directory: Path, num_frames: int, width: int, height: int) -> list[Path]:
    """`num_frames` frames as `directory/<index>.jpg`; their paths in order."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for t in range(num_frames):
        path = directory / f"{t}.jpg"
        Image.fromarray(frame(t, width, height)).save(path, quality=95)
        paths.append(path)
    return paths
