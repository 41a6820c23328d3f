"""feature_codec: exact round trips where stored fp32, fp16 within the mask bar, bad bytes refused;
SAM 3 features restored on another backend give exactly its concepts and clicks."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import struct
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


# --- SAM 3 ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sam3_backends(demo_weights):
    """Two SAM 3 backends on the demo weights: the replica that encodes and one that only reads."""
    from labelgate.models.demo import extra_demo_paths
    from labelgate.models.sam3.torch_backend import Sam3ConceptBackend

    directory = extra_demo_paths(demo_weights)["sam3"]
    return Sam3ConceptBackend.from_pretrained(directory), Sam3ConceptBackend.from_pretrained(directory)


def _sam3_images() -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in [(90, 120), (300, 200)]]


def test_sam3_features_from_bytes_give_the_same_concepts_and_clicks_on_another_backend(sam3_backends):
    """A second replica's backend, which never encoded, gets features equal to the tensor, position
    encodings made from the shapes alone (equal to those of a batch-2 encode), and so exactly the
    concepts and clicks of the encoding replica."""
    from labelgate.models.backend import ConceptItem, DecodeItem, SamPrompt
    from labelgate.server.feature_codec import SharedTierConceptFeatures, from_shared_tier

    encoder, reader = sam3_backends
    for features in encoder.encode(_sam3_images()):  # one batch of two images
        restored = decode_features(encode_features(features), "torch", "cpu", reader.position_encodings)

        assert isinstance(restored, SharedTierConceptFeatures) and from_shared_tier(restored)
        assert restored.orig_hw == features.orig_hw and restored.nbytes == features.nbytes
        for original, back in zip(features.fpn_hidden_states + features.fpn_position_encoding,
                                  restored.fpn_hidden_states + restored.fpn_position_encoding, strict=True):
            assert back.dtype == original.dtype and torch.equal(back, original)
        for query in (ConceptItem(features, "cat", 0.0),
                      ConceptItem(features, "", 0.0, boxes=np.array([[10, 10, 60, 50]], np.float32), box_labels=np.array([1]))):
            [expected] = encoder.segment_concepts([query])
            [found] = reader.segment_concepts([dataclasses.replace(query, features=restored)])
            assert len(found) == len(expected) > 0
            for a, b in zip(expected, found):
                assert np.array_equal(a.mask, b.mask) and a.box == b.box and a.score == b.score

        assert (features.tracker is None) == (restored.tracker is None)
        if features.tracker is not None:
            prompt = SamPrompt(points=np.array([[30, 40]], np.float32), labels=np.array([1], np.int32),
                               boxes=np.zeros((0, 4), np.float32), multimask_output=True)
            [expected] = encoder.decode([DecodeItem(features, prompt)])
            [found] = reader.decode([DecodeItem(restored, prompt)])
            assert np.array_equal(expected.masks, found.masks) and np.array_equal(expected.scores, found.scores)


def test_sam3_features_cannot_be_read_without_a_sam3_backend(sam3_backends):
    [features] = sam3_backends[0].encode(_sam3_images()[:1])
    with pytest.raises(FeatureFormatError, match="position encodings of a SAM 3 backend"):
        decode_features(encode_features(features), "torch", "cpu")


def test_features_the_codec_does_not_know_are_unshareable(sam3_backends):
    """A field added to ConceptImageFeatures is refused, not dropped, until the codec stores it."""
    from labelgate.models.sam3.concepts import ConceptImageFeatures
    from labelgate.server.feature_codec import UnshareableFeatures

    @dataclasses.dataclass(frozen=True)
    class WithMore(ConceptImageFeatures):
        more: object = None

    [features] = sam3_backends[0].encode(_sam3_images()[:1])
    with pytest.raises(UnshareableFeatures, match="more"):
        encode_features(WithMore(**{f.name: getattr(features, f.name) for f in dataclasses.fields(features)}))
    with pytest.raises(UnshareableFeatures, match="dict"):
        encode_features({"image_embed": None})


def test_entries_written_before_the_format_field_still_decode_as_sam2():
    data = encode_features(_features(lambda a: a), fp16=frozenset())
    (length,) = struct.unpack_from("<I", data, 4)
    header = json.loads(data[8:8 + length])
    assert header.pop("format") == "sam2"
    old = json.dumps(header).encode()
    restored = decode_features(data[:4] + struct.pack("<I", len(old)) + old + data[8 + length:])
    assert np.array_equal(restored.image_embed, _features(lambda a: a).image_embed)
