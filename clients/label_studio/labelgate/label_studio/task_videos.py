"""Task video URL -> the video's bytes, kept for the next tracking request on the same task.

A labeler tracks box after box in one video, and each request names the whole video: downloading
it again every time would cost more than the tracking of a short clip. The videos are kept up to a
byte budget (least recently used out first); a video larger than the budget is not kept.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from labelgate.label_studio.images import ImageFetcher

DEFAULT_BUDGET_BYTES = 512 * 2**20


class TaskVideos:
    def __init__(self, fetcher: ImageFetcher, budget_bytes: int = DEFAULT_BUDGET_BYTES):
        self.fetcher = fetcher
        self.budget_bytes = budget_bytes
        self._videos: OrderedDict[str, bytes] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, reference: str, task_id: int | None) -> bytes:
        with self._lock:
            video = self._videos.get(reference)
            if video is not None:
                self._videos.move_to_end(reference)
                return video
        video = self.fetcher.fetch(reference, task_id)
        self._keep(reference, video)
        return video

    @property
    def nbytes(self) -> int:
        return self._bytes

    def _keep(self, reference: str, video: bytes) -> None:
        if len(video) > self.budget_bytes:
            return
        with self._lock:
            self._bytes -= len(self._videos.pop(reference, b""))
            self._videos[reference] = video
            self._bytes += len(video)
            while self._bytes > self.budget_bytes:
                self._bytes -= len(self._videos.popitem(last=False)[1])
