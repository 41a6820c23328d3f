"""Tracks Label Studio's video boxes through labelgate (`Client.track`), forward from each object's
last keyframe.

Objects whose last keyframes are on the same frame share one labelgate session. Objects starting on
different frames get a session each: in one session SAM 2 would also track an object over the frames
before its keyframe and remember those guesses.
"""

from __future__ import annotations

from itertools import groupby

from labelgate.client.tracking import OpenedVideo

from labelgate.label_studio.prompts import PromptError
from labelgate.label_studio.video import VideoTrack


def track_regions(client, video: bytes, tracks: list[VideoTrack], *, frames: int = 0, model: str = "") -> None:
    """Adds to each track its boxes on the next `frames` frames (0: to the end of the clip)."""
    by_start = lambda track: track.start_frame  # noqa: E731
    for start, group in groupby(sorted(tracks, key=by_start), key=by_start):
        _track_from(client, video, start, list(group), frames, model)


def _track_from(client, video: bytes, start: int, group: list[VideoTrack], frames: int, model: str) -> None:
    def prompts(opened: OpenedVideo):
        if start >= opened.frame_count:
            raise PromptError(f"a box is on frame {start + 1} but the video decodes to {opened.frame_count} frames: "
                              "set <Video framerate> in the labeling config to the video's frame rate")
        return [track.prompt(object_id, opened.width, opened.height) for object_id, track in enumerate(group)]

    # max_frames counts the start frame, which holds the labeler's own keyframes.
    stream = client.track(video, prompts, start_frame=start, max_frames=frames + 1 if frames else 0, model=model)
    try:
        for tracked in stream:
            if tracked.frame_index == start:
                continue
            for object_id, track in enumerate(group):
                track.add(tracked.frame_index, tracked.timestamp, tracked.masks[object_id])
            if all(track.gone for track in group):
                break  # closing the stream stops labelgate's work
    finally:
        stream.close()
