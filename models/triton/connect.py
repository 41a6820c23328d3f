"""Builds the Triton backends of the `sam2` and `grounding_dino` kinds for `labelgate serve --backend
triton --triton-url HOST:PORT`: each model gets its own connection once Triton says its graphs are ready."""

from __future__ import annotations

from pathlib import Path

from labelgate.models.triton.connection import TritonConnection
from labelgate.models.triton.grounding_dino_backend import GroundingDinoTritonBackend
from labelgate.models.triton.sam2_backend import Sam2TritonBackend
from labelgate.core.errors import NotReady


def connect_sam2(url: str, name: str = "") -> Sam2TritonBackend:
    """Raises NotReady while Triton or the SAM 2 graphs are not ready (the caller retries)."""
    return _connected(url, Sam2TritonBackend.models, lambda connection: Sam2TritonBackend(connection, name=name))


def connect_grounding_dino(url: str, processor: Path, name: str = "") -> GroundingDinoTritonBackend:
    """`processor` is the save_pretrained directory the graph was exported from: its processor prepares the inputs."""
    return _connected(url, GroundingDinoTritonBackend.models,
                      lambda connection: GroundingDinoTritonBackend.from_pretrained(connection, processor, name=name))


def _connected(url: str, models, build):
    connection = TritonConnection(url)
    try:
        reason = connection.ready(models)
        if reason is not None:
            raise NotReady(reason)
        return build(connection)
    except BaseException:
        connection.close()
        raise
