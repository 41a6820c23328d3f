"""A caption longer than Grounding DINO's text window (max_text_len tokens) is the caller's to
shorten: InvalidInput (INVALID_ARGUMENT), not a model crash (found by the fuzz corpus)."""

from __future__ import annotations

import numpy as np
import pytest

from labelgate.core.errors import InvalidInput
from labelgate.models.backend import DetectItem
from labelgate.models.demo import write_grounding_dino_demo_model
from labelgate.models.grounding_dino.torch_backend import GroundingDinoBackend

IMAGE = np.random.default_rng(0).integers(0, 256, (60, 80, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def backend(tmp_path_factory):
    return GroundingDinoBackend.from_pretrained(write_grounding_dino_demo_model(tmp_path_factory.mktemp("gd") / "gd"))


def _tokens(backend, caption: str) -> int:
    return len(backend.processor.tokenizer(caption.lower().strip() + ("" if caption.strip().endswith(".") else "."))["input_ids"])


def test_a_caption_over_the_text_window_is_invalid_input(backend):
    caption = "cat . dog . " * 166
    assert _tokens(backend, caption) > backend.model.config.max_text_len
    [result] = backend.detect([DetectItem(IMAGE, caption, 0.0, 0.0)])
    assert isinstance(result, InvalidInput)
    assert f"at most {backend.model.config.max_text_len}" in str(result) and "tokens long" in str(result)


def test_a_caption_that_fills_the_window_is_served(backend):
    caption = "cat . " * 127  # [CLS] + 254 + [SEP] = 256 tokens
    assert _tokens(backend, caption) == backend.model.config.max_text_len
    [result] = backend.detect([DetectItem(IMAGE, caption, 0.0, 0.0)])
    assert isinstance(result, list)
