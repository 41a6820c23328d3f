"""CVAT interactor: SAM 2 masks from clicks and an optional box, computed by the labelgate server
named by LABELGATE_SERVER. The logic lives in labelgate_cvat.nuclio (installed from ./wheels)."""

from labelgate_cvat.nuclio import handle_interaction, init_interactor


def init_context(context):
    init_interactor(context)


def handler(context, event):
    return handle_interaction(context, event)
