"""A `SamPrompt` as the nested lists transformers' SAM 2-style processors take (`Sam2Processor` for
EdgeTAM, `Sam3TrackerProcessor` for SAM 3's clicks)."""

from __future__ import annotations

from labelgate.models.backend import SamPrompt


def prompt_lists(prompt: SamPrompt) -> dict:
    """The processor's nested inputs for one image: [image][object][point] points and labels,
    [image][box] boxes. Points with boxes go with each box (the model pairs them one to one)."""
    points = [[float(x), float(y)] for x, y in prompt.points]
    labels = [int(label) for label in prompt.labels]
    boxes = [[float(v) for v in box] for box in prompt.boxes]
    if not points and not boxes:
        raise ValueError("a prompt needs at least one point or box")
    inputs = {}
    if points:
        copies = max(1, len(boxes))
        inputs["input_points"] = [[points] * copies]
        inputs["input_labels"] = [[labels] * copies]
    if boxes:
        inputs["input_boxes"] = [boxes]
    return inputs
