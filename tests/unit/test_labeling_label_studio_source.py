"""Reading a Label Studio project's labeling config and task data for `labelgate label ls://...`
(the calls themselves run against a real Label Studio in tests/integration/test_label_studio_source.py)."""

from __future__ import annotations

import pytest
from labelgate.client.labeling.export.label_studio import label_config
from labelgate.client.labeling.label_studio_push import check_controls
from labelgate.client.labeling.label_studio_source import (
    file_name,
    parse_controls,
    parse_reference,
)
from labelgate.client.labeling.ontology import Ontology

ONTOLOGY = Ontology.from_dict({"classes": {"car": {"prompts": ["a car"]},
                                           "sign": {"prompts": ["a sign"], "output": "boxes"}}})


def test_a_reference_names_the_server_and_project():
    assert parse_reference("ls://localhost:8080/3") == ("http://localhost:8080", 3)
    with pytest.raises(ValueError, match="--label-studio-url"):
        parse_reference("ls://localhost:8080/projects/3")


def test_controls_are_the_ones_on_the_first_image():
    config = ('<View><Image name="photo" value="$img"/><Image name="other" value="$other"/>'
              '<BrushLabels name="outline" toName="photo"><Label value="car"/></BrushLabels>'
              '<RectangleLabels name="frame" toName="other, photo"><Label value="sign"/><Label value="car"/>'
              '</RectangleLabels><RectangleLabels name="unused" toName="other"/></View>')
    controls = parse_controls(config)
    assert (controls.image_name, controls.image_field, controls.brush, controls.box) == ("photo", "img", "outline", "frame")
    assert controls.labels == {"outline": {"car"}, "frame": {"sign", "car"}}
    check_controls(controls, ONTOLOGY)


def test_a_config_that_cannot_show_the_classes_is_refused_before_labeling():
    with pytest.raises(ValueError, match="no <Image"):
        parse_controls("<View><Text name='t' value='$text'/></View>")
    missing_label = parse_controls(label_config(["car"]))
    with pytest.raises(ValueError, match='<RectangleLabels name="box"> has no <Label value="sign"/>'):
        check_controls(missing_label, ONTOLOGY)
    no_brush = parse_controls('<View><Image name="image" value="$image"/>'
                              '<RectangleLabels name="box" toName="image"><Label value="sign"/></RectangleLabels></View>')
    with pytest.raises(ValueError, match="no <BrushLabels toName=\"image\"> for class 'car'"):
        check_controls(no_brush, ONTOLOGY)


@pytest.mark.parametrize(("reference", "name"), [
    ("/data/local-files/?d=photos/street%20view/1.jpg", "1.jpg"),
    ("/data/upload/3/ab12cd34-photo.png", "ab12cd34-photo.png"),
    ("https://example.com/images/x.webp?sig=abc", "x.webp"),
    ("", "image"),
])
def test_the_key_keeps_the_image_file_name(reference, name):
    assert file_name(reference) == name
