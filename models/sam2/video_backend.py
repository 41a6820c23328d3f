"""SAM 2 in process that also tracks objects through videos: the image backend's weights, shared
with a `SAM2VideoPredictor` built from the same config (sam2's `build_sam2_video_predictor`)."""

from __future__ import annotations

import contextlib
import functools
import logging
from pathlib import Path
from typing import Sequence

import torch

from labelgate.models.sam2.frame_features import SharedFrameFeatures
from labelgate.models.sam2.torch_backend import Sam2TorchBackend
from labelgate.models.sam2.video_session import Sam2TrackingSession
from labelgate.models.video_tracking import FrameSource, TrackingSession, VideoTrackingBackend

log = logging.getLogger(__name__)

TRACKING_DTYPE = torch.bfloat16  # what upstream stores memories in (sam2_video_predictor._run_memory_encoder)


def video_predictor_sharing(model: torch.nn.Module, config: str, overrides: Sequence[str] = ()) -> torch.nn.Module:
    """A `SAM2VideoPredictor` (with upstream's video post-processing) whose parameters are `model`'s
    own tensors: no second copy of the weights."""
    from sam2.build_sam import build_sam2_video_predictor

    device = next(model.parameters()).device
    predictor = build_sam2_video_predictor(config, None, device=str(device), hydra_overrides_extra=list(overrides))
    predictor.load_state_dict(model.state_dict(), strict=True, assign=True)
    return predictor.eval()


class Sam2TrackingTorchBackend(Sam2TorchBackend, VideoTrackingBackend):
    predictor: torch.nn.Module
    shared_frames: SharedFrameFeatures | None = None  # encoder outputs its sessions hand each other

    @classmethod
    def from_checkpoint(cls, config: str, checkpoint: Path | None, device: str, overrides: Sequence[str] = (), name: str = "",
                        dtype: str = "fp32") -> "Sam2TrackingTorchBackend":
        backend = super().from_checkpoint(config, checkpoint, device, overrides, name=name, dtype=dtype)
        backend.predictor = video_predictor_sharing(backend.model, config, overrides)
        backend.shared_frames = SharedFrameFeatures()
        return backend

    def open_video(self, frames: FrameSource, window: int, long_clip: bool = False) -> TrackingSession:
        return Sam2TrackingSession(self.predictor, frames, window, self.tracking_autocast, long_clip, self.shared_frames)

    def tracking_autocast(self) -> contextlib.ExitStack:
        """bf16 autocast whatever --dtype, on CPU too: upstream's video predictor stores its memories
        in bf16 and only runs under autocast, as its README does (in fp32 it fails with "mat1 and mat2
        must have the same dtype"; under fp16 autocast, concatenating those bf16 memories with fp16
        object pointers fails with "Unexpected floating ScalarType in at::autocast::prioritize").
        Where PyTorch's CPU flash attention cannot run bf16 (no AVX-512), attention takes the math kernel."""
        stack = contextlib.ExitStack()
        stack.enter_context(torch.autocast(self.device.type, dtype=TRACKING_DTYPE))
        if self.device.type == "cpu" and not cpu_flash_attention_runs(TRACKING_DTYPE):
            from torch.nn.attention import SDPBackend, sdpa_kernel

            stack.enter_context(sdpa_kernel([SDPBackend.MATH]))
        return stack


@functools.cache
def cpu_flash_attention_runs(dtype: torch.dtype) -> bool:
    """Whether this CPU's flash attention kernel takes `dtype` (it needs AVX-512 for bf16, and
    raises "pack_vnni2 is only supported when avx512 is supported" without)."""
    query = torch.zeros(1, 1, 256, 64, dtype=dtype)  # small ones take another path that always runs
    try:
        torch.nn.functional.scaled_dot_product_attention(query, query, query)
        return True
    except RuntimeError:
        return False
