"""A Label Studio project as a labeling job's source: `ls://HOST:PORT/PROJECT_ID` (plain http), or
`--label-studio-url URL --project ID` for any URL.

Each task is one image, read from the data field of the project's first `<Image>` tag and downloaded
through Label Studio's API with the API key. Its dataset key is `task-<id>/<file name>` (unique per
task, so two tasks on the same picture are two images, labeled once by content), its source the
task's page in Label Studio, which is how the push finds the task again.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from urllib.parse import parse_qs, unquote, urlparse
from xml.etree import ElementTree

from labelgate.client.labeling.label_studio_api import LabelStudioApi
from labelgate.client.labeling.sources import RemoteItem

SCHEME = "ls://"
_REFERENCE = re.compile(r"^ls://(?P<host>[^/]+)/(?P<project>\d+)/?$")


@dataclass(frozen=True)
class Controls:
    """What a project's labeling config names: the Image tag and its data field, and the brush and
    rectangle controls on it with their labels ("" when the config has none)."""

    image_name: str
    image_field: str
    brush: str = ""
    box: str = ""
    labels: dict = field(default_factory=dict)  # control name -> set of label values


def parse_reference(text: str) -> tuple[str, int]:
    """ls://HOST:PORT/ID -> (http://HOST:PORT, ID)."""
    match = _REFERENCE.match(text.strip())
    if not match:
        raise ValueError(f"{text!r}: expected ls://HOST:PORT/PROJECT_ID (or --label-studio-url URL --project ID)")
    return f"http://{match['host']}", int(match["project"])


def parse_controls(config: str) -> Controls:
    try:
        root = ElementTree.fromstring(config)
    except ElementTree.ParseError as error:
        raise ValueError(f"the project's labeling config is not XML: {error}") from None
    image = next(root.iter("Image"), None)
    if image is None or not image.get("value", "").startswith("$"):
        raise ValueError("the project's labeling config has no <Image name=... value=\"$field\"/> to label")
    name = image.get("name", "")

    def control(tag: str) -> tuple[str, set[str]]:
        for element in root.iter(tag):
            if name in [part.strip() for part in element.get("toName", "").split(",")]:
                return element.get("name", ""), {label.get("value", "") for label in element.iter("Label")}
        return "", set()

    (brush, brush_labels), (box, box_labels) = control("BrushLabels"), control("RectangleLabels")
    labels = {control_name: values for control_name, values in ((brush, brush_labels), (box, box_labels)) if control_name}
    return Controls(name, image.get("value")[1:], brush, box, labels)


class LabelStudioProject:
    def __init__(self, api: LabelStudioApi, project: int):
        self.api, self.project = api, project
        details = api.get_json(f"/api/projects/{project}")
        self.title = details.get("title", "")
        self.controls = parse_controls(details.get("label_config", ""))

    @property
    def source_prefix(self) -> str:
        """Every task's source starts with this; the task id follows."""
        return f"{self.api.url}/projects/{self.project}/data?task="

    def items(self) -> Iterator[RemoteItem]:
        for task in self.api.tasks(self.project):
            yield self._item(task)

    def _item(self, task: dict) -> RemoteItem:
        task_id = int(task["id"])
        reference = (task.get("data") or {}).get(self.controls.image_field, "")
        revision = json.dumps([reference, task.get("updated_at", "")])
        return RemoteItem(f"task-{task_id}/{file_name(reference)}", f"{self.source_prefix}{task_id}", revision,
                          lambda: self.api.image_bytes(reference, task_id), reference)


def file_name(reference: str) -> str:
    """The image's file name in a task's data: the `d` of a local-files URL, else the URL path's last part."""
    parsed = urlparse(str(reference))
    local = parse_qs(parsed.query).get("d")
    name = PurePosixPath(unquote(local[0] if local else parsed.path)).name
    return name or "image"
