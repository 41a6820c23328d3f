"""SAM 2 input preparation on read-only decoded pixels (as the cache shares them)."""

from __future__ import annotations

import warnings

import numpy as np
import torch

from labelgate.models.sam2.prompts import make_transforms


def test_read_only_pixels_are_prepared_without_a_warning_and_left_untouched():
    pixels = np.random.default_rng(0).integers(0, 256, (48, 80, 3), dtype=np.uint8)
    before = pixels.copy()
    pixels.setflags(write=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # every warning shows, unless make_transforms silences it
        tensor = make_transforms(64)(pixels)
    assert not [w for w in caught if "not writable" in str(w.message)]
    assert tensor.shape == (3, 64, 64) and tensor.dtype == torch.float32
    np.testing.assert_array_equal(pixels, before)
