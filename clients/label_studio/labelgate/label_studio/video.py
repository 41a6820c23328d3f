"""Label Studio video boxes <-> labelgate tracking. One `videorectangle` region per object comes in
/predict's `context.result`:

    {id, type: "videorectangle", from_name, to_name,
     value: {sequence: [{frame, x, y, width, height, enabled, rotation, time}, ...], framesCount, duration, labels?}}

`frame` counts from 1 (labelgate's frame 0 is Label Studio's frame 1); x, y, width, height are percent
of the frame. A keyframe with `enabled: false` ends the object's lifespan after that frame.

Each object is tracked from its last keyframe and goes back as the same region, its sequence holding
the old keyframes and one new keyframe per tracked frame (`time`: the frame's presentation time).
Where the object is gone (an empty mask), its last keyframe gets `enabled: false` and its tracking stops.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from labelgate.client import Mask
from labelgate.client.tracking import ObjectPrompt

from labelgate.label_studio.coordinates import box_to_percent, box_to_pixels
from labelgate.label_studio.label_config import VIDEORECTANGLE
from labelgate.label_studio.prompts import PromptError


@dataclass
class VideoTrack:
    region: Mapping  # the region as Label Studio sent it
    added: list[dict] = field(default_factory=list)  # the new keyframes
    scores: list[float] = field(default_factory=list)  # SAM 2's visible probability on each new keyframe
    gone: bool = False  # the object left the clip: no more keyframes

    @property
    def sequence(self) -> list[Mapping]:
        return self.region["value"]["sequence"]

    @property
    def keyframe(self) -> Mapping:
        """The keyframe tracking starts from: the last one."""
        return max(self.sequence, key=lambda entry: entry["frame"])

    @property
    def start_frame(self) -> int:
        """The keyframe's labelgate frame index (from 0)."""
        return int(self.keyframe["frame"]) - 1

    def prompt(self, object_id: int, width: int, height: int) -> ObjectPrompt:
        return ObjectPrompt(object_id, self.start_frame, box=box_to_pixels(self.keyframe, width, height))

    def add(self, frame_index: int, timestamp: float, mask: Mask) -> None:
        """The object's mask on a frame after the keyframe (labelgate's index), in frame order."""
        if self.gone:
            return
        if mask.bbox is None:
            self.gone = True
            return
        height, width = mask.shape
        self.added.append({"frame": frame_index + 1, **box_to_percent(mask.bbox, width, height), "enabled": True,
                           "time": float(timestamp)})
        self.scores.append(float(mask.score))

    def result(self) -> dict:
        """The region with its sequence extended, as a prediction's result item."""
        old = [dict(entry) for entry in self.sequence]
        new = [dict(entry) for entry in self.added]
        if self.gone:
            last = new[-1] if new else next(entry for entry in old if entry["frame"] == self.keyframe["frame"])
            last["enabled"] = False
        return {
            "id": self.region.get("id"),
            "from_name": self.region.get("from_name"),
            "to_name": self.region.get("to_name"),
            "type": VIDEORECTANGLE,
            "value": {**self.region["value"], "sequence": old + new},
            "score": sum(self.scores) / len(self.scores) if self.scores else 0.0,
        }


def video_tracks(context: Mapping | None) -> list[VideoTrack]:
    """The context's video boxes to track: those whose last keyframe is enabled (a disabled one means
    the labeler ended the object there)."""
    tracks = []
    for index, item in enumerate((context or {}).get("result") or []):
        if str(item.get("type", "")).lower() != VIDEORECTANGLE:
            continue
        try:
            track = VideoTrack(item)
            keyframe = track.keyframe  # ValueError: an empty sequence
            if int(keyframe["frame"]) < 1:
                raise ValueError(f"frame {keyframe['frame']}: Label Studio's frames count from 1")
            box_to_pixels(keyframe, 1, 1)
        except (KeyError, TypeError, ValueError) as error:
            raise PromptError(f"context.result[{index}] (videorectangle) is malformed: {error!r}") from None
        if keyframe.get("enabled", True):
            tracks.append(track)
    return tracks
