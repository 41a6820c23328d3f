"""CVAT's side of the exchange with our functions, for the CVAT tests.

nuclio itself is not pip-installable, so its `context` and `event` are small stand-ins with the
attributes handlers use (context.Response, context.logger, context.user_data; event.body). What
CVAT's lambda manager does with a detector's "mask" (cvat/apps/lambda_manager/views.py) is
rebuilt here from cvat-sdk's own mask codec.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import logging
from pathlib import Path
from types import ModuleType, SimpleNamespace

import numpy as np
from cvat_sdk.masks import decode_mask, encode_mask

FUNCTIONS = Path(__file__).resolve().parents[1] / "clients" / "cvat" / "nuclio"
log = logging.getLogger("nuclio")


class NuclioContext:
    class Response:
        def __init__(self, body, headers, content_type, status_code):
            self.body, self.headers, self.content_type, self.status_code = body, headers, content_type, status_code

        def json(self):
            assert self.content_type == "application/json"
            return json.loads(self.body)

    def __init__(self):
        self.user_data = SimpleNamespace()
        self.logger = SimpleNamespace(debug=log.debug, info=log.info, warn=log.warning, error=log.error)


def event(body) -> SimpleNamespace:
    """A JSON request as nuclio hands it over (parsed)."""
    return SimpleNamespace(body=body)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def load_function(directory: Path) -> ModuleType:
    """A function folder's main.py, imported as nuclio does (its own module per function)."""
    spec = importlib.util.spec_from_file_location(f"nuclio_main_{directory.name.replace('-', '_')}", directory / "main.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def stored_mask_points(mask_field: list) -> list:
    """What the lambda manager stores for a detector's "mask": the run lengths of the flattened
    crop (datumaro's mask_to_rle there; cvat-sdk's encoder gives the same runs over one row)
    followed by the crop's corners."""
    *flat, xtl, ytl, xbr, ybr = mask_field
    row = np.asarray(flat, dtype=bool).reshape(1, -1)
    return encode_mask(row, bbox=[0, 0, row.shape[1], 1])[:-4] + [xtl, ytl, xbr, ybr]


def decode_detector_mask(mask_field: list, width: int, height: int) -> np.ndarray:
    """A detector "mask" as CVAT ends up with it: H x W bool, decoded by cvat-sdk."""
    return decode_mask(stored_mask_points(mask_field), image_width=width, image_height=height)
