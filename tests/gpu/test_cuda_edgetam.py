"""EdgeTAM on CUDA agrees with the CPU (skipped on machines without CUDA).

The edgetam kind runs in fp32 only (models/in_process.py refuses --dtype bf16/fp16), so this is one
fp32 comparison, TF32 off (device_agreement.py), within tests/tolerances.py's reordering_tolerance at
the demo's depth. Both sides take the same pixels: the image processor runs on the CPU first."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]

from device_agreement import assert_clicks_agree, assert_within_reordering, decode_on_both, fp32_kernels  # noqa: E402
from tolerances import EDGETAM_DEMO_DEPTH  # noqa: E402

IMAGE_HW = (200, 330)  # landscape, above the demo's 256 px input


@pytest.fixture(scope="module")
def backends(demo_weights):
    from labelgate.models.demo import extra_demo_paths
    from labelgate.models.edgetam.torch_backend import EdgeTamTorchBackend

    directory = extra_demo_paths(demo_weights)["edgetam"]
    return EdgeTamTorchBackend.from_pretrained(directory, "cpu"), EdgeTamTorchBackend.from_pretrained(directory, "cuda")


@pytest.fixture(scope="module")
def features(backends):
    image = np.random.default_rng(4).integers(0, 256, (*IMAGE_HW, 3), dtype=np.uint8)
    with fp32_kernels():
        return tuple(backend.encode([image])[0] for backend in backends)


def test_edgetam_cuda_features_match_cpu(features):
    cpu, gpu = features
    assert gpu.image_embed.is_cuda
    for got, expected in zip((gpu.image_embed, *gpu.high_res_feats), (cpu.image_embed, *cpu.high_res_feats)):
        assert_within_reordering(got, expected, EDGETAM_DEMO_DEPTH, "feature level")


@pytest.mark.parametrize(("points", "labels", "boxes", "multimask"), [
    ([[160, 100]], [1], np.zeros((0, 4)), True),  # one click: three masks
    ([[160, 100], [20, 20]], [1, 0], [[60, 40, 280, 180]], False),  # clicks and a box
    (np.zeros((0, 2)), [], [[10, 10, 100, 90], [150, 60, 320, 190]], False),  # two boxes: two objects
])
def test_edgetam_cuda_masks_match_cpu(backends, features, points, labels, boxes, multimask):
    from labelgate.models.backend import SamPrompt

    prompt = SamPrompt(np.asarray(points, np.float32).reshape(-1, 2), np.asarray(labels, np.int32),
                       np.asarray(boxes, np.float32).reshape(-1, 4), multimask)
    expected, got, expected_logits, got_logits = decode_on_both(backends, features, prompt, lambda b: b.processor)
    assert got.masks.shape == expected.masks.shape == (prompt.num_objects, 3 if multimask else 1, *IMAGE_HW)
    assert_clicks_agree(got, expected, got_logits, expected_logits, EDGETAM_DEMO_DEPTH)
