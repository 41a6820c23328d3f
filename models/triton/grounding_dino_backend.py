"""Grounding DINO through Triton's `grounding_dino` model, behind the same interface as
`GroundingDinoBackend` and with the same pre- and post-processing code
(`labelgate.models.grounding_dino.processing`: the checkpoint's processor, transformers'
phrase masks, the grounded post-processing).

The exported graph has a fixed input size (read from the model config), so every image is
resized to exactly that size; the torch backend keeps the processor's aspect-preserving resize.
For the same image size the two give the same boxes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from labelgate.models.backend import Detection, DetectionBackend, DetectItem, ModelInfo
from labelgate.models.export.graphs import GROUNDING_DINO, GroundingDinoGraph
from labelgate.models.grounding_dino.processing import (
    check_token_count,
    checked_caption,
    detections,
    model_inputs,
    text_structure,
)
from labelgate.models.triton.connection import TritonConnection
from labelgate.models.triton.sam2_backend import config_parameters


class GroundingDinoTritonBackend(DetectionBackend):
    models = (GROUNDING_DINO,)

    def __init__(self, connection: TritonConnection, processor, name: str = ""):
        config = connection.model_config(GROUNDING_DINO)
        parameters = config_parameters(config, connection.url)
        height, width = (int(v) for v in parameters["labelgate_image_size"].split("x"))
        logits = next(output for output in config["output"] if output["name"] == "logits")
        self.connection = connection
        self.processor = processor
        self.image_size = (height, width)
        self.max_text_len = int(logits["dims"][-1])
        self.info = ModelInfo(
            name=name or parameters.get("labelgate_name") or GROUNDING_DINO,
            kind="grounding_dino",
            version=parameters["labelgate_version"],
            device=f"triton:{connection.url}",
        )

    @classmethod
    def from_pretrained(cls, connection: TritonConnection, directory: Path | str, name: str = "") -> "GroundingDinoTritonBackend":
        """With the processor (tokenizer + image processor) of a transformers `save_pretrained`
        directory: the one the graph was exported from."""
        from transformers import AutoProcessor

        return cls(connection, AutoProcessor.from_pretrained(directory), name=name)

    def ready(self) -> str | None:
        return self.connection.ready(self.models)

    def detect(self, items: Sequence[DetectItem]) -> list[list[Detection] | Exception]:
        requests, token_ids = [], []
        results: list[list[Detection] | Exception | None] = [None] * len(items)
        for index, item in enumerate(items):
            try:
                request, input_ids = self._request(item)
            except Exception as error:
                results[index] = error
                continue
            requests.append((index, request))
            token_ids.append(input_ids)
        replies = self.connection.infer_many(GROUNDING_DINO, [r for _, r in requests], GroundingDinoGraph.output_names)
        for (index, _), input_ids, reply in zip(requests, token_ids, replies):
            if isinstance(reply, Exception):
                results[index] = reply
                continue
            try:
                logits, boxes = (torch.from_numpy(np.array(reply[name])) for name in GroundingDinoGraph.output_names)
                results[index] = detections(self.processor, logits, boxes, input_ids, items[index])
            except Exception as error:
                results[index] = error
        return results  # type: ignore[return-value]

    def _request(self, item: DetectItem) -> tuple[dict[str, np.ndarray], torch.Tensor]:
        caption = checked_caption(item)
        inputs = model_inputs(self.processor, [item.image], caption, self.image_size)
        check_token_count(inputs["input_ids"], self.max_text_len)
        masks, position_ids = text_structure(inputs["input_ids"])
        text = {name: inputs[name] for name in ("input_ids", "token_type_ids", "attention_mask")}
        request = {
            "pixel_values": inputs["pixel_values"].numpy(),
            **{name: tensor.numpy() for name, tensor in text.items()},
            "text_self_attention_masks": masks.numpy(),
            "position_ids": position_ids.numpy(),
        }
        return request, text["input_ids"]

    def close(self) -> None:
        self.connection.close()
