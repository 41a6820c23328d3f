"""feature_codec: exact round trips where stored fp32, fp16 within the mask bar, bad bytes refused."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from labelgate.models.backend import ImageFeatures
from labelgate.server.feature_codec import (
    FP16_TENSORS,
    FeatureFormatError,
    SharedTierFeatures,
    decode_features,
    encode_features,
)
from tolerances import FP16_STORAGE_ATOL, FP16_STORAGE_RTOL

BENCH = Path(__file__).resolve().parents[2] / "bench" / "feature_precision.py"


def _features(make, scale: float = 1.0) -> ImageFeatures:
    rng = np.random.default_rng(0)
    arrays = [(rng.standard_normal(shape) * scale).astype(np.float32) for shape in [(32, 16, 16), (8, 64, 64), (16, 32, 32)]]
    tensors = [make(a) for a in arrays]
    return ImageFeatures(tensors[0], tuple(tensors[1:]), (100, 150), sum(a.nbytes for a in arrays))


def test_fp32_round_trip_is_exact_and_keeps_kind_shape_size():
    features = _features(torch.from_numpy)
    restored = decode_features(encode_features(features, fp16=frozenset()), "torch", "cpu")

    assert isinstance(restored, SharedTierFeatures) and isinstance(restored.image_embed, torch.Tensor)
    assert restored.orig_hw == (100, 150) and restored.nbytes == features.nbytes
    for original, back in zip([features.image_embed, *features.high_res_feats], [restored.image_embed, *restored.high_res_feats]):
        assert back.dtype == torch.float32 and torch.equal(original, back)


def test_fp16_halves_the_bytes_and_decodes_to_float32_numpy_for_numpy_backends():
    features = _features(lambda a: a)
    full = encode_features(features, fp16=frozenset())
    half = encode_features(features, fp16=FP16_TENSORS)
    restored = decode_features(half)

    assert len(half) < 0.51 * len(full)
    assert isinstance(restored.image_embed, np.ndarray) and restored.image_embed.dtype == np.float32
    assert restored.nbytes == features.nbytes  # what the local LRU accounts: the float32 size
    np.testing.assert_allclose(restored.high_res_feats[0], features.high_res_feats[0], rtol=FP16_STORAGE_RTOL, atol=FP16_STORAGE_ATOL)


def test_tensor_beyond_float16_range_is_kept_float32():
    features = _features(lambda a: a, scale=1e6)
    restored = decode_features(encode_features(features, fp16=FP16_TENSORS))
    assert np.array_equal(restored.image_embed, features.image_embed)


@pytest.mark.parametrize("damage", ["magic", "truncated", "trailing"])
def test_foreign_or_damaged_bytes_are_refused(damage):
    data = encode_features(_features(lambda a: a))
    data = {"magic": b"XXXX" + data[4:], "truncated": data[:-10], "trailing": data + b"\0"}[damage]
    with pytest.raises(FeatureFormatError):
        decode_features(data)


def test_fp16_features_keep_demo_model_masks_within_iou_0999(demo_weights):
    """The bar FP16_TENSORS was chosen by (bench/feature_precision.py also runs hiera-tiny at 1024 px)."""
    from labelgate.models.demo import SAM2_DEMO_CONFIG, SAM2_DEMO_OVERRIDES
    from labelgate.models.sam2.torch_backend import Sam2TorchBackend
    from labelgate.models.demo import demo_paths

    spec = importlib.util.spec_from_file_location("feature_precision", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    backend = Sam2TorchBackend.from_checkpoint(SAM2_DEMO_CONFIG, demo_paths(demo_weights)[0], "cpu", SAM2_DEMO_OVERRIDES)

    assert bench.min_mask_iou(backend, bench.sample_images(2), FP16_TENSORS) >= bench.IOU_BAR


def test_torch_features_for_a_backend_whose_device_is_not_a_torch_device_land_on_the_cpu():
    """The Triton backend keeps CPU tensors and names its device triton:URL."""
    restored = decode_features(encode_features(_features(torch.from_numpy)), "torch", "triton:127.0.0.1:8001")
    assert restored.image_embed.device == torch.device("cpu")
