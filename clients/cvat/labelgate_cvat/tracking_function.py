"""A cvat-sdk tracking function: SAM 2 carries a rectangle, mask or polygon from frame to frame,
computed by labelgate (its video tracker, with memory of the earlier frames). Run it as a CVAT agent:

    cvat-cli function create-native "SAM 2 tracker (labelgate)" --function-module labelgate_cvat.tracking_function
    cvat-cli function run-agent FUNCTION_ID --function-module labelgate_cvat.tracking_function \\
        -p server=str:HOST:50051

Without `server`, LABELGATE_SERVER (and LABELGATE_AUTH_TOKEN / LABELGATE_TLS_CA) name the server.
Each tracked shape is one labelgate video session (see labelgate_cvat.tracks): its state here is
the session id, so the server's --video-max-sessions bounds how many shapes track at once (the
sessions share the server's image-encoder work on each frame: it is sent as the same bytes). A
session the server no longer has (idle past --video-session-ttl-s, or a restart) starts again from
the shape last returned, on the frame at hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import cvat_sdk.auto_annotation as cvataa
import grpc
import PIL.Image
from cvat_sdk.masks import decode_mask, encode_mask

from labelgate.client import LabelgateClientError, encode_image
from labelgate_cvat.detections import outline
from labelgate_cvat.lazy_client import LazyClient
from labelgate_cvat.tracks import Track, clipped_box, mask_box, polygon_mask, start_track, track_next


class Frame:
    """A frame as sent to labelgate (PNG bytes) and its size."""

    def __init__(self, image: PIL.Image.Image):
        self.data, self.width, self.height = encode_image(image), image.width, image.height


@dataclass
class ShapeTrack:
    """The agent's state for one shape: its session, and the shape last returned (to start again from)."""

    track: Track
    last: cvataa.TrackableShape


class LabelgateTrackingFunction(LazyClient):
    spec = cvataa.TrackingFunctionSpec(supported_shape_types=["rectangle", "mask", "polygon"])

    def preprocess_image(self, context: cvataa.TrackingFunctionContext, image: PIL.Image.Image) -> Frame:
        return Frame(image)  # encoded once, sent to every shape's session

    def init_tracking_state(self, context: cvataa.TrackingFunctionShapeContext, pp_image: Frame,
                            shape: cvataa.TrackableShape) -> ShapeTrack:
        return ShapeTrack(self._start(pp_image, shape), shape)

    def _start(self, pp_image: Frame, shape: cvataa.TrackableShape) -> Track:
        points = list(shape.points)
        if shape.type == "rectangle":
            return start_track(self.client, pp_image.data, box=clipped_box(points, pp_image.width, pp_image.height))
        if shape.type == "polygon":
            return start_track(self.client, pp_image.data, mask=polygon_mask(points, pp_image.height, pp_image.width))
        mask = decode_mask(points, image_width=pp_image.width, image_height=pp_image.height)
        return start_track(self.client, pp_image.data, mask=mask)

    def track(self, context: cvataa.TrackingFunctionShapeContext, pp_image: Frame,
              state: ShapeTrack) -> Optional[cvataa.TrackableShape]:
        """The shape on this frame, of the type it started as; None where SAM 2 lost the object."""
        try:
            shape = self._follow(context.original_shape_type, pp_image, state.track)
        except LabelgateClientError as error:
            if error.code != grpc.StatusCode.NOT_FOUND:
                raise
            state.track, shape = self._start(pp_image, state.last), state.last
        if shape is not None:
            state.last = shape
        return shape

    def _follow(self, kind: str, pp_image: Frame, track: Track) -> Optional[cvataa.TrackableShape]:
        mask = track_next(self.client, track, pp_image.data, polygons=kind == "polygon")
        if kind == "rectangle":
            box = mask_box(mask)
            return None if box is None else cvataa.TrackableShape(type="rectangle", points=box)
        if kind == "polygon":
            points = outline(mask)
            return None if points is None else cvataa.TrackableShape(type="polygon", points=points)
        bitmap = mask.to_numpy()
        return cvataa.TrackableShape(type="mask", points=encode_mask(bitmap)) if bitmap.any() else None


create = LabelgateTrackingFunction
