"""EdgeTamTorchBackend against transformers' own EdgeTAM pipeline (processor -> EdgeTamModel ->
processor.post_process_masks) on the same tiny random-weight checkpoint in the official
`save_pretrained` format.

The backend runs the same kernels on the same inputs with the same batch shape as the pipeline
(features computed once and decoded later are the very tensors the pipeline passes on), so masks
and scores are compared exactly, as tests/tolerances.py prescribes where nothing is reordered.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from labelgate.models import kinds
from labelgate.models.backend import DecodeItem, SamPrompt
from labelgate.models.edgetam.config import edgetam_config
from labelgate.models.edgetam.demo import DEMO_BACKBONE_CHANNELS, write_edgetam_demo_model
from labelgate.models.edgetam.torch_backend import EdgeTamTorchBackend
from labelgate.models.spec import ModelSpec

from click_fidelity import PROMPTS, transformers_clicks
from click_fidelity import decode_one as _decode
from click_fidelity import sam_prompt as _prompt
from click_fidelity import scaled as _scaled
from click_fidelity import test_image as _image

SIZES = [(90, 120), (300, 200), (37, 400)]  # landscape below the 256 px input, portrait above it, extreme aspect
NO_POINTS = np.zeros((0, 2), np.float32)
NO_BOXES = np.zeros((0, 4), np.float32)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return write_edgetam_demo_model(tmp_path_factory.mktemp("edgetam") / "edgetam-demo", seed=0)


@pytest.fixture(scope="module")
def backend(model_dir):
    return EdgeTamTorchBackend.from_pretrained(model_dir)


@pytest.fixture(scope="module")
def reference(model_dir):
    """The checkpoint through transformers alone: no labelgate code, a fresh encoder run per call."""
    from transformers import EdgeTamModel, Sam2Processor

    processor = Sam2Processor.from_pretrained(model_dir)
    model = EdgeTamModel.from_pretrained(model_dir).eval()
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
    image = _image(size)
    points_for_reference = [(x, y, label) for x, y, label in points]
    expected_masks, expected_scores, _ = reference(np.array(image), points_for_reference, boxes, multimask)
    decoded = _decode(backend, cached_features[size], _prompt(points, boxes, multimask))
    objects, outputs = max(1, len(boxes)), 3 if multimask else 1
    assert decoded.masks.shape == (objects, outputs, *size) and decoded.masks.dtype == bool
    assert decoded.scores.shape == (objects, outputs) and decoded.scores.dtype == np.float32
    np.testing.assert_array_equal(decoded.masks, expected_masks)
    np.testing.assert_array_equal(decoded.scores, expected_scores)


@pytest.mark.fidelity
def test_masks_from_cached_features_equal_a_fresh_run(backend, model_dir):
    """Features decoded many times (the cache's case) give what a new encoder run gives."""
    size = SIZES[0]
    features = backend.encode([_image(size)])[0]
    prompts = [_prompt(*_scaled(name, size), multimask) for name in PROMPTS for multimask in (True, False)]
    first = [_decode(backend, features, prompt) for prompt in prompts]
    again = [_decode(backend, features, prompt) for prompt in reversed(prompts)][::-1]
    fresh_backend = EdgeTamTorchBackend.from_pretrained(model_dir)
    fresh = [_decode(fresh_backend, fresh_backend.encode([_image(size)])[0], prompt) for prompt in prompts]
    for a, b, c in zip(first, again, fresh):
        np.testing.assert_array_equal(a.masks, b.masks)
        np.testing.assert_array_equal(a.masks, c.masks)
        np.testing.assert_array_equal(a.scores, c.scores)


def test_features_say_their_size_for_the_cache(cached_features):
    for size, features in cached_features.items():
        tensors = (features.image_embed, *features.high_res_feats)
        assert features.nbytes == sum(t.numel() * t.element_size() for t in tensors) > 0
        assert features.orig_hw == size
        assert [t.shape[-1] for t in tensors] == [16, 64, 32]  # 256 px: strides 16, 4, 8


def test_one_bad_prompt_fails_only_its_own_slot(backend, cached_features):
    size = SIZES[1]
    features = cached_features[size]
    good = [_prompt(*_scaled(name, size), True) for name in ("one point", "two boxes")]
    empty = SamPrompt(NO_POINTS, np.zeros((0,), np.int32), NO_BOXES, True)
    results = backend.decode([DecodeItem(features, good[0]), DecodeItem(features, empty), DecodeItem(features, good[1])])
    assert isinstance(results[1], ValueError) and "at least one point or box" in str(results[1])
    for result, prompt in zip((results[0], results[2]), good):
        alone = _decode(backend, features, prompt)
        np.testing.assert_array_equal(result.masks, alone.masks)
        np.testing.assert_array_equal(result.scores, alone.scores)


def test_info(backend, model_dir):
    assert (backend.info.kind, backend.info.name, backend.info.device) == ("edgetam", model_dir.name, "cpu")
    assert len(backend.info.version) == 12


@pytest.mark.parametrize("channels, args", [
    ((48, 96, 192, 384), {}),  # the official model
    (DEMO_BACKBONE_CHANNELS, {"embed_dim": list(DEMO_BACKBONE_CHANNELS), "depth": [1, 1, 1, 1]}),
], ids=["official", "demo"])
def test_a_saved_config_loads_the_same_repvit_backbone(tmp_path, channels, args):
    """transformers' default EdgeTAM config builds a resnet50 (a misspelt default); ours names RepViT,
    and a save_pretrained / from_pretrained round trip keeps it."""
    from transformers import EdgeTamConfig, EdgeTamModel

    config = edgetam_config(image_size=256, backbone_channels=channels, backbone_args=args)
    config.save_pretrained(tmp_path)
    built, loaded = EdgeTamModel(config), EdgeTamModel(EdgeTamConfig.from_pretrained(tmp_path))
    for model in (built, loaded):
        timm_model = model.vision_encoder.backbone.timm_model
        assert model.config.vision_config.backbone_config.architecture == "repvit_m1"
        assert "RepVit" in type(timm_model).__name__ or any("RepVit" in type(m).__name__ for m in timm_model.modules())
        assert timm_model.feature_info.channels() == list(channels)
        assert timm_model.feature_info.reduction() == [4, 8, 16, 32]
    shapes = lambda model: {k: tuple(v.shape) for k, v in model.vision_encoder.backbone.state_dict().items()}  # noqa: E731
    assert shapes(built) == shapes(loaded)


def test_the_kind_is_built_in_and_checks_its_weights(tmp_path):
    kind = kinds.get("edgetam")
    assert kind.capabilities == {kinds.PROMPT_SEGMENT}
    assert kind.heavy_stages == {"encode"} and kind.max_batch_size("cpu", 8) == 1
    with pytest.raises(ValueError, match="not a save_pretrained directory"):
        kind.load(ModelSpec("edge", "edgetam", str(tmp_path)), kinds.LoadContext())
    with pytest.raises(ValueError, match="unknown option"):
        kind.check(ModelSpec("edge", "edgetam", str(tmp_path), {"config": "x"}))
