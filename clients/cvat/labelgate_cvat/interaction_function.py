"""A cvat-sdk interaction function: SAM 2 masks from clicks and an optional box, computed by
labelgate. Run it as a CVAT agent:

    cvat-cli function create-native "SAM 2 (labelgate)" --function-module labelgate_cvat.interaction_function
    cvat-cli function run-agent FUNCTION_ID --function-module labelgate_cvat.interaction_function \\
        -p server=str:HOST:50051

Without `server`, LABELGATE_SERVER (and LABELGATE_AUTH_TOKEN / LABELGATE_TLS_CA) name the server.
`preprocess_image` sends the frame once and has labelgate compute its SAM 2 features; the agent
keeps its result per frame, so every later click sends only the image id.
"""

from __future__ import annotations

from dataclasses import dataclass

import cvat_sdk.auto_annotation as cvataa
import cvat_sdk.models as models
import PIL.Image
from cvat_sdk.masks import encode_mask

from labelgate.client import encode_image
from labelgate_cvat.lazy_client import LazyClient
from labelgate_cvat.prompts import segment_prompt


@dataclass(frozen=True)
class EmbeddedFrame:
    """A frame labelgate has the features of: its PNG bytes, resent only if the server forgot it."""

    data: bytes


class LabelgateInteractionFunction(LazyClient):
    spec = cvataa.InteractionFunctionSpec(min_pos_points=1, min_neg_points=0, min_bounding_boxes=0)

    def preprocess_image(self, context: cvataa.InteractionFunctionContext, image: PIL.Image.Image) -> EmbeddedFrame:
        frame = EmbeddedFrame(encode_image(image))
        self.client.embed(frame.data)
        return frame

    def detect(self, context: cvataa.InteractionFunctionContext, pp_image: EmbeddedFrame,
               prompts: cvataa.InteractionPrompts) -> list[cvataa.InteractionResultShape]:
        mask, score = segment_prompt(self.client, pp_image.data, prompts.pos_points, prompts.neg_points,
                                     prompts.bounding_box)
        confidence = models.AttributeValRequest(spec_id=cvataa.InteractionResultAttributes.CONFIDENCE,
                                                value=str(min(max(score, 0.0), 1.0)))
        return [cvataa.InteractionResultShape(type="mask", points=encode_mask(mask), attributes=[confidence])]


create = LabelgateInteractionFunction
