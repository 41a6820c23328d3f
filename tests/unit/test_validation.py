"""Every request check in server/validation.py: InvalidInput with a message the caller can act on."""

from __future__ import annotations

import math
import re

import pytest

from labelgate.core.errors import InvalidInput
from labelgate.server.queries import BoxPrompt, DetectQuery, ImageRef, PointPrompt, SegmentQuery
from labelgate.server.validation import (
    MAX_MODEL_NAME_CHARS,
    Limits,
    check_box_shape,
    checked_detect,
    check_image_ref,
    check_in_image,
    check_model_name,
    checked_segment,
    check_text,
    check_threshold,
)

IMAGE = ImageRef(data=b"encoded bytes")
SMALL = Limits(max_points=3, max_boxes=2, max_text_chars=20)
NAN, INF = math.nan, math.inf


def query(**fields) -> SegmentQuery:
    fields.setdefault("image", IMAGE)
    return SegmentQuery(**fields)


def points(n: int) -> tuple[PointPrompt, ...]:
    return tuple(PointPrompt(1.0 + i, 2.0) for i in range(n))


def boxes(n: int) -> tuple[BoxPrompt, ...]:
    return tuple(BoxPrompt(0.0, 0.0, 5.0 + i, 5.0) for i in range(n))


# --- prompts that need no image ------------------------------------------------------------------

VALID = {
    "one point": query(points=points(1)),
    "max points": query(points=points(3)),
    "one box": query(boxes=boxes(1)),
    "max boxes": query(boxes=boxes(2)),
    "points and one box": query(points=points(3), boxes=boxes(1)),
    "negative point only": query(points=(PointPrompt(1, 1, negative=True),)),
    "text": query(text="cat . dog ."),
    "text at the length limit": query(text="c" * 20),
    "thresholds at the bounds": query(points=points(1), box_threshold=1.0, text_threshold=0.0),
    "image by id": query(image=ImageRef(image_id="img_" + "0" * 32), points=points(1)),
}


@pytest.mark.parametrize("name", sorted(VALID))
def test_valid_prompts_pass(name):
    checked_segment(VALID[name], SMALL)


INVALID = {
    "no image": (query(image=ImageRef(), points=points(1)), "no image"),
    "empty prompt": (query(), "empty prompt"),
    "whitespace text only": (query(text="   "), "empty prompt"),
    "text and points": (query(text="cat .", points=points(1)), "cannot be combined"),
    "text and a box": (query(text="cat .", boxes=boxes(1)), "cannot be combined"),
    "too many points": (query(points=points(4)), "4 points is over this server's limit of 3 (--max-points)"),
    "too many boxes": (query(boxes=boxes(3)), "3 boxes is over this server's limit of 2 (--max-boxes)"),
    "points and 2 boxes": (query(points=points(1), boxes=boxes(2)), "exactly one box, got 2 boxes"),
    "NaN point x": (query(points=(PointPrompt(NAN, 1.0),)), "point 0 has a non-finite coordinate"),
    "inf point y": (query(points=(PointPrompt(1.0, 2.0), PointPrompt(1.0, INF))), "point 1 has a non-finite coordinate"),
    "-inf point": (query(points=(PointPrompt(-INF, 1.0),)), "non-finite"),
    "NaN box": (query(boxes=(BoxPrompt(0, 0, NAN, 5),)), "box 0 has a non-finite coordinate"),
    "inf box": (query(boxes=(BoxPrompt(0, 0, 5, 5), BoxPrompt(0, 0, INF, 5))), "box 1 has a non-finite coordinate"),
    "inverted box x": (query(boxes=(BoxPrompt(10, 0, 5, 5),)), "box 0 is empty or inverted"),
    "inverted box y": (query(boxes=(BoxPrompt(0, 10, 5, 5),)), "box 0 is empty or inverted"),
    "zero-width box": (query(boxes=(BoxPrompt(3, 0, 3, 5),)), "empty or inverted"),
    "zero-height box": (query(boxes=(BoxPrompt(0, 4, 5, 4),)), "empty or inverted"),
    "box_threshold NaN": (query(points=points(1), box_threshold=NAN), "box_threshold must be between 0 and 1"),
    "box_threshold negative": (query(points=points(1), box_threshold=-0.1), "box_threshold must be between 0 and 1"),
    "box_threshold > 1": (query(points=points(1), box_threshold=1.5), "box_threshold must be between 0 and 1"),
    "text_threshold NaN": (query(text="cat .", text_threshold=NAN), "text_threshold must be between 0 and 1"),
    "text_threshold negative": (query(text="cat .", text_threshold=-1.0), "text_threshold must be between 0 and 1"),
    "text_threshold > 1": (query(text="cat .", text_threshold=2.0), "text_threshold must be between 0 and 1"),
    "text_threshold inf": (query(text="cat .", text_threshold=INF), "text_threshold must be between 0 and 1"),
    "dots-only text": (query(text="..."), "empty text prompt"),
    "spaced dots-only text": (query(text=" . . "), "empty text prompt"),
    "too-long text": (query(text="c" * 21), "text prompt of 21 characters is over the limit of 20"),
    "malformed image_id": (query(image=ImageRef(image_id="photo.jpg"), points=points(1)),
                           "Segment: image_id 'photo.jpg' is not an image id"),
    "too-long model name": (query(points=points(1), model="m" * (MAX_MODEL_NAME_CHARS + 1)),
                            f"the model field: a name of {MAX_MODEL_NAME_CHARS + 1} characters is over the limit"),
    "too-long detector model name": (query(text="cat .", detector_model="d" * 10_000),
                                     "the detector_model field: a name of 10000 characters is over the limit"),
}


@pytest.mark.parametrize("name", sorted(INVALID))
def test_invalid_prompts_raise_invalid_input_with_an_actionable_message(name):
    bad, phrase = INVALID[name]
    with pytest.raises(InvalidInput, match=re.escape(phrase)):
        checked_segment(bad, SMALL)


def test_default_limits_are_64_points_and_100_boxes():
    checked_segment(query(points=points(64)), Limits())
    with pytest.raises(InvalidInput, match=re.escape("limit of 64 (--max-points)")):
        checked_segment(query(points=points(65)), Limits())
    checked_segment(query(boxes=boxes(100)), Limits())
    with pytest.raises(InvalidInput, match=re.escape("limit of 100 (--max-boxes)")):
        checked_segment(query(boxes=boxes(101)), Limits())


def test_no_image_message_names_both_fields():
    with pytest.raises(InvalidInput) as caught:
        check_image_ref(ImageRef(), "Embed")
    assert str(caught.value).startswith("Embed: no image")
    assert "Image.data" in str(caught.value) and "Image.image_id" in str(caught.value)


NOT_IDS = [
    "img_" + "0" * 31,  # one digit short
    "img_" + "0" * 33,
    "img_" + "A" * 32,  # the server writes lower case
    "IMG_" + "0" * 32,
    "img_" + "0" * 32 + "\n",
    " img_" + "0" * 32,
    "img_" + "g" * 32,
    "0" * 32,
    "image-1",
]


@pytest.mark.parametrize("image_id", NOT_IDS, ids=repr)
def test_an_image_id_that_cannot_be_an_id_is_refused_before_any_lookup(image_id):
    with pytest.raises(InvalidInput, match=re.escape("is not an image id: ids are 'img_' and 32 lower-case hex digits")):
        check_image_ref(ImageRef(image_id=image_id), "Embed")


def test_an_image_id_is_not_checked_when_the_bytes_are_sent():
    check_image_ref(ImageRef(data=b"encoded bytes", image_id="ignored"), "Embed")


def test_a_huge_image_id_is_quoted_shortened():
    with pytest.raises(InvalidInput) as caught:
        check_image_ref(ImageRef(image_id="x" * 100_000), "Embed")
    message = str(caught.value)
    assert len(message) < 400 and "(100000 characters)" in message


def test_model_names_up_to_the_bound_pass():
    check_model_name("", "model")
    check_model_name("m" * MAX_MODEL_NAME_CHARS, "model")
    with pytest.raises(InvalidInput, match=re.escape("the model field: a name of 257 characters is over the limit of 256")):
        check_model_name("m" * (MAX_MODEL_NAME_CHARS + 1), "model")


def test_box_shape_check_on_its_own():
    check_box_shape(BoxPrompt(0, 0, 0.5, 0.5), 0)
    with pytest.raises(InvalidInput, match="box 7 is empty or inverted"):
        check_box_shape(BoxPrompt(1, 1, 1, 1), 7)


@pytest.mark.parametrize("value", [NAN, INF, -INF, -1e-6, 1.000001, 5.0])
def test_threshold_out_of_range(value):
    with pytest.raises(InvalidInput, match="my_threshold must be between 0 and 1"):
        check_threshold(value, "my_threshold")


@pytest.mark.parametrize("value", [0.0, 0.25, 1.0])
def test_threshold_in_range(value):
    check_threshold(value, "my_threshold")


# --- coordinates against the image size ----------------------------------------------------------

W, H = 100, 50

INSIDE = {
    "origin point": query(points=(PointPrompt(0, 0),)),
    "edge point x == width": query(points=(PointPrompt(W, 10),)),
    "corner point": query(points=(PointPrompt(W, H),)),
    "full-image box": query(boxes=(BoxPrompt(0, 0, W, H),)),
    "fractional coordinates": query(points=(PointPrompt(99.5, 49.9),), boxes=(BoxPrompt(0.5, 0.5, 99.9, 49.9),)),
}


@pytest.mark.parametrize("name", sorted(INSIDE))
def test_coordinates_may_touch_the_image_edge(name):
    check_in_image(INSIDE[name], W, H)


OUTSIDE = {
    "point x past width": (query(points=(PointPrompt(W + 0.01, 10),)), "point 0 (100.01, 10) is outside the 100 x 50 image"),
    "point y past height": (query(points=(PointPrompt(1, 1), PointPrompt(10, H + 1))), "point 1 (10, 51) is outside"),
    "negative point": (query(points=(PointPrompt(-1, 10),)), "point 0 (-1, 10) is outside"),
    "box past width": (query(boxes=(BoxPrompt(0, 0, W + 1, 10),)), "box 0 (0, 0, 101, 10) is outside the 100 x 50 image"),
    "box past height": (query(boxes=(BoxPrompt(0, 0, 5, 5), BoxPrompt(0, 0, 10, H + 0.5))), "box 1 (0, 0, 10, 50.5) is outside"),
    "box negative min": (query(boxes=(BoxPrompt(-2, 0, 10, 10),)), "box 0 (-2, 0, 10, 10) is outside"),
    "box negative y_min": (query(boxes=(BoxPrompt(0, -0.5, 10, 10),)), "is outside the 100 x 50 image"),
}


@pytest.mark.parametrize("name", sorted(OUTSIDE))
def test_coordinates_outside_the_image_are_rejected(name):
    bad, phrase = OUTSIDE[name]
    with pytest.raises(InvalidInput, match=re.escape(phrase)):
        check_in_image(bad, W, H)


# --- text and Detect -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text", ["", "   ", ".", "...", " ... ", "\n.\t", " . . ."]
)
def test_empty_or_dots_only_text(text):
    with pytest.raises(InvalidInput, match="empty text prompt"):
        check_text(text, SMALL)


def test_text_length_limit_counts_characters():
    check_text("é" * 20, SMALL)
    with pytest.raises(InvalidInput, match="over the limit of 20"):
        check_text("é" * 21, SMALL)


DETECT_INVALID = {
    "no image": (DetectQuery(image=ImageRef(), text="cat ."), "Detect: no image"),
    "empty text": (DetectQuery(image=IMAGE, text=""), "empty text prompt"),
    "dots-only text": (DetectQuery(image=IMAGE, text=".."), "empty text prompt"),
    "spaced dots-only text": (DetectQuery(image=IMAGE, text=". ."), "empty text prompt"),
    "too-long text": (DetectQuery(image=IMAGE, text="c" * 21), "over the limit of 20"),
    "box_threshold NaN": (DetectQuery(image=IMAGE, text="cat .", box_threshold=NAN), "box_threshold must be between 0 and 1"),
    "box_threshold > 1": (DetectQuery(image=IMAGE, text="cat .", box_threshold=2.0), "box_threshold must be between 0 and 1"),
    "text_threshold negative": (DetectQuery(image=IMAGE, text="cat .", text_threshold=-0.5), "text_threshold must be between"),
    "malformed image_id": (DetectQuery(image=ImageRef(image_id="img_1"), text="cat ."), "Detect: image_id 'img_1' is not an image id"),
    "too-long model name": (DetectQuery(image=IMAGE, text="cat .", model="d" * 300),
                            "the model field: a name of 300 characters is over the limit of 256"),
}


@pytest.mark.parametrize("name", sorted(DETECT_INVALID))
def test_invalid_detect_queries(name):
    bad, phrase = DETECT_INVALID[name]
    with pytest.raises(InvalidInput, match=re.escape(phrase)):
        checked_detect(bad, SMALL)


def test_valid_detect_query():
    checked_detect(DetectQuery(image=ImageRef(image_id="img_" + "a" * 32), text="cat . dog ."), SMALL)
