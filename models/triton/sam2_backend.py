"""SAM 2 through Triton: `sam2_image_encoder` once per image, `sam2_mask_decoder` per prompt.

Same interface and the same pre- and post-processing code as `Sam2TorchBackend`
(`labelgate.models.sam2.prompts`: resize + normalisation, coordinate transforms, boxes as corner
points, upscaling and thresholding), so the feature cache, batching, validation and output
formats work unchanged. Features come back as CPU torch tensors in `ImageFeatures`, exactly like
the torch backend's, so they are cached (and shared) alike; a cache hit calls only the decoder.

Every image and every prompt object is its own Triton request, all sent at once, so Triton's
dynamic batcher groups them (across labelgate replicas too). The features of an image travel
with each decoder request: at 1024 px that is 16 MiB per object, cheap on a local network next
to the GPU time saved.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from labelgate.core.errors import InvalidInput
from labelgate.models.backend import DecodedMasks, DecodeItem, ImageFeatures, ModelInfo, PromptSegmentationBackend
from labelgate.models.export.graphs import SAM2_IMAGE_ENCODER, SAM2_MASK_DECODER, Sam2ImageEncoderGraph
from labelgate.models.sam2.features import image_features
from labelgate.models.sam2.prompts import make_transforms, prompt_tokens, upscale_masks
from labelgate.models.triton.connection import TritonConnection

ENCODER_OUTPUTS = Sam2ImageEncoderGraph.output_names  # image_embed, high_res_feats_0, high_res_feats_1
MULTIMASK_OUTPUTS = ("multimask_logits", "multimask_scores")
SINGLEMASK_OUTPUTS = ("singlemask_logits", "singlemask_scores")
_CPU = torch.device("cpu")


def config_parameters(config: dict, url: str) -> dict[str, str]:
    """The labelgate_* string parameters of a Triton model config (JSON form)."""
    parameters = {key: value.get("string_value", "") for key, value in config.get("parameters", {}).items()}
    missing = [key for key in ("labelgate_version", "labelgate_image_size") if not parameters.get(key)]
    if missing:
        raise ValueError(
            f"Triton at {url}: model {config.get('name')!r} has no {', '.join(missing)} parameter; "
            "serve a repository written by `labelgate export triton-repo` or `labelgate export tensorrt`"
        )
    return parameters


class Sam2TritonBackend(PromptSegmentationBackend):
    models = (SAM2_IMAGE_ENCODER, SAM2_MASK_DECODER)

    def __init__(self, connection: TritonConnection, name: str = ""):
        encoder = config_parameters(connection.model_config(SAM2_IMAGE_ENCODER), connection.url)
        decoder = config_parameters(connection.model_config(SAM2_MASK_DECODER), connection.url)
        if encoder.get("labelgate_version") != decoder.get("labelgate_version"):
            raise ValueError(
                f"Triton at {connection.url}: {SAM2_IMAGE_ENCODER} and {SAM2_MASK_DECODER} were exported from different "
                f"weights ({encoder.get('labelgate_version')} vs {decoder.get('labelgate_version')}); re-export both"
            )
        self.connection = connection
        self.image_size = int(encoder["labelgate_image_size"])
        self.transforms = make_transforms(self.image_size)
        self.info = ModelInfo(
            name=name or encoder.get("labelgate_name") or SAM2_IMAGE_ENCODER,
            kind="sam2",
            version=encoder["labelgate_version"],
            device=f"triton:{connection.url}",
        )

    def ready(self) -> str | None:
        """None while Triton serves both SAM 2 models, else why not."""
        return self.connection.ready(self.models)

    def encode(self, images: Sequence[np.ndarray]) -> list[ImageFeatures | Exception]:
        requests: list[dict | Exception] = []
        for image in images:
            try:
                requests.append({"image": self.transforms(image)[None].numpy()})
            except Exception as error:
                requests.append(error)
        sent = [request for request in requests if not isinstance(request, Exception)]
        replies = iter(self.connection.infer_many(SAM2_IMAGE_ENCODER, sent, ENCODER_OUTPUTS))
        results: list[ImageFeatures | Exception] = []
        for image, request in zip(images, requests):
            reply = request if isinstance(request, Exception) else next(replies)
            results.append(reply if isinstance(reply, Exception) else _features(reply, image.shape[:2]))
        return results

    def decode(self, items: Sequence[DecodeItem]) -> list[DecodedMasks | Exception]:
        results: list[DecodedMasks | Exception | None] = [None] * len(items)
        outputs = {True: MULTIMASK_OUTPUTS, False: SINGLEMASK_OUTPUTS}
        # One request per object; objects of one item share its features and its token count.
        plans: dict[bool, list[tuple[int, int]]] = {True: [], False: []}  # multimask -> (item index, objects)
        requests: dict[bool, list[dict]] = {True: [], False: []}
        for index, item in enumerate(items):
            if item.prompt.mask_input is not None:
                # The exported decoder graph has no mask input (its masks carry no mask_id either).
                results[index] = InvalidInput("refining a mask (refine_mask_id) needs a SAM 2 model on the torch backend")
                continue
            try:
                coords, labels = prompt_tokens(self.transforms, item.prompt, item.features.orig_hw, _CPU)
                features = _feature_arrays(item.features)
            except Exception as error:
                results[index] = error
                continue
            multimask = bool(item.prompt.multimask_output)
            plans[multimask].append((index, coords.shape[0]))
            for row in range(coords.shape[0]):
                requests[multimask].append(
                    {**features, "point_coords": coords[row : row + 1].numpy(), "point_labels": labels[row : row + 1].numpy()}
                )
        for multimask, plan in plans.items():
            replies = iter(self.connection.infer_many(SAM2_MASK_DECODER, requests[multimask], outputs[multimask]))
            logits_name, scores_name = outputs[multimask]
            for index, objects in plan:
                rows = [next(replies) for _ in range(objects)]
                failed = next((row for row in rows if isinstance(row, Exception)), None)
                if failed is not None:
                    results[index] = failed
                    continue
                try:
                    low_res = torch.from_numpy(np.concatenate([row[logits_name] for row in rows]))
                    masks = upscale_masks(self.transforms, low_res, items[index].features.orig_hw)
                    scores = np.concatenate([row[scores_name] for row in rows]).astype(np.float32)
                    results[index] = DecodedMasks(masks=masks, scores=scores)
                except Exception as error:
                    results[index] = error
        return results  # type: ignore[return-value]

    def close(self) -> None:
        self.connection.close()


def _features(reply: dict[str, np.ndarray], orig_hw: tuple[int, int]) -> ImageFeatures:
    # Copies: the reply's arrays are read-only views of the response message.
    image_embed, *high_res = (torch.from_numpy(np.array(reply[name][0])) for name in ENCODER_OUTPUTS)
    return image_features(image_embed, high_res, orig_hw)


def _feature_arrays(features: ImageFeatures) -> dict[str, np.ndarray]:
    tensors = (features.image_embed, *features.high_res_feats)
    return {name: tensor.detach().float().cpu().numpy()[None] for name, tensor in zip(ENCODER_OUTPUTS, tensors)}
