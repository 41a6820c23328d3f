"""A concept model (kind sam3) behind the backend: text prompts and batches give every instance,
and boxes drawn with an exemplar label give every similar object, as brush masks."""

import numpy as np
import pytest
from label_studio_sdk.converter.brush import decode_rle

from scripted_labelgate import CONCEPTS, HEIGHT, INSTANCES_PER_PHRASE, WIDTH, Fetcher, ScriptedClient, click, rectangle, task
from labelgate.label_studio.metrics import BackendMetrics
from labelgate.label_studio.predictor import PredictError, Predictor, PredictorOptions
from labelgate.label_studio.task_images import TaskImages

CONFIG = """<View><Image name="image" value="$image"/>
  <BrushLabels name="mask" toName="image"><Label value="car"/><Label value="person"/></BrushLabels>
  <RectangleLabels name="box" toName="image" smart="true">
    <Label value="car"/><Label value="person"/><Label value="more like person"/></RectangleLabels>
  <KeyPointLabels name="click" toName="image" smart="true"><Label value="person"/></KeyPointLabels>
  <TextArea name="prompt" toName="image"/></View>"""
OPTIONS = PredictorOptions(workers=2, box_threshold=0.4, concept_model=CONCEPTS, concept_threshold=0.2, max_instances=7,
                           exemplar_labels=("more like person",))


@pytest.fixture
def scripted():
    client, metrics = ScriptedClient(), BackendMetrics()
    predictor = Predictor(client, TaskImages(Fetcher()), OPTIONS, metrics)
    yield predictor, client
    predictor.close()


def concept_call(client):
    ((method, _, kwargs),) = client.calls
    assert method == "segment"
    assert (kwargs["model"], kwargs["box_threshold"], kwargs["max_instances"]) == (CONCEPTS, 0.2, 7)
    assert "detector_model" not in kwargs and "text_threshold" not in kwargs
    return kwargs


def labelled(regions, kind):
    return [region["value"][kind][0] for region in regions if region["type"] == kind]


def test_a_text_prompt_gives_every_instance_with_its_box_and_mask(scripted):
    predictor, client = scripted
    (prediction,) = predictor.predict([task(1)], CONFIG, {"result": [{"type": "textarea", "value": {"text": ["car"]}}]})

    assert concept_call(client)["text"] == "car"
    regions = prediction["result"]
    assert labelled(regions, "rectanglelabels") == labelled(regions, "brushlabels") == ["car"] * INSTANCES_PER_PHRASE
    brushes = [region for region in regions if region["type"] == "brushlabels"]
    for index, (brush, instance) in enumerate(zip(brushes, client.answers[0].objects)):
        pixels = decode_rle(brush["value"]["rle"]).reshape(HEIGHT, WIDTH, 4)[:, :, 3] > 0
        np.testing.assert_array_equal(pixels, instance.best.to_numpy())
        assert brush["score"] == instance.best.score


def test_retrieve_predictions_asks_the_concept_model_for_every_label(scripted):
    predictor, client = scripted
    predictions = predictor.predict([task(1), task(2, "/data/upload/1/b.png")], CONFIG, context=None)

    assert all(method == "segment" for method, _, _ in client.calls)  # no SAM 2 embedding first
    # Labels of exemplar boxes are no classes to look for.
    assert [kwargs["text"] for _, _, kwargs in client.calls] == ["car . person"] * 2
    for prediction in predictions:
        assert labelled(prediction["result"], "brushlabels") == ["car"] * INSTANCES_PER_PHRASE + ["person"] * INSTANCES_PER_PHRASE
        assert prediction["model_version"] == "labelgate:sam2_demo@07a180f1+concepts_demo@c0ffee12"


def test_a_box_with_an_exemplar_label_gives_every_similar_object_as_masks(scripted):
    predictor, client = scripted
    exemplars = [rectangle(10, 10, 50, 50, "more like person"), rectangle(50, 0, 25, 100, "more like person")]
    (prediction,) = predictor.predict([task(1)], CONFIG, {"result": exemplars})

    kwargs = concept_call(client)
    assert kwargs["exemplars"] == [(4.0, 2.0, 24.0, 12.0), (20.0, 0.0, 30.0, 20.0)]
    assert "points" not in kwargs and "boxes" not in kwargs and "text" not in kwargs
    # Masks only (the labeler drew the boxes), labelled with the mask label the exemplar label names.
    assert [region["type"] for region in prediction["result"]] == ["brushlabels"] * INSTANCES_PER_PHRASE
    assert labelled(prediction["result"], "brushlabels") == ["person"] * INSTANCES_PER_PHRASE


def test_other_boxes_and_clicks_still_go_to_sam2(scripted):
    predictor, client = scripted
    predictor.predict([task(1)], CONFIG, {"result": [rectangle(10, 10, 50, 50, "car")]})
    ((_, _, kwargs),) = client.calls
    assert kwargs["boxes"] == [(4.0, 2.0, 24.0, 12.0)] and kwargs["model"] == "" and not kwargs.get("exemplars")

    predictor.predict([task(1)], CONFIG, {"result": [click(50, 50), rectangle(10, 10, 50, 50, "more like person")]})
    sam2, concepts = sorted(client.calls[1:], key=lambda call: bool(call[2].get("exemplars")))
    assert sam2[2]["points"] == ((20.0, 10.0, False),) and sam2[2]["boxes"] == []
    assert concepts[2]["exemplars"] == [(4.0, 2.0, 24.0, 12.0)]


def test_exemplars_need_a_mask_control(scripted):
    predictor, _ = scripted
    config = CONFIG.replace('<BrushLabels name="mask" toName="image"><Label value="car"/><Label value="person"/></BrushLabels>', "")
    with pytest.raises(PredictError, match="exemplar boxes are turned into masks"):
        predictor.predict([task(1)], config, {"result": [rectangle(10, 10, 50, 50, "more like person")]})


def test_without_a_concept_model_text_goes_to_grounding_dino(scripted):
    _, client = scripted
    predictor = Predictor(client, TaskImages(Fetcher()), PredictorOptions(workers=1), BackendMetrics())
    predictor.predict([task(1)], CONFIG, {"result": [{"type": "textarea", "value": {"text": ["car"]}}]})
    predictor.close()
    ((_, _, kwargs),) = client.calls
    assert kwargs["model"] == "" and "detector_model" in kwargs and "max_instances" not in kwargs


def test_one_sam3_model_for_clicks_and_concepts_is_named_once_in_the_model_version(scripted):
    _, client = scripted
    options = PredictorOptions(workers=1, sam2_model=CONCEPTS, concept_model=CONCEPTS)
    predictor = Predictor(client, TaskImages(Fetcher()), options, BackendMetrics())
    assert predictor.model_version() == "labelgate:concepts_demo@c0ffee12"
    predictor.close()
