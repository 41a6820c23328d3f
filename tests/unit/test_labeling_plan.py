"""Which models a labeling job asks for, from ListModels: GD + SAM 2 by default, SAM 3 by name,
and clear errors for names the server does not serve or that cannot do the job."""

from __future__ import annotations

import pytest

from labelgate.client.labeling.ontology import parse_ontology
from labelgate.client.labeling.plan import choose_models, prompt_tasks
from labelgate.client.results import ModelInfo

SAM2 = ModelInfo("sam2", "sam2", "v1", "cpu", True, ("segment_prompts",))
GDINO = ModelInfo("gdino", "grounding_dino", "v2", "cpu", True, ("detect",))
SAM3 = ModelInfo("concepts", "sam3", "v3", "cpu", True, ("segment_concepts",))
EDGETAM = ModelInfo("edgetam", "edgetam", "v4", "cpu", False, ("segment_prompts",))


def test_defaults_are_grounding_dino_and_sam2_even_next_to_sam3():
    choice = choose_models([SAM3, EDGETAM, SAM2, GDINO])
    assert (choice.segmenter, choice.detector, choice.concepts) == ("sam2", "gdino", False)
    assert choice.versions == {"sam2": "v1", "gdino": "v2"}


def test_a_named_sam3_model_needs_no_detector():
    choice = choose_models([SAM2, GDINO, SAM3], model="concepts")
    assert (choice.segmenter, choice.detector, choice.concepts, choice.versions) == ("concepts", "", True, {"concepts": "v3"})
    assert choose_models([SAM3]).concepts  # the only segmenter there is
    tasks = prompt_tasks(parse_ontology({"classes": {"car": "a car"}}), choice)
    assert [(t.text, t.call, t.model, t.detector_model) for t in tasks.values()] == [("a car .", "segment", "concepts", "")]


def test_a_named_sam2_model_is_sent_by_name():
    choice = choose_models([SAM2, GDINO, EDGETAM], model="edgetam")
    tasks = prompt_tasks(parse_ontology({"classes": {"car": "a car", "sign": {"prompts": "a sign", "output": "boxes"}}}), choice)
    assert [(t.call, t.model, t.detector_model) for t in tasks.values()] == [("segment", "edgetam", "gdino"), ("detect", "gdino", "")]


@pytest.mark.parametrize("models, model, detector, message", [
    ([SAM2, GDINO], "sam3", "", "no model 'sam3'"),
    ([SAM2, GDINO], "gdino", "", "cannot segment"),
    ([SAM2, GDINO], "", "sam2", "not a detector"),
    ([SAM2], "", "", "Grounding DINO"),
    ([GDINO], "", "", "no segmentation model"),
])
def test_mistakes_are_named(models, model, detector, message):
    with pytest.raises(ValueError, match=message):
        choose_models(models, model, detector)
