"""Successive clicks on one object refine labelgate's previous mask (refine_mask_id), as Label
Studio sends them: every click of the label so far, oldest first, each with its region id."""

import pytest

from scripted_labelgate import Fetcher, ScriptedClient, click, task
from labelgate.label_studio.metrics import BackendMetrics
from labelgate.label_studio.predictor import Predictor, PredictorOptions
from labelgate.label_studio.refinement import RefineMemory
from labelgate.label_studio.task_images import TaskImages

CONFIG = """<View><Image name="image" value="$image"/>
  <BrushLabels name="mask" toName="image"><Label value="person"/></BrushLabels>
  <KeyPointLabels name="click" toName="image" smart="true"><Label value="person"/></KeyPointLabels></View>"""
CLICKS = [click(50, 50, region_id="a"), click(20, 40, positive=False, region_id="b"), click(70, 60, region_id="c")]


@pytest.fixture
def scripted():
    client, metrics = ScriptedClient(), BackendMetrics()
    predictor = Predictor(client, TaskImages(Fetcher()), PredictorOptions(workers=1), metrics)
    yield predictor, client, metrics
    predictor.close()


def segments(client):
    return [kwargs for method, _, kwargs in client.calls if method == "segment"]


def best_mask_id(client, call_index):
    """The mask id of the best mask labelgate answered the call_index-th segment with."""
    return client.answers[call_index].objects[0].best.mask_id


def refinements(metrics, outcome):
    return metrics.refinements.labels(outcome=outcome)._value.get()


def test_each_new_click_refines_the_best_mask_of_the_previous_ones(scripted):
    predictor, client, metrics = scripted
    for count in (1, 2, 3):
        predictor.predict([task(1)], CONFIG, {"result": CLICKS[:count]})

    first, second, third = segments(client)
    assert first["refine"] is None and first["multimask"] is True
    # The best of the first answer's three masks is the one SAM 2 continues from.
    assert second["refine"] == best_mask_id(client, 0) != client.answers[0].objects[0].masks[0].mask_id
    assert third["refine"] == best_mask_id(client, 1) != second["refine"]
    assert (len(second["points"]), len(third["points"])) == (2, 3)
    assert third["multimask"] is False
    assert refinements(metrics, "refined") == 2


def test_clicks_without_region_ids_are_matched_by_position(scripted):
    predictor, client, _ = scripted
    plain = [click(50, 50), click(20, 40)]
    predictor.predict([task(1)], CONFIG, {"result": plain[:1]})
    predictor.predict([task(1)], CONFIG, {"result": plain})
    assert segments(client)[1]["refine"] == best_mask_id(client, 0)


@pytest.mark.parametrize("second", [
    pytest.param([CLICKS[0] | {"value": {**CLICKS[0]["value"], "x": 10}}, CLICKS[1]], id="first click moved"),
    pytest.param([click(50, 50, region_id="other"), CLICKS[1]], id="another region"),
    pytest.param(CLICKS[1:2], id="one click is a new start"),
])
def test_anything_but_the_same_clicks_plus_one_starts_afresh(scripted, second):
    predictor, client, metrics = scripted
    predictor.predict([task(1)], CONFIG, {"result": CLICKS[:1]})
    predictor.predict([task(1)], CONFIG, {"result": second})
    assert segments(client)[1]["refine"] is None
    assert refinements(metrics, "refined") == 0


def test_the_same_clicks_on_another_task_do_not_refine(scripted):
    predictor, client, _ = scripted
    predictor.predict([task(1)], CONFIG, {"result": CLICKS[:1]})
    predictor.predict([task(2, "/data/upload/1/b.png")], CONFIG, {"result": CLICKS[:2]})
    assert segments(client)[1]["refine"] is None


def test_a_mask_labelgate_has_evicted_falls_back_to_all_the_clicks(scripted):
    predictor, client, metrics = scripted
    predictor.predict([task(1)], CONFIG, {"result": CLICKS[:1]})
    client.evicted.add(best_mask_id(client, 0))

    (prediction,) = predictor.predict([task(1)], CONFIG, {"result": CLICKS[:2]})

    refused, again = segments(client)[1:]
    assert refused["refine"] == best_mask_id(client, 0)
    assert again["refine"] is None and again["points"] == refused["points"]
    assert [region["type"] for region in prediction["result"]] == ["brushlabels"]
    assert (refinements(metrics, "expired"), refinements(metrics, "refined")) == (1, 0)
    # The fresh answer is remembered: the next click refines it.
    predictor.predict([task(1)], CONFIG, {"result": CLICKS})
    assert segments(client)[3]["refine"] == best_mask_id(client, 2)


@pytest.mark.parametrize("mask_evicted_too", [False, True])
def test_an_image_labelgate_has_forgotten_is_sent_again_and_still_refined(scripted, mask_evicted_too):
    predictor, client, metrics = scripted
    predictor.predict([task(1)], CONFIG, {"result": CLICKS[:1]})
    previous = best_mask_id(client, 0)
    client.image_forgotten = True
    if mask_evicted_too:
        client.evicted.add(previous)

    predictor.predict([task(1)], CONFIG, {"result": CLICKS[:2]})

    tries = [(type(image).__name__, kwargs["refine"]) for _, image, kwargs in client.calls[1:]]
    expected = [("ImageId", previous), ("ImageId", None), ("bytes", previous)] + ([("bytes", None)] * mask_evicted_too)
    assert tries == expected
    outcome = "expired" if mask_evicted_too else "refined"
    assert refinements(metrics, outcome) == 1 and refinements(metrics, "refined") + refinements(metrics, "expired") == 1


def test_the_memory_is_bounded_least_recently_used_first():
    memory = RefineMemory(capacity=2)
    for name in ("a", "b"):
        memory.remember("task", (name,), f"mask_{name}")
    assert memory.previous("task", ("a", "new")) == "mask_a"  # a is now the most recent
    memory.remember("task", ("c",), "mask_c")
    assert len(memory) == 2
    assert (memory.previous("task", ("a", "x")), memory.previous("task", ("b", "x"))) == ("mask_a", "")
    memory.forget_previous("task", ("a", "x"))
    assert memory.previous("task", ("a", "x")) == ""
    memory.remember("task", ("d",), "")  # masks labelgate cannot refine are not kept
    assert memory.previous("task", ("d", "x")) == ""
