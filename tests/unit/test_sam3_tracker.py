"""Clicks on a SAM 3 model (Sam3ConceptBackend.decode) against transformers' own interactive pipeline
(Sam3TrackerProcessor -> Sam3TrackerModel -> post_process_masks) on the tiny random-weight demo, laid out
as `facebook/sam3` is.

The backend computes the tracker's features from the ViT output of the concept encoder's pass; the
pipeline runs its own copy of that ViT (the same weights: `Sam3TrackerModel.from_pretrained` loads the
detector's backbone), then the same neck, convolutions and decoder on the same inputs with the same
batch shape (1). Nothing is reordered, so masks, scores and low-res logits are compared exactly, as
tests/tolerances.py prescribes where nothing is reordered.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from labelgate.core.errors import Unsupported
from labelgate.models.backend import ConceptItem, DecodeItem, SamPrompt
from labelgate.models.kinds import PROMPT_SEGMENT, SEGMENT_CONCEPTS, served_capabilities
from labelgate.models.sam3 import kind
from labelgate.models.sam3.demo import demo_config, write_sam3_demo_model
from labelgate.models.sam3.torch_backend import Sam3ConceptBackend
from labelgate.models.sam3.tracker import LOGIT_CLAMP

from click_fidelity import PROMPTS, transformers_clicks
from click_fidelity import decode_one as _decode
from click_fidelity import sam_prompt as _prompt
from click_fidelity import scaled as _scaled
from click_fidelity import test_image as _image

SIZES = [(90, 120), (300, 200), (37, 400)]  # landscape below the 224 px input, portrait above it, extreme aspect


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return write_sam3_demo_model(tmp_path_factory.mktemp("sam3") / "sam3-demo", seed=0)


@pytest.fixture(scope="module")
def backend(model_dir):
    return Sam3ConceptBackend.from_pretrained(model_dir)


@pytest.fixture(scope="module")
def reference(model_dir):
    """The checkpoint through transformers alone: no labelgate code, a fresh vision run per call."""
    from transformers import Sam3TrackerModel, Sam3TrackerProcessor

    processor = Sam3TrackerProcessor.from_pretrained(model_dir)
    model = Sam3TrackerModel.from_pretrained(model_dir).eval()
    return transformers_clicks(processor, model)


@pytest.fixture(scope="module")
def cached_features(backend):
    """Each test image encoded once; every prompt below is decoded from these same features."""
    return {size: backend.encode([_image(size)])[0] for size in SIZES}


@pytest.mark.fidelity
@pytest.mark.parametrize("multimask", [True, False], ids=["multimask", "one mask"])
@pytest.mark.parametrize("name", list(PROMPTS))
@pytest.mark.parametrize("size", SIZES, ids=[f"{h}x{w}" for h, w in SIZES])
def test_masks_and_scores_equal_the_transformers_pipeline(backend, reference, cached_features, size, name, multimask):
    points, boxes = _scaled(name, size)
    expected_masks, expected_scores, expected_logits = reference(np.array(_image(size)), points, boxes, multimask)
    decoded = _decode(backend, cached_features[size], _prompt(points, boxes, multimask))
    objects, outputs = max(1, len(boxes)), 3 if multimask else 1
    assert decoded.masks.shape == (objects, outputs, *size) and decoded.masks.dtype == bool
    assert decoded.scores.shape == (objects, outputs) and decoded.scores.dtype == np.float32
    assert 0 < decoded.masks.mean() < 1  # not a constant mask, which any features would give
    np.testing.assert_array_equal(decoded.masks, expected_masks)
    np.testing.assert_array_equal(decoded.scores, expected_scores)
    np.testing.assert_array_equal(decoded.low_res_logits, np.clip(expected_logits, -LOGIT_CLAMP, LOGIT_CLAMP))


@pytest.mark.fidelity
@pytest.mark.parametrize("size", SIZES[:2], ids=[f"{h}x{w}" for h, w in SIZES[:2]])
def test_refining_a_mask_equals_the_pipeline_with_that_mask_input(backend, reference, cached_features, size):
    """A second click with the first mask's low-res logits as `mask_input` (what `refine_mask_id` sends)."""
    first_points, _ = _scaled("one point", size)
    first = _decode(backend, cached_features[size], _prompt(first_points, [], True))
    best = first.low_res_logits[0, int(np.argmax(first.scores[0]))][None, None]  # (1, 1, h, w)
    points = first_points + [(first_points[0][0] * 1.5, first_points[0][1] * 0.5, 0)]
    expected_masks, expected_scores, _ = reference(np.array(_image(size)), points, [], False, mask_logits=best)
    refined = _decode(backend, cached_features[size], _prompt(points, [], False, mask_input=best))
    np.testing.assert_array_equal(refined.masks, expected_masks)
    np.testing.assert_array_equal(refined.scores, expected_scores)
    without = _decode(backend, cached_features[size], _prompt(points, [], False))
    assert not np.array_equal(without.scores, refined.scores)  # the mask input reached the decoder


def test_one_vit_pass_serves_concepts_and_clicks(model_dir):
    backend = Sam3ConceptBackend.from_pretrained(model_dir)
    backbone = backend.model.vision_encoder.backbone
    assert backend.tracker.vision_encoder.backbone is backbone  # one copy of the ViT's weights
    calls = []
    hook = backbone.register_forward_hook(lambda *_: calls.append(1))
    try:
        [features] = backend.encode([_image(SIZES[0])])
        backend.segment_concepts([ConceptItem(features, "cat", 0.0)])
        _decode(backend, features, _prompt(*_scaled("one point", SIZES[0]), True))
        _decode(backend, features, _prompt(*_scaled("a box", SIZES[0]), False))
    finally:
        hook.remove()
    assert len(calls) == 1


def test_the_demo_loads_whole_as_each_transformers_model(model_dir):
    """The demo is laid out as facebook/sam3: every model loads every weight it has, and nothing is left over
    that no model takes."""
    from transformers import Sam3Model, Sam3TrackerModel, Sam3VideoModel

    for model_class in (Sam3Model, Sam3TrackerModel, Sam3VideoModel):
        _, info = model_class.from_pretrained(model_dir, output_loading_info=True)
        assert not info["missing_keys"] and not info["mismatched_keys"], (model_class.__name__, info)
    _, info = Sam3VideoModel.from_pretrained(model_dir, output_loading_info=True)
    assert not info["unexpected_keys"], info


def test_a_directory_without_the_tracker_serves_concepts_and_says_why_no_clicks(model_dir, tmp_path):
    from transformers import Sam3Model, Sam3Processor

    Sam3Model(demo_config()).save_pretrained(tmp_path)  # the detector alone, as Sam3Model saves it
    Sam3Processor.from_pretrained(model_dir).save_pretrained(tmp_path)
    backend = Sam3ConceptBackend.from_pretrained(tmp_path)
    [features] = backend.encode([_image(SIZES[0])])
    assert backend.tracker is None and features.tracker is None
    assert isinstance(backend.segment_concepts([ConceptItem(features, "cat", 0.0)])[0], list)
    [result] = backend.decode([DecodeItem(features, _prompt(*_scaled("one point", SIZES[0]), True))])
    assert isinstance(result, Unsupported) and "facebook/sam3" in str(result)
    # Served, it is a concept model only (ListModels says so) and warms up without a click.
    from labelgate.server.model_loading import warm_up
    from labelgate.server.metrics import Metrics
    from labelgate.server.model_runtime import build_runtime
    from labelgate.server.settings import Settings

    assert served_capabilities(backend, kind.KIND) == {SEGMENT_CONCEPTS}
    runtime = build_runtime(backend, kind.KIND, Settings(), Metrics(), 1 << 20)
    assert runtime.segmenter is None and runtime.concepts is not None
    warm_up(backend, kind.KIND)


def test_the_kind_offers_clicks_and_concepts():
    assert {PROMPT_SEGMENT, SEGMENT_CONCEPTS} <= kind.KIND.capabilities


def test_the_runtime_gives_clicks_and_concepts_one_cache_and_one_encoder(backend):
    import asyncio

    from labelgate.server.metrics import Metrics
    from labelgate.server.model_runtime import build_runtime
    from labelgate.server.settings import Settings

    async def check():
        runtime = build_runtime(backend, kind.KIND, Settings(), Metrics(), 1 << 20)
        segmenter, concepts = runtime.segmenter, runtime.concepts
        assert concepts.features is segmenter.features and concepts.encoder is segmenter.encoder
        runtime.start()
        try:
            features = await segmenter.encoder.submit(_image(SIZES[0]))
            assert features.tracker is not None and features.fpn_hidden_states
        finally:
            await runtime.close()  # closes the one encoder once, with no second worker left behind

    asyncio.run(check())
