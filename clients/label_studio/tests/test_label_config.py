"""Reading the labeling config: the image field, the controls and their labels, and clear errors."""

import pytest

from labelgate.label_studio.label_config import (
    BRUSH, KEYPOINT, POLYGON, RECTANGLE, TEXTAREA, VIDEORECTANGLE, LabelConfigError, parse_label_config,
)

FULL = """<View>
  <Header value="Pick a label"/>
  <Image name="photo" value="$img_url" zoom="true"/>
  <BrushLabels name="mask" toName="photo"><Label value="Car"/><Label value="person" background="red"/></BrushLabels>
  <KeyPointLabels name="click" toName="photo" smart="true"><Label value="Car"/></KeyPointLabels>
  <RectangleLabels name="box" toName="photo"><Label value="Car"/><Label value="truck"/></RectangleLabels>
  <PolygonLabels name="outline" toName="photo"><Label value="person"/></PolygonLabels>
  <TextArea name="prompt" toName="photo" editable="true"/>
</View>"""


def test_reads_the_image_field_and_every_control():
    config = parse_label_config(FULL)
    assert (config.image_name, config.image_key) == ("photo", "img_url")
    assert [(c.kind, c.name, c.to_name) for c in config.controls] == [
        (BRUSH, "mask", "photo"), (KEYPOINT, "click", "photo"), (RECTANGLE, "box", "photo"),
        (POLYGON, "outline", "photo"), (TEXTAREA, "prompt", "photo"),
    ]
    assert config.control(BRUSH).labels == ("Car", "person")
    assert config.control(TEXTAREA).labels == ()
    assert config.wants_masks


def test_caption_labels_are_the_output_labels_once_each_in_order():
    assert parse_label_config(FULL).caption_labels == ("Car", "person", "truck")


def test_tag_names_are_case_insensitive_and_controls_on_other_objects_are_ignored():
    config = parse_label_config("""<View><Image name="a" value="$a"/><Image name="b" value="$b"/>
      <keypointlabels name="k" toName="b"><Label value="x"/></keypointlabels>
      <rectanglelabels name="r" toName="b"><Label value="x"/></rectanglelabels>
      <BrushLabels name="other" toName="elsewhere"><Label value="y"/></BrushLabels></View>""")
    assert (config.image_name, config.image_key) == ("b", "b")
    assert [c.name for c in config.controls] == ["k", "r"]
    assert not config.wants_masks
    assert config.control(BRUSH) is None


@pytest.mark.parametrize("xml, message", [
    ("", "no labeling config"),
    ("<View><Image", "not valid XML"),
    ('<View><BrushLabels name="m" toName="i"/></View>', "no <Image>"),
    ('<View><Image name="i" value="$i"/><KeyPointLabels name="k" toName="i"/></View>', "nowhere to put"),
    ('<View><Image name="i" value="http://x/y.png"/><BrushLabels name="m" toName="i"/></View>', 'value="$field"'),
])
def test_unusable_configs_say_why(xml, message):
    with pytest.raises(LabelConfigError, match=message.replace("$", r"\$")):
        parse_label_config(xml)


@pytest.mark.parametrize("phrase, label", [
    ("car", "Car"),            # case does not matter
    ("TRUCK", "truck"),
    ("red car", "Car"),        # a label the phrase contains as a word
    ("cart", "Car"),           # no match: the first label
    ("car truck", "truck"),    # several contained: the longest
])
def test_detected_phrases_map_to_the_controls_labels(phrase, label):
    control = parse_label_config(FULL).control(RECTANGLE)
    assert control.labels == ("Car", "truck")
    assert control.match_label(phrase) == label


def test_a_video_config_names_the_video_field_and_its_videorectangle():
    config = parse_label_config("""<View><Video name="clip" value="$video_url" framerate="25"/>
      <VideoRectangle name="box" toName="clip"/>
      <Labels name="labels" toName="clip"><Label value="car"/></Labels></View>""")
    assert (config.is_video, config.image_name, config.image_key) == (True, "clip", "video_url")
    assert [(c.kind, c.name) for c in config.controls] == [(VIDEORECTANGLE, "box")]
    assert not config.wants_masks and not parse_label_config(FULL).is_video


def test_a_video_without_a_field_says_so():
    with pytest.raises(LabelConfigError, match=r'<Video name="v"> needs value="\$field"'):
        parse_label_config('<View><Video name="v" value="x.mp4"/><VideoRectangle name="b" toName="v"/></View>')
