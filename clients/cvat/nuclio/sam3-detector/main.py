"""CVAT detector: SAM 3 masks of every instance of the labels of this function's spec, computed by
the labelgate server named by LABELGATE_SERVER with the concept model named by
LABELGATE_CONCEPT_MODEL. The logic lives in labelgate_cvat.nuclio (installed from ./wheels)."""

from pathlib import Path

from labelgate_cvat.nuclio import handle_detection, init_detector


def init_context(context):
    init_detector(context, Path(__file__).with_name("function.yaml"))


def handler(context, event):
    return handle_detection(context, event)
