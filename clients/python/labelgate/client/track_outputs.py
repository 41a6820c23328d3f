"""What `labelgate track` writes: a PNG mask per object per frame, a COCO-style video JSON, and for a
person to look at, a contact sheet of overlays (and an overlay MP4 when PyAV is installed).

The masks are written as frames arrive and only their RLEs are kept; the overlays are drawn after
tracking, in one more pass over the clip's pixels (`clip_pixels`), so memory stays flat.
"""

from __future__ import annotations

import glob
import json
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont, ImageOps

from labelgate.client.overlay import draw_overlay
from labelgate.client.tracking import VIDEO_SUFFIXES, TrackedFrame

CATEGORY = {"id": 1, "name": "object"}
SHEET_CELL = 256
CAPTION_HEIGHT = 14
DEFAULT_FPS = 10.0


@dataclass(frozen=True)
class Clip:
    """What to track: a video file, or frame image files in order."""

    name: str
    video: Path | None = None
    frames: tuple[Path, ...] = ()

    @property
    def source(self):
        """What `track` / `open_video` take."""
        return self.video if self.video is not None else list(self.frames)


def clip_from_argument(text: str) -> Clip:
    """A video file, a folder of frame images (sorted by name), or a glob of them ('frames/*.jpg')."""
    path = Path(text)
    if path.is_file():
        if path.suffix.lower() not in VIDEO_SUFFIXES:
            raise ValueError(f"{text}: not a video file ({', '.join(VIDEO_SUFFIXES)}); for frames give their folder or a glob")
        return Clip(path.name, video=path)
    if path.is_dir():
        frames = sorted(p for p in path.iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES)
        name = path.name
    else:
        frames = sorted(p for p in map(Path, glob.glob(text)) if p.suffix.lower() in _IMAGE_SUFFIXES)
        name = path.parent.name or "frames"
    if not frames:
        raise ValueError(f"{text}: no such video file, and no frame images ({', '.join(_IMAGE_SUFFIXES)}) there")
    return Clip(name, frames=tuple(frames))


_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")


class TrackWriter:
    """Collects tracked frames into `out_dir`: masks/<frame:06d>_<object>.png as they come, then
    `finish()` writes the JSON and the overlays."""

    def __init__(self, out_dir: Path, clip: Clip, width: int, height: int, frame_count: int):
        self.out_dir, self.clip = Path(out_dir), clip
        self.width, self.height, self.frame_count = width, height, frame_count
        self.masks_dir = self.out_dir / "masks"
        self.masks_dir.mkdir(parents=True, exist_ok=True)
        self.frames: dict[int, TrackedFrame] = {}

    def add(self, frame: TrackedFrame) -> None:
        for object_id, mask in frame.masks.items():
            pixels = mask.to_numpy()
            Image.fromarray(pixels.astype(np.uint8) * 255).save(self.masks_dir / f"{frame.frame_index:06d}_{object_id}.png")
        self.frames[frame.frame_index] = frame  # its masks are RLEs: small

    def coco(self) -> dict:
        """YouTube-VIS / TAO style: one video, an image per tracked frame, an annotation per visible
        object per frame with track_id = the object id (RLE masks, bbox [x, y, w, h])."""
        images, annotations = [], []
        tracks = sorted({object_id for frame in self.frames.values() for object_id in frame.masks})
        for index in sorted(self.frames):
            frame = self.frames[index]
            image_id = index + 1
            file_name = self.clip.frames[index].name if self.clip.frames else self.clip.name
            images.append({"id": image_id, "video_id": 1, "frame_index": index, "timestamp": frame.timestamp,
                           "file_name": file_name, "width": self.width, "height": self.height})
            for object_id, mask in sorted(frame.masks.items()):
                if not mask.area:
                    continue  # not visible on this frame
                x_min, y_min, x_max, y_max = mask.bbox
                annotations.append({
                    "id": len(annotations) + 1, "image_id": image_id, "video_id": 1, "track_id": object_id,
                    "category_id": CATEGORY["id"], "segmentation": dict(mask.rle), "area": mask.area,
                    "bbox": [x_min, y_min, x_max - x_min, y_max - y_min], "score": mask.score, "iscrowd": 0,
                })
        return {
            "info": {"description": f"labelgate track {self.clip.name}"},
            "videos": [{"id": 1, "name": self.clip.name, "width": self.width, "height": self.height,
                        "length": self.frame_count}],
            "images": images,
            "annotations": annotations,
            "tracks": [{"id": object_id, "video_id": 1, "category_id": CATEGORY["id"]} for object_id in tracks],
            "categories": [CATEGORY],
        }

    def finish(self, sheet_frames: int = 16, overlays: bool = True) -> list[Path]:
        """Writes annotations.json and, with `overlays`, contact_sheet.png (and overlay.mp4 with
        PyAV); returns the paths written (masks/ aside)."""
        written = [self.out_dir / "annotations.json"]
        written[0].write_text(json.dumps(self.coco()))
        if not overlays or not self.frames:
            return written
        pixels = clip_pixels(self.clip)
        if pixels is None:
            return written
        sampled = set(_evenly(sorted(self.frames), sheet_frames))
        tiles = []
        with _Mp4(self.out_dir / "overlay.mp4", self._fps()) as video:
            for index, rgb in pixels:
                frame = self.frames.get(index)
                if frame is None:
                    continue
                drawn = self._overlay(rgb, frame)
                video.write(drawn)
                if index in sampled:
                    tiles.append((ImageOps.contain(drawn, (SHEET_CELL, SHEET_CELL)), f"frame {index}  {frame.timestamp:.2f} s"))
        written.append(_save_sheet(tiles, self.out_dir / "contact_sheet.png"))
        return written + ([video.path] if video.written else [])

    def _overlay(self, rgb: np.ndarray, frame: TrackedFrame) -> Image.Image:
        if rgb.shape[:2] != (self.height, self.width):
            raise ValueError(f"frame {frame.frame_index} decodes to {rgb.shape[1]}x{rgb.shape[0]} here but the server saw "
                             f"{self.width}x{self.height}; cannot draw the overlay")
        objects = sorted(frame.masks.items())
        return draw_overlay(rgb, [mask.to_numpy() for _, mask in objects], [mask.bbox for _, mask in objects],
                            [f"#{object_id} {mask.score:.2f}" for object_id, mask in objects])

    def _fps(self) -> float:
        times = [self.frames[i].timestamp for i in sorted(self.frames)]
        steps = [b - a for a, b in zip(times, times[1:]) if b > a]
        return 1.0 / float(np.median(steps)) if steps else DEFAULT_FPS


def clip_pixels(clip: Clip) -> Iterator[tuple[int, np.ndarray]] | None:
    """(frame index, H x W x 3 RGB) in order, as the server numbers and decodes them; None for a
    video file without PyAV installed."""
    if clip.video is None:
        return ((index, _image_pixels(path)) for index, path in enumerate(clip.frames))
    try:
        import av
    except ImportError:
        return None

    def decoded():
        with av.open(str(clip.video)) as container:
            for index, frame in enumerate(container.decode(container.streams.video[0])):
                yield index, frame.to_ndarray(format="rgb24")

    return decoded()


def _image_pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(ImageOps.exif_transpose(image).convert("RGB"))


def _evenly(items: Sequence[int], count: int) -> list[int]:
    if len(items) <= count:
        return list(items)
    return [items[round(i * (len(items) - 1) / (count - 1))] for i in range(count)] if count > 1 else [items[0]]


def _save_sheet(tiles: Iterable[tuple[Image.Image, str]], path: Path) -> Path:
    tiles = list(tiles)
    columns = max(1, math.ceil(math.sqrt(len(tiles))))
    rows = max(1, math.ceil(len(tiles) / columns))
    sheet = Image.new("RGB", (columns * SHEET_CELL, rows * (SHEET_CELL + CAPTION_HEIGHT)), (255, 255, 255))
    draw, font = ImageDraw.Draw(sheet), ImageFont.load_default()
    for position, (tile, caption) in enumerate(tiles):
        left, top = (position % columns) * SHEET_CELL, (position // columns) * (SHEET_CELL + CAPTION_HEIGHT)
        sheet.paste(tile, (left + (SHEET_CELL - tile.width) // 2, top + (SHEET_CELL - tile.height) // 2))
        draw.text((left + 2, top + SHEET_CELL), caption, fill=(0, 0, 0), font=font)
    sheet.save(path, format="PNG")
    return path


class _Mp4:
    """An H.264 MP4 of the overlays when PyAV is installed; nothing otherwise."""

    def __init__(self, path: Path, fps: float):
        self.path, self.fps, self.written = path, fps, False
        self._container = self._stream = None

    def __enter__(self) -> "_Mp4":
        try:
            import av
        except ImportError:
            return self
        self._av = av
        self._container = av.open(str(self.path), mode="w")
        return self

    def write(self, image: Image.Image) -> None:
        if self._container is None:
            return
        pixels = np.asarray(image)
        even = pixels[: pixels.shape[0] // 2 * 2, : pixels.shape[1] // 2 * 2]  # yuv420p wants even sides
        if self._stream is None:
            from fractions import Fraction

            self._stream = self._container.add_stream("libx264", rate=Fraction(self.fps).limit_denominator(1000))
            self._stream.height, self._stream.width = even.shape[:2]
            self._stream.pix_fmt = "yuv420p"
        for packet in self._stream.encode(self._av.VideoFrame.from_ndarray(np.ascontiguousarray(even), format="rgb24")):
            self._container.mux(packet)
        self.written = True

    def __exit__(self, *exc_info) -> None:
        if self._container is None:
            return
        if self._stream is not None:
            for packet in self._stream.encode():
                self._container.mux(packet)
        self._container.close()
        if not self.written:
            self.path.unlink(missing_ok=True)
