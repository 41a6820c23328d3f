"""CVAT tracker: SAM 2 carries each rectangle from frame to frame, computed by the labelgate server
named by LABELGATE_SERVER; the state CVAT keeps names the labelgate video session. The logic lives
in labelgate_cvat.nuclio_tracker (installed from ./wheels)."""

from labelgate_cvat.nuclio_tracker import handle_tracking, init_tracker


def init_context(context):
    init_tracker(context)


def handler(context, event):
    return handle_tracking(context, event)
