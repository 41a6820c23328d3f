"""The checks of a refinement (SegmentQuery.refine_mask_id) in server/validation.py, and its ids."""

from __future__ import annotations

import re

import pytest

from labelgate.core.errors import InvalidInput
from labelgate.server.queries import BoxPrompt, ImageRef, PointPrompt, SegmentQuery
from labelgate.server.refinement import looks_like_mask_id, new_mask_id
from labelgate.server.validation import Limits, checked_segment

MASK_ID = "mask_" + "0123456789abcdef" * 2
CLICK = (PointPrompt(1.0, 2.0),)
BOX = BoxPrompt(0.0, 0.0, 5.0, 5.0)


def query(**fields) -> SegmentQuery:
    return SegmentQuery(image=ImageRef(data=b"encoded bytes"), refine_mask_id=MASK_ID, **fields)


VALID = {
    "clicks": query(points=CLICK),
    "one box": query(boxes=(BOX,)),
    "clicks and one box": query(points=CLICK, boxes=(BOX,)),
}


@pytest.mark.parametrize("name", sorted(VALID))
def test_valid_refinements_pass_unchanged(name):
    assert checked_segment(VALID[name], Limits()).refine_mask_id == MASK_ID


INVALID = {
    "upper-case hex": ("mask_" + "0123456789ABCDEF" * 2, "is not a mask id"),
    "image id": ("img_" + "0" * 32, "is not a mask id"),
    "short": ("mask_0", "is not a mask id"),
    "trailing newline": (MASK_ID + "\n", "is not a mask id"),
}


@pytest.mark.parametrize("name", sorted(INVALID))
def test_malformed_ids_are_refused_with_the_expected_format(name):
    mask_id, phrase = INVALID[name]
    with pytest.raises(InvalidInput, match=re.escape(phrase) + ".*'mask_' and 32 lower-case hex digits"):
        checked_segment(SegmentQuery(image=ImageRef(data=b"x"), points=CLICK, refine_mask_id=mask_id), Limits())


def test_a_huge_id_is_quoted_shortened():
    with pytest.raises(InvalidInput) as caught:
        checked_segment(SegmentQuery(image=ImageRef(data=b"x"), points=CLICK, refine_mask_id="m" * 100_000), Limits())
    assert "(100000 characters)" in str(caught.value) and len(str(caught.value)) < 400


def test_several_boxes_are_refused():
    with pytest.raises(InvalidInput, match="refines one object, got 2 boxes"):
        checked_segment(query(boxes=(BOX, BOX)), Limits())


def test_a_text_prompt_is_refused():
    with pytest.raises(InvalidInput, match="cannot be combined with a text prompt"):
        checked_segment(query(text="cat ."), Limits())


def test_new_ids_are_well_formed_and_distinct():
    ids = {new_mask_id() for _ in range(100)}
    assert len(ids) == 100 and all(looks_like_mask_id(mask_id) for mask_id in ids)
