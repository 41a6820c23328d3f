"""The low-res logits the torch backend keeps for a refinement are the predictor's: clamped to
[-32, 32] (the demo weights' logits stay far inside that, so here the decoder's are scaled up)."""

from __future__ import annotations

import numpy as np
import pytest

from labelgate.models.backend import DecodeItem, SamPrompt
from labelgate.models.demo import SAM2_DEMO_CONFIG, SAM2_DEMO_OVERRIDES, demo_paths

LOGIT_SCALE = 1000.0  # puts the random model's logits (|x| < 1) well past the clamp


@pytest.fixture(scope="module")
def backend(demo_weights):
    from labelgate.models.sam2.torch_backend import Sam2TorchBackend

    return Sam2TorchBackend.from_checkpoint(SAM2_DEMO_CONFIG, demo_paths(demo_weights)[0], "cpu", SAM2_DEMO_OVERRIDES)


@pytest.mark.parametrize("multimask", [False, True])
def test_kept_logits_equal_the_predictors_low_res_masks_clamped(backend, monkeypatch, multimask):
    from sam2.sam2_image_predictor import SAM2ImagePredictor

    decoder = backend.model.sam_mask_decoder
    forward = decoder.forward

    def scaled(*args, **kwargs):
        low_res, *rest = forward(*args, **kwargs)
        return (low_res * LOGIT_SCALE, *rest)

    monkeypatch.setattr(decoder, "forward", scaled)
    image = np.random.default_rng(5).integers(0, 256, (60, 90, 3), dtype=np.uint8)
    points, labels = np.array([[40.0, 30.0]], np.float32), np.array([1], np.int32)
    [features] = backend.encode([image])
    prompt = SamPrompt(points, labels, np.zeros((0, 4), np.float32), multimask)
    [decoded] = backend.decode([DecodeItem(features, prompt)])

    predictor = SAM2ImagePredictor(backend.model)
    side = backend.model.image_size // 4  # the predictor assumes 1024 px feature sizes
    predictor._bb_feat_sizes = [(side, side), (side // 2, side // 2), (side // 4, side // 4)]
    predictor.set_image(image)
    masks, _, low_res = predictor.predict(point_coords=points, point_labels=labels, multimask_output=multimask)

    assert np.abs(decoded.low_res_logits).max() == 32.0  # the clamp was reached
    assert np.array_equal(decoded.low_res_logits[0], low_res)
    assert np.array_equal(decoded.masks[0], masks.astype(bool))  # masks from the unclamped logits
