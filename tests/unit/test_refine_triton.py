"""The Triton SAM 2 backend has no mask input: a refinement is the caller's mistake, said clearly."""

from __future__ import annotations

import numpy as np
import torch

from labelgate.core.errors import InvalidInput
from labelgate.models.backend import DecodeItem, ImageFeatures, SamPrompt
from labelgate.models.sam2.prompts import make_transforms
from labelgate.models.triton.sam2_backend import Sam2TritonBackend


class _NoRequestsConnection:
    def infer_many(self, model, requests, outputs):
        assert not requests, "a refinement must not reach Triton"
        return []


def test_a_mask_input_is_refused_per_item_without_calling_triton():
    backend = object.__new__(Sam2TritonBackend)  # no Triton to read the model configs from
    backend.connection, backend.transforms = _NoRequestsConnection(), make_transforms(256)
    features = ImageFeatures(torch.zeros(8, 16, 16), (), (64, 64), 0)
    prompt = SamPrompt(np.array([[3.0, 4.0]], np.float32), np.array([1], np.int32), np.zeros((0, 4), np.float32),
                       False, mask_input=np.zeros((1, 1, 64, 64), np.float32))
    [result] = backend.decode([DecodeItem(features, prompt)])
    assert isinstance(result, InvalidInput) and "torch backend" in str(result)
