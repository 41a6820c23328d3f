"""The predictor's choices, with a scripted labelgate client: which calls, which prompts, what
comes back for Label Studio, and per-task failures in a batch."""

import numpy as np
import pytest
from label_studio_sdk.converter.brush import decode_rle

from scripted_labelgate import HEIGHT, WIDTH, Fetcher, ScriptedClient, click, mask, task
from labelgate.label_studio.metrics import BackendMetrics
from labelgate.label_studio.predictor import PredictError, Predictor, PredictorOptions
from labelgate.label_studio.task_images import TaskImages

MASKS = """<View><Image name="image" value="$image"/>
  <BrushLabels name="mask" toName="image"><Label value="car"/><Label value="person"/></BrushLabels>
  <RectangleLabels name="box" toName="image"><Label value="car"/><Label value="person"/></RectangleLabels>
  <KeyPointLabels name="click" toName="image"><Label value="car"/><Label value="person"/></KeyPointLabels></View>"""
BOXES_ONLY = """<View><Image name="image" value="$image"/>
  <RectangleLabels name="box" toName="image"><Label value="car"/><Label value="person"/></RectangleLabels></View>"""


@pytest.fixture
def scripted():
    client, metrics = ScriptedClient(), BackendMetrics()
    predictor = Predictor(client, TaskImages(Fetcher()), PredictorOptions(workers=2, box_threshold=0.4), metrics)
    yield predictor, client, metrics
    predictor.close()


def test_batch_uses_the_labels_as_caption_and_returns_boxes_and_masks_per_task(scripted):
    predictor, client, metrics = scripted
    (prediction,) = predictor.predict([task(1)], MASKS, context=None)

    segment = [kwargs for method, _, kwargs in client.calls if method == "segment"]
    assert [kwargs["text"] for kwargs in segment] == ["car . person"]
    assert segment[0]["box_threshold"] == 0.4
    assert [method for method, _, _ in client.calls] == ["embed", "segment"]
    assert prediction["model_version"] == "labelgate:sam2_demo@07a180f1+gdino_demo@fdcfc6f0"
    kinds = [(r["type"], r["value"].get("rectanglelabels") or r["value"].get("brushlabels")) for r in prediction["result"]]
    assert kinds == [("rectanglelabels", ["car"]), ("brushlabels", ["car"]),
                     ("rectanglelabels", ["person"]), ("brushlabels", ["person"])]
    rectangle = prediction["result"][0]["value"]
    assert (rectangle["x"], rectangle["y"], rectangle["width"], rectangle["height"]) == (10.0, 10.0, 50.0, 50.0)
    brush = decode_rle(prediction["result"][1]["value"]["rle"]).reshape(HEIGHT, WIDTH, 4)[:, :, 3] > 0
    np.testing.assert_array_equal(brush, mask(0, 0).to_numpy())
    assert prediction["score"] == pytest.approx((0.8 + 0.9 + 0.6 + 0.7) / 4)


def test_one_bad_task_does_not_fail_the_batch(scripted):
    predictor, client, metrics = scripted
    predictions = predictor.predict([task(1), task(2, "/data/upload/1/broken.png"), task(3, "/x/c.png")], MASKS, None)
    assert ["result" in p for p in predictions] == [True, False, True]
    assert "task 2" in predictions[1]["error"] and "HTTP 404" in predictions[1]["error"]
    assert b'labelgate_ls_tasks_total{mode="batch",outcome="error"} 1.0' in metrics.render()


def test_a_config_without_masks_only_detects(scripted):
    predictor, client, _ = scripted
    (prediction,) = predictor.predict([task(1)], BOXES_ONLY, None)
    assert [method for method, _, _ in client.calls] == ["detect"]
    (region,) = prediction["result"]
    assert (region["type"], region["value"]["rectanglelabels"]) == ("rectanglelabels", ["car"])  # "red car" -> car
    assert predictor.pre_embed_in_background([task(1)], BOXES_ONLY) == 0


def test_one_click_asks_for_three_masks_and_keeps_the_best(scripted):
    predictor, client, _ = scripted
    (prediction,) = predictor.predict([task(1)], MASKS, {"result": [click(50, 50)]})
    (_, image, kwargs), = client.calls
    assert image == b"png bytes of /data/upload/1/a.png"
    assert kwargs["points"] == ((20.0, 10.0, False),) and kwargs["multimask"] is True and kwargs["boxes"] == []
    (brush,) = prediction["result"]
    assert brush["value"]["brushlabels"] == ["person"] and brush["score"] == 0.8


def test_clicks_and_boxes_combine_with_the_newest_box(scripted):
    predictor, client, _ = scripted
    box = lambda x, label: {"type": "rectanglelabels", "original_width": WIDTH, "original_height": HEIGHT,  # noqa: E731
                            "value": {"x": x, "y": 0, "width": 10, "height": 50, "rectanglelabels": [label]}}
    predictor.predict([task(1)], MASKS, {"result": [click(50, 50, "car"), box(0, "person"), click(5, 5, positive=False),
                                                     box(50, "person")]})
    (_, _, kwargs), = client.calls
    assert kwargs["points"] == ((20.0, 10.0, False), (2.0, 1.0, True))
    assert kwargs["boxes"] == [(20.0, 0.0, 24.0, 10.0)] and kwargs["multimask"] is False


def test_the_second_interaction_sends_only_the_image_id(scripted):
    predictor, client, _ = scripted
    for _ in range(2):
        predictor.predict([task(1)], MASKS, {"result": [click(50, 50)]})
    assert [type(image).__name__ for _, image, _ in client.calls] == ["bytes", "ImageId"]


def test_a_size_mismatch_between_label_studio_and_the_image_is_an_error(scripted):
    predictor, _, _ = scripted
    wrong = {**click(50, 50), "original_width": 80}
    with pytest.raises(PredictError, match="as 80 x 20 pixels but it decodes to 40 x 20"):
        predictor.predict([task(1)], MASKS, {"result": [wrong]})


def test_clicks_need_a_mask_control(scripted):
    predictor, _, _ = scripted
    config = BOXES_ONLY.replace("</View>", '<KeyPointLabels name="k" toName="image"/></View>')
    with pytest.raises(PredictError, match="add <BrushLabels> or <PolygonLabels>"):
        predictor.predict([task(1)], config, {"result": [click(50, 50)]})
