"""Reading clicks, boxes and text from /predict's context."""

import pytest

from labelgate.label_studio.prompts import PromptError, prompt_from_context


def keypoint(x, y, label="cat", positive=True, width=200, height=100):
    return {"type": "keypointlabels", "original_width": width, "original_height": height, "image_rotation": 0,
            "is_positive": positive, "value": {"x": x, "y": y, "width": 1, "keypointlabels": [label]}}


def rectangle(x, y, w, h, label="dog"):
    return {"type": "rectanglelabels", "original_width": 200, "original_height": 100, "image_rotation": 0,
            "value": {"x": x, "y": y, "width": w, "height": h, "rotation": 0, "rectanglelabels": [label]}}


@pytest.mark.parametrize("context", [None, {}, {"result": []}])
def test_no_interaction_means_batch_mode(context):
    assert prompt_from_context(context) is None


def test_clicks_become_pixels_with_negative_flags_and_the_positive_label():
    prompt = prompt_from_context({"result": [keypoint(10, 20, "dog", positive=False), keypoint(50, 50, "cat")]})
    assert prompt.points == ((20.0, 20.0, True), (100.0, 50.0, False))
    assert prompt.label == "cat"
    assert prompt.size == (200, 100)
    assert prompt.has_geometry and prompt.text == ""


def test_clicks_keep_their_region_ids_in_order():
    first, second = keypoint(10, 20), keypoint(50, 50)
    prompt = prompt_from_context({"result": [{**first, "id": "k1"}, second]})
    assert prompt.point_ids == ("k1", "")


def test_a_click_without_is_positive_counts_as_positive():
    item = keypoint(10, 10)
    del item["is_positive"]
    assert prompt_from_context({"result": [item]}).points == ((20.0, 10.0, False),)


def test_boxes_keep_their_own_labels():
    prompt = prompt_from_context({"result": [rectangle(10, 10, 50, 50, "dog"), rectangle(0, 0, 10, 10, "cat")]})
    assert [(b.box, b.label) for b in prompt.boxes] == [((20.0, 10.0, 120.0, 60.0), "dog"), ((0.0, 0.0, 20.0, 10.0), "cat")]
    assert prompt.points == ()


def test_text_prompts_come_from_a_textarea():
    prompt = prompt_from_context({"result": [{"type": "textarea", "value": {"text": ["cat . dog", " "]}}]})
    assert prompt.text == "cat . dog"
    assert not prompt.has_geometry and prompt.size is None


@pytest.mark.parametrize("item, message", [
    ({"type": "keypointlabels", "value": {"x": 1, "y": 2}}, "original_width"),
    ({**keypoint(1, 2), "original_width": 0}, "original size"),
    ({**keypoint(1, 2), "image_rotation": 90}, "rotated"),
    ({**rectangle(1, 2, 3, 4), "value": {"x": 1}}, "y"),
])
def test_malformed_items_are_reported_with_their_index(item, message):
    with pytest.raises(PromptError, match=rf"context.result\[1\].*{message}"):
        prompt_from_context({"result": [keypoint(1, 1), item]})
