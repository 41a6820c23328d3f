"""CUDA against CPU for the fp32 torch backends, within tests/tolerances.py's `reordering_tolerance`:
two fp32 evaluations of one network that differ in their kernels (cuBLAS / cuDNN against the CPU's).

TF32 is not fp32: with `torch.backends.cudnn.allow_tf32` (PyTorch's default) convolutions round their
inputs to 10-bit significands, which that model does not cover, so these checks run with TF32 off.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch

from agreement import sam2_score_tolerance
from tolerances import UNIT_ROUNDOFF_FP32, reordering_tolerance


def magnitude(values) -> float:
    """The magnitude `reordering_tolerance` takes: the largest |value|, and at least 1. The demo models'
    random weights can make an output far smaller than the LayerNorm-ed O(1) activations it is
    computed from (SAM 3's click logits are ~1e-4: a dot product that cancels), and the rounding
    errors scale with those activations, not with the result."""
    return max(1.0, float(np.abs(np.asarray(values, np.float64)).max()))


@contextlib.contextmanager
def fp32_kernels():
    """cuBLAS and cuDNN in true fp32 (no TF32) inside the block."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def assert_within_reordering(got: torch.Tensor, expected: torch.Tensor, depth: float, what: str) -> float:
    """`got` (CUDA) within reordering_tolerance of `expected` (CPU) at `depth`; returns the tolerance."""
    expected = expected.double().cpu()
    tolerance = reordering_tolerance(magnitude(expected), depth)
    difference = float((got.double().cpu() - expected).abs().max())
    assert difference <= tolerance, f"{what}: differs by {difference:.3g} > {tolerance:.3g}"
    return tolerance


def decode_on_both(backends, features, prompt, processor_of):
    """The CPU and the CUDA backend's click decode of `prompt` on their own features, TF32 off, each
    with the logits its processor (`processor_of(backend)`) post-processed, as `assert_clicks_agree`
    takes them: (CPU result, CUDA result, CPU logits, CUDA logits)."""
    from labelgate.models.backend import DecodeItem

    seen = [record_post_processed_masks(processor_of(backend)) for backend in backends]
    try:
        with fp32_kernels():
            expected, got = (backend.decode([DecodeItem(f, prompt)])[0] for backend, f in zip(backends, features))
    finally:
        for backend in backends:
            del processor_of(backend).post_process_masks
    assert not isinstance(got, Exception) and not isinstance(expected, Exception), (got, expected)
    return expected, got, seen[0][0], seen[1][0]


def record_post_processed_masks(processor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Spies on a SAM 2-style processor's `post_process_masks`, which the click backends call on the
    decoder's low-res logits (moved to the CPU, float32): each call appends (those logits, the same
    upsampled to the image without the threshold). The backend's own result is unchanged."""
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []
    original = processor.post_process_masks

    def spy(masks, original_sizes, *args, **kwargs):
        upsampled = original(masks, original_sizes, *args, **{**kwargs, "binarize": False})
        seen.append((masks.clone(), upsampled))
        return original(masks, original_sizes, *args, **kwargs)

    processor.post_process_masks = spy
    return seen


def assert_clicks_agree(got, expected, got_logits, expected_logits, depth: float) -> None:
    """One DecodedMasks from CUDA (`got`) against the CPU's (`expected`), with the low-res logits and
    the upsampled logits each backend post-processed (`record_post_processed_masks`):

    - low-res logits within reordering_tolerance of their `magnitude`;
    - masks equal wherever the CPU's upsampled logit is farther from 0 than that tolerance: the
      post-processing (bilinear, then threshold at 0) runs on the CPU on both sides, and bilinear
      weights are non-negative and sum to 1, so an upsampled logit moves no more than the low-res
      ones (plus the interpolation's own few roundings, 4 u32 of the magnitude);
    - scores (SAM 2's sigmoid IoU head) within agreement.sam2_score_tolerance.
    """
    (got_low, _), (expected_low, expected_up) = got_logits, expected_logits
    expected_low, expected_up = expected_low.double().numpy(), [each.double().numpy() for each in expected_up]
    largest = magnitude(expected_low)
    tolerance = reordering_tolerance(largest, depth)
    difference = float(np.abs(got_low.double().numpy() - expected_low).max())
    assert difference <= tolerance, f"low-res logits differ by {difference:.3g} > {tolerance:.3g}"
    decided_beyond = tolerance + 4 * UNIT_ROUNDOFF_FP32 * largest
    for got_masks, logits in zip(got.masks, expected_up[0]):  # one image per call here
        decided = np.abs(logits) > decided_beyond
        wrong = int((got_masks[decided] != (logits[decided] > 0)).sum())
        assert wrong == 0, f"{wrong} pixels differ whose |logit| > {decided_beyond:.3g}"
    for got_score, expected_score in zip(np.ravel(got.scores), np.ravel(expected.scores)):
        assert abs(float(got_score) - float(expected_score)) <= sam2_score_tolerance(float(expected_score), depth)
