"""The torch backends on CUDA agree with the CPU (skipped on machines without CUDA)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


def _iou(a, b):
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else np.logical_and(a, b).sum() / union


@pytest.mark.parametrize("dtype", ["fp32", "bf16", "fp16"])
def test_sam2_cuda_masks_match_cpu(demo_weights, dtype):
    from labelgate.models.backend import DecodeItem, SamPrompt
    from labelgate.models.demo import SAM2_DEMO_CONFIG, SAM2_DEMO_OVERRIDES
    from labelgate.models.sam2.torch_backend import Sam2TorchBackend
    from labelgate.models.demo import demo_paths

    checkpoint, _ = demo_paths(demo_weights)
    cpu = Sam2TorchBackend.from_checkpoint(SAM2_DEMO_CONFIG, checkpoint, "cpu", SAM2_DEMO_OVERRIDES)
    gpu = Sam2TorchBackend.from_checkpoint(SAM2_DEMO_CONFIG, checkpoint, "cuda", SAM2_DEMO_OVERRIDES, dtype=dtype)
    image = np.random.default_rng(0).integers(0, 255, (300, 400, 3), dtype=np.uint8)
    prompt = SamPrompt(np.array([[200, 150]], np.float32), np.array([1], np.int32), np.array([[50, 50, 350, 250]], np.float32), True)
    expected = cpu.decode([DecodeItem(cpu.encode([image])[0], prompt)])[0]
    got = gpu.decode([DecodeItem(gpu.encode([image])[0], prompt)])[0]
    for mask_gpu, mask_cpu in zip(got.masks[0], expected.masks[0]):
        assert _iou(mask_gpu, mask_cpu) >= 0.98
