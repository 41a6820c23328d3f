"""Refinement from the previous logits: each point/box mask the service returns keeps its low-res
logits here, under a random id (`Mask.mask_id`), so that a later Segment can name it
(`refine_mask_id`) and SAM 2 gets them back as its mask input, without the client carrying them."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

import numpy as np

from labelgate.server.cache import ByteLRUCache
from labelgate.server.metrics import CacheMetrics

_MASK_ID = re.compile(r"mask_[0-9a-f]{32}")
MASK_ID_FORMAT = "'mask_' and 32 lower-case hex digits"


@dataclass(frozen=True)
class RefinableMask:
    """One mask's (h, w) float32 low-res logits, and the image and model that made them."""

    image_id: str
    model: str
    version: str
    logits: np.ndarray


def new_mask_id() -> str:
    """Unguessable (128 random bits): an id is the only key to the logits of another caller's mask."""
    return "mask_" + secrets.token_hex(16)


def looks_like_mask_id(text: str) -> bool:
    return _MASK_ID.fullmatch(text) is not None


def mask_logits_cache(max_bytes: int, metrics: CacheMetrics | None = None) -> ByteLRUCache[RefinableMask]:
    return ByteLRUCache("mask_logits", max_bytes, lambda stored: stored.logits.nbytes, metrics)
