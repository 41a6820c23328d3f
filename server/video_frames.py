"""Frame sources for video sessions: frames kept encoded and decoded when the tracker asks for
them, with the last few decoded frames cached. A session never holds a whole clip's pixels."""

from __future__ import annotations

import hashlib
import io
from collections import OrderedDict

import numpy as np

from labelgate.core.errors import InvalidInput
from labelgate.models.video_tracking import FrameSource
from labelgate.server.imaging import decode_image

DECODED_FRAMES_KEPT = 16  # a backward pass through a video decodes each group of pictures once, not once per frame


class _DecodedCache:
    def __init__(self, capacity: int = DECODED_FRAMES_KEPT):
        self.capacity, self.frames = capacity, OrderedDict()

    def get(self, index: int) -> np.ndarray | None:
        frame = self.frames.get(index)
        if frame is not None:
            self.frames.move_to_end(index)
        return frame

    def put(self, index: int, frame: np.ndarray) -> None:
        self.frames[index] = frame
        self.frames.move_to_end(index)
        while len(self.frames) > self.capacity:
            self.frames.popitem(last=False)

    @property
    def nbytes(self) -> int:
        return sum(frame.nbytes for frame in self.frames.values())


class EncodedImageFrames(FrameSource):
    """Frames sent as encoded images (PNG, JPEG, ...), each decoded once when received to check it.
    More can be appended; a released frame's bytes are gone (bounded memory for a long stream)."""

    def __init__(self, images: list[bytes], max_pixels: int):
        if not images:
            raise InvalidInput("a video needs at least one frame: send VideoFrames.frames or a video file")
        self.max_pixels, self.cache = max_pixels, _DecodedCache()
        self.images: list[bytes | None] = []
        self.append(images)

    @property
    def num_frames(self) -> int:
        return len(self.images)

    def append(self, images: list[bytes]) -> None:
        """Adds frames after the last one; all are checked before any is added."""
        if not images:
            raise InvalidInput("no frames to append: send at least one in frames")
        first = len(self.images)
        for offset, data in enumerate(images):
            index = first + offset
            pixels = self._decode(index, data)
            if index == 0:
                self.height, self.width = pixels.shape[:2]
            elif pixels.shape[:2] != (self.height, self.width):
                raise InvalidInput(f"frame {index} is {pixels.shape[1]}x{pixels.shape[0]}, frame 0 is {self.width}x{self.height}: "
                                   "send frames of one size")
            self.cache.put(index, pixels)  # the newest are the next tracked: not decoded twice
        self.images.extend(images)

    def release(self, keep: set[int]) -> None:
        """Forgets the bytes of every frame not in `keep`."""
        for index, data in enumerate(self.images):
            if data is not None and index not in keep:
                self.images[index] = None
                self.cache.frames.pop(index, None)

    def released(self, index: int) -> bool:
        return self.images[index] is None

    def content_key(self, index: int) -> bytes | None:
        data = self.images[index]
        return None if data is None else hashlib.blake2b(data, digest_size=16).digest()

    def _decode(self, index: int, data: bytes) -> np.ndarray:
        try:
            return decode_image(data, self.max_pixels).pixels
        except InvalidInput as error:
            raise InvalidInput(f"frame {index}: {error}") from None

    def frame(self, index: int) -> np.ndarray:
        pixels = self.cache.get(index)
        if pixels is None:
            data = self.images[index]
            if data is None:
                raise InvalidInput(f"{released_message(self, index)}; prompt or track within those")
            pixels = self._decode(index, data)
            self.cache.put(index, pixels)
        return pixels

    @property
    def nbytes(self) -> int:
        return sum(len(data) for data in self.images if data is not None) + self.cache.nbytes


def released_message(frames: FrameSource, index: int) -> str:
    """Says that frame `index` was released, and which frames are kept."""
    return (f"frame {index} was released by AppendFrames release_old_frames (only the prompted frames and the last --video-window "
            f"frames are kept: here frames {kept_frames(frames)})")


def kept_frames(frames: FrameSource) -> str:
    """The frames whose pixels are kept, as ranges: "0, 4-19"."""
    runs: list[list[int]] = []
    for index in range(frames.num_frames):
        if not frames.released(index):
            if runs and runs[-1][1] == index - 1:
                runs[-1][1] = index
            else:
                runs.append([index, index])
    return ", ".join(str(first) if first == last else f"{first}-{last}" for first, last in runs) or "none"


class VideoFileFrames(FrameSource):
    """A video file (MP4, WebM, MOV...) decoded with FFmpeg through PyAV. Opening decodes it once to
    number its frames (presentation order) and check it; a frame is then found by seeking to the
    keyframe before it and decoding forward."""

    def __init__(self, data: bytes, max_pixels: int):
        self.data, self.cache = data, _DecodedCache()
        self._pts: list[int | None] = []
        self._times: list[float] = []
        self._container = None
        self._decoder = None
        self._next_index = 0
        try:
            with self._open() as container:
                stream = container.streams.video[0]
                for frame in container.decode(stream):
                    if not self._pts:
                        self.width, self.height = frame.width, frame.height
                        if self.width * self.height > max_pixels:
                            raise InvalidInput(f"video frames are {self.width}x{self.height}, over --max-image-pixels {max_pixels}")
                    self._pts.append(frame.pts)
                    self._times.append(float(frame.time) if frame.time is not None else 0.0)
        except InvalidInput:
            raise
        except Exception as error:  # PyAV's errors: not a container, no video stream, corrupt data
            raise InvalidInput(f"cannot decode the video ({type(error).__name__}: {error}); send an MP4, WebM or MOV file, "
                               "or the frames as images") from None
        if not self._pts:
            raise InvalidInput("the video has no frames")
        self.num_frames = len(self._pts)
        self._index_of_pts = {pts: index for index, pts in enumerate(self._pts)} if None not in self._pts else None

    def _open(self):
        import av

        return av.open(io.BytesIO(self.data), mode="r")

    def timestamp(self, index: int) -> float:
        return self._times[index]

    def frame(self, index: int) -> np.ndarray:
        pixels = self.cache.get(index)
        if pixels is None:
            pixels = self._decode_to(index)
        return pixels

    def _decode_to(self, index: int) -> np.ndarray:
        if self._decoder is None or index < self._next_index or index > self._next_index + DECODED_FRAMES_KEPT:
            self._restart_before(index)
        for frame in self._decoder:
            current = self._next_index if self._index_of_pts is None else self._index_of_pts.get(frame.pts, self._next_index)
            self._next_index = current + 1
            pixels = frame.to_ndarray(format="rgb24")
            self.cache.put(current, pixels)
            if current == index:
                return pixels
        raise InvalidInput(f"frame {index} could not be decoded again from the video")

    def _restart_before(self, index: int) -> None:
        """Positions the decoder at the keyframe at or before `index` (the start without timestamps)."""
        self.close()
        self._container = self._open()
        stream = self._container.streams.video[0]
        self._next_index = 0
        if self._index_of_pts is not None and index > 0:
            self._container.seek(self._pts[index], stream=stream, backward=True, any_frame=False)
            self._next_index = -1  # known again from the first decoded frame's timestamp
        self._decoder = self._container.decode(stream)

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
        self._container, self._decoder = None, None

    @property
    def nbytes(self) -> int:
        return len(self.data) + self.cache.nbytes
