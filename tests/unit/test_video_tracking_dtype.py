"""Tracking runs under bf16 autocast whatever `--dtype`: upstream stores its memories in bf16, and under
fp16 autocast concatenating them with fp16 object pointers fails. `--dtype fp16` needs CUDA, so the
backend here is a CPU one given fp16 as a CUDA one would be; CPU autocast runs the same dispatch."""

from __future__ import annotations

import numpy as np
import torch

from labelgate.models.demo import SAM2_DEMO_CONFIG, SAM2_DEMO_OVERRIDES, demo_paths
from labelgate.models.video_tracking import TrackPrompt
from video_clip import ArrayFrames, moving_shapes, square_box


def test_tracking_with_dtype_fp16_propagates_under_bf16_autocast(demo_weights):
    from labelgate.models.sam2.video_backend import Sam2TrackingTorchBackend

    backend = Sam2TrackingTorchBackend.from_checkpoint(SAM2_DEMO_CONFIG, demo_paths(demo_weights)[0], "cpu", SAM2_DEMO_OVERRIDES)
    backend.dtype = torch.float16  # what `--dtype fp16` gives a backend on CUDA
    with backend.tracking_autocast():
        assert torch.get_autocast_dtype("cpu") == torch.bfloat16
    session = backend.open_video(ArrayFrames(moving_shapes(3)), window=16)
    session.add_prompt(TrackPrompt(0, 1, np.zeros((0, 2), np.float32), np.zeros((0,), np.int32), np.array(square_box(0), np.float32)))
    # Frame 1 onwards read frame 0's bf16 memory: under fp16 autocast this raised.
    assert [frame.frame_index for frame in session.propagate(0, False, 0)] == [0, 1, 2]
