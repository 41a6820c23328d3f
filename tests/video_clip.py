"""A generated clip of moving shapes: frames as arrays, JPEG folders (sam2's own loader reads them)
and video files written with PyAV, so the decode path under test is the real one."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from labelgate.models.video_tracking import FrameSource

HEIGHT, WIDTH = 64, 96


class ArrayFrames(FrameSource):
    """Frames given as arrays, as a tracking backend reads them; `reads` lists the frames read."""

    def __init__(self, frames):
        self.frames, self.num_frames = frames, len(frames)
        self.height, self.width = frames[0].shape[:2]
        self.reads = []

    def frame(self, index):
        self.reads.append(index)
        return self.frames[index]


def moving_shapes(num_frames: int, height: int = HEIGHT, width: int = WIDTH) -> list[np.ndarray]:
    """A red square moving right and a green disc moving down on a grey background, RGB uint8."""
    frames = []
    ys, xs = np.mgrid[0:height, 0:width]
    for t in range(num_frames):
        frame = np.full((height, width, 3), 90, np.uint8)
        x0 = 8 + 3 * t
        frame[20:36, x0:x0 + 16] = (220, 40, 40)
        cy = 12 + 2 * t
        frame[(ys - cy) ** 2 + (xs - 70) ** 2 <= 64] = (40, 200, 60)
        frames.append(frame)
    return frames


def square_box(t: int) -> tuple[float, float, float, float]:
    x0 = 8 + 3 * t
    return float(x0), 20.0, float(x0 + 16), 36.0


def disc_centre(t: int) -> tuple[float, float]:
    return 70.0, float(12 + 2 * t)


def write_jpeg_folder(frames: list[np.ndarray], directory: Path) -> list[np.ndarray]:
    """`<index>.jpg` files as sam2's `init_state` reads them; returns the pixels PIL decodes from them."""
    directory.mkdir(parents=True, exist_ok=True)
    decoded = []
    for index, frame in enumerate(frames):
        path = directory / f"{index}.jpg"
        Image.fromarray(frame).save(path, quality=95)
        decoded.append(np.array(Image.open(path).convert("RGB")))
    return decoded


def video_bytes(frames: list[np.ndarray], container: str = "mp4", codec: str = "libx264", fps: int = 10) -> bytes:
    """The frames encoded as a video file with PyAV (`container` mp4, webm or mov)."""
    import av

    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format=container) as output:
        stream = output.add_stream(codec, rate=fps)
        stream.width, stream.height = frames[0].shape[1], frames[0].shape[0]
        stream.pix_fmt = "yuv420p"
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                output.mux(packet)
        for packet in stream.encode():
            output.mux(packet)
    return buffer.getvalue()
