"""How the service keeps and finds the logits of a mask to refine: one id per mask, scoped to its
image and model (name and version), NOT_FOUND once evicted."""

from __future__ import annotations

import numpy as np
import pytest

from labelgate.core.errors import InvalidInput, NotFound
from labelgate.models.backend import ModelInfo
from labelgate.server.cache import ByteLRUCache
from labelgate.server.metrics import Metrics
from labelgate.server.queries import ImageRef, PointPrompt, SegmentQuery
from labelgate.server.refinement import mask_logits_cache
from labelgate.server.service import LabelgateService
from labelgate.server.validation import Limits

IMAGE_ID = "img_" + "1" * 32
SIDE = 8  # low-res logits of SIDE x SIDE float32
LOGITS = np.arange(3 * SIDE * SIDE, dtype=np.float32).reshape(3, SIDE, SIDE)


class _Segmenter:
    def __init__(self, name: str = "sam", version: str = "v1"):
        self.info = ModelInfo(name, "sam2", version, "cpu")


def service(max_masks: int = 10) -> LabelgateService:
    images = ByteLRUCache("images", 1000, lambda stored: len(stored.data))
    return LabelgateService(images, Limits(), Metrics(), expected=[],
                            refinable=mask_logits_cache(max_masks * LOGITS[0].nbytes))


def refine(mask_id: str) -> SegmentQuery:
    return SegmentQuery(ImageRef(image_id=IMAGE_ID), points=(PointPrompt(1, 1),), refine_mask_id=mask_id)


def test_each_mask_gets_its_own_id_and_its_logits_back():
    running = service()
    ids = running._keep_logits(LOGITS, _Segmenter(), IMAGE_ID)
    assert len(set(ids)) == 3
    for mask_id, expected in zip(ids, LOGITS):
        mask_input = running._refined_logits(refine(mask_id), _Segmenter(), IMAGE_ID)
        assert mask_input.shape == (1, 1, SIDE, SIDE) and np.array_equal(mask_input[0, 0], expected)


@pytest.mark.parametrize("segmenter, image_id, phrase", [
    (_Segmenter(), "img_" + "2" * 32, "is a mask of image"),
    (_Segmenter(name="other"), IMAGE_ID, "is a mask of model sam"),
    (_Segmenter(version="v2"), IMAGE_ID, "is a mask of model sam"),
])
def test_another_image_or_model_is_invalid(segmenter, image_id, phrase):
    running = service()
    [mask_id, *_] = running._keep_logits(LOGITS, _Segmenter(), IMAGE_ID)
    with pytest.raises(InvalidInput, match=phrase):
        running._refined_logits(refine(mask_id), segmenter, image_id)


def test_evicted_ids_are_not_found_with_what_to_do():
    running = service(max_masks=3)
    [oldest, *_] = running._keep_logits(LOGITS, _Segmenter(), IMAGE_ID)
    running._keep_logits(LOGITS[:1], _Segmenter(), IMAGE_ID)  # a fourth mask evicts the oldest
    with pytest.raises(NotFound, match="segment again without refine_mask_id"):
        running._refined_logits(refine(oldest), _Segmenter(), IMAGE_ID)


def test_kept_logits_are_copies_budgeted_by_their_own_size():
    running = service()
    batch = np.zeros((2, 3, SIDE, SIDE), np.float32)
    running._keep_logits(batch[0], _Segmenter(), IMAGE_ID)
    batch[0] = 1.0
    assert running.refinable.bytes_used == 3 * LOGITS[0].nbytes
    assert all(not entry.value.logits.any() for entry in running.refinable._entries.values())
