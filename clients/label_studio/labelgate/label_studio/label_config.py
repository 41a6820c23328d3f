"""What the backend needs from a project's labeling config (Label Studio's XML): the image the
controls point at, and the controls it reads prompts from or writes results to, with their labels.

    <View>
      <Image name="image" value="$image"/>
      <BrushLabels name="mask" toName="image"><Label value="cat"/></BrushLabels>
      <KeyPointLabels name="click" toName="image" smart="true"><Label value="cat"/></KeyPointLabels>
      <RectangleLabels name="box" toName="image" smart="true"><Label value="cat"/></RectangleLabels>
      <TextArea name="prompt" toName="image"/>
    </View>

A control's kind is its tag in lower case, which is also the `type` of its results
("brushlabels", "keypointlabels", "rectanglelabels", "polygonlabels", "textarea").

A video config (a <Video name="video" value="$video"/> with a <VideoRectangle toName="video"/>, and
no image controls) is read the same way, with `is_video` set: its boxes are tracked (video.py).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass

BRUSH, KEYPOINT, RECTANGLE, POLYGON, TEXTAREA = "brushlabels", "keypointlabels", "rectanglelabels", "polygonlabels", "textarea"
VIDEORECTANGLE = "videorectangle"
CONTROL_KINDS = (BRUSH, KEYPOINT, RECTANGLE, POLYGON, TEXTAREA, VIDEORECTANGLE)
# Controls the backend writes predictions to, in the order their labels make up the batch caption.
OUTPUT_KINDS = (BRUSH, RECTANGLE, POLYGON)


class LabelConfigError(ValueError):
    """The labeling config cannot be used with this backend; the message says why."""


@dataclass(frozen=True)
class Control:
    kind: str  # one of CONTROL_KINDS
    name: str  # the region's from_name
    to_name: str  # the Image tag's name
    labels: tuple[str, ...]

    def match_label(self, phrase: str) -> str:
        """The control's label for a detected phrase: the same label in any case, else the longest
        label the phrase contains as whole words ("red car" -> "car"), else the first label."""
        wanted = phrase.strip().lower()
        for label in self.labels:
            if label.lower() == wanted:
                return label
        contained = [label for label in self.labels if re.search(rf"\b{re.escape(label.lower())}\b", wanted)]
        if contained:
            return max(contained, key=len)
        return self.labels[0] if self.labels else phrase


@dataclass(frozen=True)
class LabelConfig:
    image_name: str  # the Image tag's name, the to_name of every region (the Video's, for a video)
    image_key: str  # the task data field that holds the image URL ("image" for value="$image")
    controls: tuple[Control, ...]
    is_video: bool = False

    def control(self, kind: str) -> Control | None:
        """The first control of `kind` on the image, or None."""
        return next((control for control in self.controls if control.kind == kind), None)

    @property
    def caption_labels(self) -> tuple[str, ...]:
        """The labels of the output controls, each once, in config order."""
        labels: dict[str, None] = {}
        for kind in OUTPUT_KINDS:
            for control in self.controls:
                if control.kind == kind:
                    labels.update(dict.fromkeys(control.labels))
        return tuple(labels)

    @property
    def wants_masks(self) -> bool:
        return self.control(BRUSH) is not None or self.control(POLYGON) is not None


def parse_label_config(xml: str) -> LabelConfig:
    """Reads the controls on the first Image that a supported control points at."""
    if not xml or not xml.strip():
        raise LabelConfigError("the project has no labeling config")
    try:
        root = ElementTree.fromstring(xml)
    except ElementTree.ParseError as error:
        raise LabelConfigError(f"the labeling config is not valid XML: {error}") from None

    images = {element.get("name"): element.get("value", "") for element in root.iter() if element.tag.lower() == "image"}
    controls = [_control(element) for element in root.iter() if element.tag.lower() in CONTROL_KINDS]
    on_images = [control for control in controls if control.to_name in images]
    videos = {element.get("name"): element.get("value", "") for element in root.iter() if element.tag.lower() == "video"}
    tracked = next((c for c in controls if c.kind == VIDEORECTANGLE and c.to_name in videos), None)
    if tracked is not None and not any(control.kind in OUTPUT_KINDS for control in on_images):
        return LabelConfig(image_name=tracked.to_name, image_key=_field("Video", tracked.to_name, videos[tracked.to_name]),
                           controls=(tracked,), is_video=True)
    if not images:
        raise LabelConfigError("the labeling config has no <Image> tag: this backend labels images, and videos "
                               "with <Video> + <VideoRectangle>")
    if not any(control.kind in OUTPUT_KINDS for control in on_images):
        raise LabelConfigError(
            "the labeling config has no <BrushLabels>, <RectangleLabels> or <PolygonLabels> on an <Image>: "
            "there is nowhere to put the masks and boxes"
        )
    image_name = next(control.to_name for control in on_images if control.kind in OUTPUT_KINDS)
    return LabelConfig(
        image_name=image_name,
        image_key=_field("Image", image_name, images[image_name]),
        controls=tuple(control for control in on_images if control.to_name == image_name),
    )


def _field(tag: str, name: str, value: str) -> str:
    """The task data field an object tag's value="$field" names."""
    if not value.startswith("$") or len(value) < 2:
        raise LabelConfigError(f'<{tag} name="{name}"> needs value="$field" naming the task field with the {tag.lower()} URL')
    return value[1:]


def _control(element: ElementTree.Element) -> Control:
    name, to_name = element.get("name", ""), element.get("toName", "")
    labels = tuple(label.get("value", "") for label in element.iter() if label.tag.lower() == "label" and label.get("value"))
    # toName may list several objects ("image,video"); this backend only needs the first.
    return Control(kind=element.tag.lower(), name=name, to_name=to_name.split(",")[0].strip(), labels=labels)
