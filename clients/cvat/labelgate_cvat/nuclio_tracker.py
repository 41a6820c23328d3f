"""Handler of the nuclio tracker (clients/cvat/nuclio/sam2-tracker), in the shapes CVAT's lambda
manager sends and reads for a function of `type: tracker`:

    body  {"image": base64, "shapes": [[x1, y1, x2, y2], ...], "states": [state | null, ...]}
    reply {"shapes": [[x1, y1, x2, y2], ...], "states": [state, ...]}

CVAT keeps the states and sends each back with the next frame; the function itself keeps nothing.
A null state starts a track here: a labelgate video session opened on this frame with the
rectangle as its box prompt (the rectangle comes back as sent). A state {"session_id": ...} names
that session: the frame is appended and the object tracked onto it (labelgate_cvat.tracks); the
rectangle is the tight box of SAM 2's mask, or the one sent where SAM 2 lost the object. A session
the server no longer has (idle past --video-session-ttl-s, or a restart) starts again from the
rectangle sent, on this frame.
"""

from __future__ import annotations

import io
import math

import grpc
import PIL.Image

from labelgate.client import Client, LabelgateClientError
from labelgate_cvat.nuclio import request_image, respond
from labelgate_cvat.tracks import Track, clipped_box, mask_box, start_track, track_next


def init_tracker(context) -> None:
    context.user_data.client = Client.from_env()


def handle_tracking(context, event):
    def run(body: dict):
        image = request_image(body)
        shapes, states = _shapes_and_states(body)
        size = _size(image)
        client = context.user_data.client
        results = [_track_one(client, image, size, shape, state) for shape, state in zip(shapes, states)]
        return {"shapes": [shape for shape, _ in results], "states": [state for _, state in results]}

    return respond(context, event, run)


def _track_one(client: Client, image: bytes, size: tuple[int, int], box: list[float],
               state: dict | None) -> tuple[list[float], dict]:
    if state is not None:
        try:
            moved = mask_box(track_next(client, Track(state["session_id"]), image))
            return (box if moved is None else moved), state
        except LabelgateClientError as error:
            if error.code != grpc.StatusCode.NOT_FOUND:
                raise
    return box, {"session_id": start_track(client, image, box=clipped_box(box, *size)).session_id}


def _size(image: bytes) -> tuple[int, int]:
    """(width, height) from the image's header."""
    try:
        with PIL.Image.open(io.BytesIO(image)) as opened:
            return opened.size
    except (OSError, ValueError):
        raise ValueError("'image' is not an image PIL can read (PNG, JPEG, ...)") from None


def _shapes_and_states(body: dict) -> tuple[list[list[float]], list[dict | None]]:
    shapes, states = body.get("shapes"), body.get("states")
    if not isinstance(shapes, list):
        raise ValueError("the request has no 'shapes' (a list of rectangles [x1, y1, x2, y2])")
    states = [None] * len(shapes) if states is None else states
    if not isinstance(states, list) or len(states) != len(shapes):
        raise ValueError(f"'states' must be a list as long as 'shapes' ({len(shapes)}), with null for a new track")
    return [_rectangle(shape, index) for index, shape in enumerate(shapes)], [_state(state, index) for index, state in enumerate(states)]


def _rectangle(shape, index: int) -> list[float]:
    try:
        x1, y1, x2, y2 = (float(v) for v in shape)
    except (TypeError, ValueError):
        raise ValueError(f"shapes[{index}]: expected a rectangle [x1, y1, x2, y2] in pixels, got {shape!r}") from None
    if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
        raise ValueError(f"shapes[{index}]: coordinates must be finite, got {shape!r}")
    return [min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)]


def _state(state, index: int) -> dict | None:
    if state is None:
        return None
    if not isinstance(state, dict) or not isinstance(state.get("session_id"), str) or not state["session_id"]:
        raise ValueError(f"states[{index}]: expected null or a state this tracker returned, got {state!r}")
    return state
