"""Handlers of the nuclio functions in clients/cvat/nuclio/, in the shapes CVAT's lambda manager
(cvat/apps/lambda_manager/views.py) sends and reads. All model work happens in labelgate.

Interactor (sam2-interactor):
    body  {"image": base64, "pos_points": [[x, y], ...], "neg_points": [[x, y], ...],
           "obj_bbox": [[x1, y1], [x2, y2]] | null}
    reply {"mask": H x W nested lists of 0/1}

Detector (gdino-detector; sam3-detector), labels from the function.yaml `spec` annotation; Grounding
DINO finds them, or, where LABELGATE_CONCEPT_MODEL names a concept model (kind sam3), that model
finds every instance of each label (one concept per label):
    body  {"image": base64, "threshold": float (optional)}
    reply [{"label", "type", "points", "confidence", "attributes": []}, ...] with, by the type
          of the label in the spec:
          rectangle (default): points [xtl, ytl, xbr, ybr];
          mask: "mask" = the flattened 0/1 crop of the mask's box followed by its inclusive
                corners [xtl, ytl, xbr, ybr] (the lambda manager run-length encodes it), and
                points = the mask's outline, used when the user asks to convert masks to polygons;
          polygon: points = the mask's outline [x1, y1, x2, y2, ...].

Errors: a malformed request gets 400, labelgate's refusals their HTTP counterpart, each with
{"error": message}.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from pathlib import Path
from typing import Callable

import grpc
import numpy as np
import yaml

from labelgate.client import Client, LabelgateClientError
from labelgate_cvat.detections import CONCEPT_MODEL_ENV, find, outline
from labelgate_cvat.prompts import segment_prompt

MASK_TYPES = ("mask", "polygon")  # label types that need a mask per detection

_HTTP_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.UNAUTHENTICATED: 502,  # the function's own configuration is wrong, not CVAT's request
    grpc.StatusCode.NOT_FOUND: 502,  # likewise: LABELGATE_CONCEPT_MODEL names a model the server does not run
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}


# --- init_context ------------------------------------------------------------------------------


def init_interactor(context) -> None:
    context.user_data.client = Client.from_env()


def init_detector(context, function_yaml: Path) -> None:
    context.user_data.client = Client.from_env()
    context.user_data.labels = labels_from_function_yaml(function_yaml)
    context.user_data.concept_model = os.environ.get(CONCEPT_MODEL_ENV, "")
    finder = f"concept model {context.user_data.concept_model}" if context.user_data.concept_model else "Grounding DINO"
    context.logger.info(f"labelgate detector labels: {context.user_data.labels}, found by {finder}")


def labels_from_function_yaml(path: Path) -> dict[str, str]:
    """{label name: shape type} from the `spec` annotation of a function.yaml, the labels CVAT
    shows for the function ("rectangle" where a label gives no type)."""
    config = yaml.safe_load(Path(path).read_text())
    spec = json.loads(config["metadata"]["annotations"].get("spec") or "[]")
    labels = {str(item["name"]): str(item.get("type") or "rectangle") for item in spec}
    if not labels:
        raise ValueError(f"{path}: the spec annotation names no labels; the detector needs something to look for")
    if len(labels) != len(spec):
        raise ValueError(f"{path}: label names in the spec annotation must be unique")
    return labels


# --- handlers ----------------------------------------------------------------------------------


def handle_interaction(context, event):
    def run(body: dict):
        mask, _ = segment_prompt(context.user_data.client, request_image(body), body.get("pos_points"),
                                 body.get("neg_points"), body.get("obj_bbox"))
        return {"mask": mask.astype(np.uint8).tolist()}

    return respond(context, event, run)


def handle_detection(context, event):
    def run(body: dict):
        labels: dict[str, str] = context.user_data.labels
        found = find(context.user_data.client, request_image(body), list(labels), threshold=_threshold(body),
                     masks=any(kind in MASK_TYPES for kind in labels.values()),
                     concept_model=context.user_data.concept_model)
        return [shape for item in found if (shape := _shape(item, labels[item.label])) is not None]

    return respond(context, event, run)


def _shape(item, kind: str) -> dict | None:
    shape = {"label": item.label, "confidence": str(item.score), "attributes": []}
    if kind not in MASK_TYPES:
        return {**shape, "type": "rectangle", "points": list(item.box)}
    points = outline(item.mask)
    if kind == "polygon":
        return None if points is None else {**shape, "type": "polygon", "points": points}
    flat = cvat_mask(item.mask.to_numpy())
    if flat is None:
        return None
    return {**shape, "type": "mask", "mask": flat, **({"points": points} if points else {})}


def cvat_mask(bitmap: np.ndarray) -> list[int] | None:
    """CVAT's detector mask: the flattened 0/1 crop of the mask's tight box, then the box's
    inclusive corners [xtl, ytl, xbr, ybr]; None for an empty mask."""
    ys, xs = np.nonzero(bitmap)
    if xs.size == 0:
        return None
    xtl, ytl, xbr, ybr = int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())
    return bitmap[ytl:ybr + 1, xtl:xbr + 1].astype(np.uint8).ravel().tolist() + [xtl, ytl, xbr, ybr]


# --- request and response ----------------------------------------------------------------------


def request_image(body: dict) -> bytes:
    """The frame of a CVAT request body ("image": base64), or ValueError (a 400)."""
    encoded = body.get("image")
    if not isinstance(encoded, str) or not encoded:
        raise ValueError("the request has no 'image' (a base64-encoded frame)")
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("'image' is not valid base64") from None


def _threshold(body: dict) -> float:
    value = body.get("threshold")
    if value in (None, ""):
        return 0.0  # labelgate's default
    try:
        threshold = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"'threshold' must be a number between 0 and 1, got {value!r}") from None
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"'threshold' must be between 0 and 1, got {threshold}")
    return threshold


def read_body(event) -> dict:
    """nuclio hands a JSON body over parsed (dict) or raw (bytes), depending on the content type."""
    body = event.body
    if isinstance(body, (bytes, bytearray, str)):
        try:
            body = json.loads(body)
        except ValueError:
            raise ValueError("the request body is not JSON") from None
    if not isinstance(body, dict):
        raise ValueError("the request body must be a JSON object")
    return body


def respond(context, event, run: Callable[[dict], object]):
    """`run(body)` answered as JSON: 200, or 400 for a ValueError, labelgate's refusals mapped to HTTP."""
    try:
        return _json(context, run(read_body(event)), 200)
    except ValueError as error:
        context.logger.warn(f"bad request: {error}")
        return _json(context, {"error": str(error)}, 400)
    except LabelgateClientError as error:
        context.logger.error(f"labelgate: {error}")
        return _json(context, {"error": f"labelgate: {error}"}, _HTTP_STATUS.get(error.code, 500))


def _json(context, body, status: int):
    return context.Response(body=json.dumps(body), headers={}, content_type="application/json", status_code=status)
