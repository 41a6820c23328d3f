"""Builds the Triton backends for `labelgate serve --backend triton --triton-url HOST:PORT`."""

from __future__ import annotations

from pathlib import Path

from labelgate.models.triton.connection import TritonConnection
from labelgate.models.triton.grounding_dino_backend import GroundingDinoTritonBackend
from labelgate.models.triton.sam2_backend import Sam2TritonBackend
from labelgate.server.errors import NotReady


def connect_backends(url: str, sam2_name: str = "", gdino_processor: Path | None = None):
    """(Sam2TritonBackend, GroundingDinoTritonBackend or None) over one connection to `url`.

    Raises NotReady while Triton or one of the models is not ready (the caller retries);
    `gdino_processor` is the Grounding DINO save_pretrained directory whose processor prepares
    the inputs (None: no text prompts, and no grounding_dino model needed in Triton).
    """
    connection = TritonConnection(url)
    try:
        models = Sam2TritonBackend.models + (GroundingDinoTritonBackend.models if gdino_processor else ())
        reason = connection.ready(models)
        if reason is not None:
            raise NotReady(reason)
        sam2 = Sam2TritonBackend(connection, name=sam2_name)
        detector = GroundingDinoTritonBackend.from_pretrained(connection, gdino_processor) if gdino_processor else None
        return sam2, detector
    except BaseException:
        connection.close()
        raise
