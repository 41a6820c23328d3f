"""Ontology files of `labelgate label`: shorthand and full forms, defaults, a stable hash, clear errors."""

from __future__ import annotations

import pytest
from labelgate.client.labeling.ontology import (
    OntologyError,
    load_ontology,
    parse_ontology,
)


def test_shorthand_and_full_forms_with_defaults_and_overrides():
    ontology = parse_ontology({
        "defaults": {"box_threshold": 0.3, "min_area": 10},
        "nms": {"iou": 0.6, "agnostic_iou": 0.8, "by": "box"},
        "classes": {
            "car": "a car .",
            "person": {"prompts": ["a pedestrian", "a  cyclist", "a pedestrian"], "output": "boxes", "min_area": 64},
        },
    })
    car, person = ontology.classes
    assert ontology.class_names == ["car", "person"]
    assert car.prompts == ("a car",) and car.box_threshold == 0.3 and car.min_area == 10 and car.output == "masks"
    assert person.prompts == ("a pedestrian", "a cyclist")  # whitespace normalised, repeats dropped
    assert person.output == "boxes" and person.min_area == 64 and person.box_threshold == 0.3
    assert (ontology.nms.iou, ontology.nms.agnostic_iou, ontology.nms.by) == (0.6, 0.8, "box")


def test_hash_ignores_how_the_file_is_written_but_not_what_it_says(tmp_path):
    yaml_file = tmp_path / "a.yaml"
    yaml_file.write_text("classes:\n  car: a car\n  dog: [a dog]\n")
    json_file = tmp_path / "b.json"
    json_file.write_text('{"classes": {"car": {"prompts": "a car ."}, "dog": "a dog"}}')
    assert load_ontology(yaml_file).hash == load_ontology(json_file).hash
    assert parse_ontology({"classes": {"car": "a car", "dog": "a puppy"}}).hash != load_ontology(yaml_file).hash
    assert parse_ontology({"classes": {"dog": "a dog", "car": "a car"}}).hash != load_ontology(yaml_file).hash


@pytest.mark.parametrize("data, message", [
    ({"class": {"car": "a car"}}, "classes"),
    ({"classes": {}}, "at least one class"),
    ({"classes": {"car": ""}}, "non-empty"),
    ({"classes": {"car": "a car . a truck"}}, "contains '.'"),
    ({"classes": {"car": {"prompts": "a car", "box_treshold": 0.3}}}, "unknown key"),
    ({"classes": {"car": {"prompts": "a car", "box_threshold": 1.5}}}, "box_threshold"),
    ({"classes": {"car": {"prompts": "a car", "output": "polygons"}}}, "output"),
    ({"classes": {"car": "a car"}, "nms": {"by": "area"}}, "nms"),
    ({"classes": {"car": "a car"}, "colour": "red"}, "unknown key"),
])
def test_mistakes_are_named(data, message):
    with pytest.raises(OntologyError, match=message):
        parse_ontology(data)


def test_a_file_error_names_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("classes: [car\n")
    with pytest.raises(OntologyError, match="bad.yaml"):
        load_ontology(path)
