"""Task image URL -> labelgate image_id, so the second click on a task neither downloads the
image from Label Studio again nor sends its bytes to labelgate: only the id goes over gRPC.

If labelgate no longer knows the id (NOT_FOUND: evicted from its cache, or restarted), the image is
downloaded and sent again once.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import TypeVar

import grpc
from labelgate.client import ImageId, LabelgateClientError

from labelgate.label_studio.images import ImageFetcher

Result = TypeVar("Result")  # any labelgate result with an image_id


class TaskImages:
    def __init__(self, fetcher: ImageFetcher, capacity: int = 4096):
        self.fetcher = fetcher
        self.capacity = capacity
        self._ids: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()

    def call(self, reference: str, task_id: int | None, rpc: Callable[[object], Result]) -> Result:
        """`rpc(image)` with the image as a known ImageId if there is one, else as downloaded bytes."""
        with self._lock:
            known = self._ids.get(reference)
            if known is not None:
                self._ids.move_to_end(reference)
        if known is not None:
            try:
                return rpc(ImageId(known))
            except LabelgateClientError as error:
                if error.code != grpc.StatusCode.NOT_FOUND:
                    raise
                self.forget(reference)
        result = rpc(self.fetcher.fetch(reference, task_id))
        self._remember(reference, result.image_id)
        return result

    def forget(self, reference: str) -> None:
        with self._lock:
            self._ids.pop(reference, None)

    def _remember(self, reference: str, image_id: str) -> None:
        if not image_id or self.capacity <= 0:
            return
        with self._lock:
            self._ids[reference] = image_id
            self._ids.move_to_end(reference)
            while len(self._ids) > self.capacity:
                self._ids.popitem(last=False)
