"""A CVAT task as a labeling job's source: `cvat://HOST[:PORT]/TASK_ID`, frames read through cvat-sdk
(the `cvat` extra of labelgate-client) with $CVAT_ACCESS_TOKEN, or $CVAT_USER and $CVAT_PASSWORD.

A frame's dataset key is its name in the task (for a video, `frame_000123`, as CVAT names video
frames), which is how CVAT's COCO 1.0 import matches annotations back to frames; its source is the
frame's data URL. Frames of a task never change, so a rerun downloads only what is not labeled yet.

Written against cvat-sdk 2.80 (`make_client`, `tasks.retrieve`, `Task.get_meta`, `get_frame`,
`get_labels`, `import_annotations`); only tested with a stand-in of its Task object, not a real CVAT.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping

from labelgate.client.labeling.sources import RemoteItem

SCHEME = "cvat://"
_REFERENCE = re.compile(r"^cvat://(?P<host>[^/]+)/(?P<task>\d+)/?$")


class CvatError(OSError):
    """A frame that cannot be downloaded: an OSError, so the job logs it as one failed image."""


def parse_reference(text: str) -> tuple[str, int]:
    """cvat://HOST[:PORT]/ID -> (HOST[:PORT], ID); cvat-sdk finds out whether the host speaks https or http."""
    match = _REFERENCE.match(text.strip())
    if not match:
        raise ValueError(f"{text!r}: expected cvat://HOST[:PORT]/TASK_ID")
    return match["host"], int(match["task"])


def connect(host: str, environ: Mapping[str, str] = os.environ):
    """A logged-in cvat-sdk Client."""
    try:
        from cvat_sdk import make_client
    except ImportError:
        raise ValueError("reading a CVAT task needs cvat-sdk: pip install 'labelgate-client[cvat]'") from None
    from cvat_sdk.api_client.exceptions import ApiException

    token, user, password = (environ.get(name, "") for name in ("CVAT_ACCESS_TOKEN", "CVAT_USER", "CVAT_PASSWORD"))
    try:
        if token:
            return make_client(host, access_token=token)
        if user and password:
            return make_client(host, credentials=(user, password))
    except ApiException as error:
        raise ValueError(f"CVAT at {host} refused the credentials: HTTP {error.status} {error.reason}") from None
    raise ValueError("CVAT needs credentials: set $CVAT_ACCESS_TOKEN (a personal access token), "
                     "or $CVAT_USER and $CVAT_PASSWORD")


def frame_names(task) -> list[tuple[int, str]]:
    """(frame number, name) of the task's frames that are not deleted."""
    meta = task.get_meta()
    frames = list(meta.frames or [])
    deleted = set(getattr(meta, "deleted_frames", None) or [])
    if len(frames) == 1 and meta.size > 1:  # a video: one entry for the whole file
        names = [f"frame_{number:06d}" for number in range(meta.size)]
    else:
        names = [frame.name for frame in frames]
    return [(number, name) for number, name in enumerate(names) if number not in deleted]


def retrieve_task(client, task_id: int):
    from cvat_sdk.api_client.exceptions import ApiException

    try:
        return client.tasks.retrieve(task_id)
    except ApiException as error:
        raise ValueError(f"CVAT task {task_id}: HTTP {error.status} {error.reason} (does it exist, and may this "
                         "user see it?)") from None


class CvatTaskSource:
    def __init__(self, task, host: str):
        if getattr(task, "dimension", "2d") != "2d":
            raise ValueError(f"CVAT task {task.id} is a {task.dimension} task; only 2D images can be labeled")
        self.task = task
        self.source_prefix = f"{host.rstrip('/')}/api/tasks/{task.id}/data?type=frame&quality=original&number="

    def items(self) -> Iterator[RemoteItem]:
        for number, name in frame_names(self.task):
            yield RemoteItem(name, f"{self.source_prefix}{number}", f"cvat:{self.task.id}:{number}:{name}",
                             lambda number=number: self._frame(number))

    def label_names(self) -> set[str]:
        return {label.name for label in self.task.get_labels()}

    def _frame(self, number: int) -> bytes:
        from cvat_sdk.api_client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        try:
            return self.task.get_frame(number, quality="original").read()
        except (ApiException, HTTPError) as error:
            raise CvatError(f"CVAT task {self.task.id}: frame {number} cannot be downloaded: {error}") from None
