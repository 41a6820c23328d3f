"""Images of extreme aspect ratio (a 1 x 100000 strip) through Grounding DINO's processor, whose
shortest/longest-edge resize rounds their short side to 0 pixels: served with that side at 1
pixel, and every other image processed exactly as the checkpoint's processor does."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from labelgate.models.backend import Detection, DetectItem
from labelgate.models.demo import write_grounding_dino_demo_model
from labelgate.models.grounding_dino.processing import model_inputs, nonzero_resize
from labelgate.models.grounding_dino.torch_backend import GroundingDinoBackend

CAPTION = "cat . dog ."


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return write_grounding_dino_demo_model(tmp_path_factory.mktemp("grounding_dino") / "gd-demo")


@pytest.fixture(scope="module")
def processor(model_dir):
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(model_dir)


@pytest.fixture(scope="module")
def backend(model_dir):
    return GroundingDinoBackend.from_pretrained(model_dir)


def image(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def around_the_edge(longest: int) -> list[tuple[int, int]]:
    """Shapes on both sides of where the processor's short side first rounds to 0 (ratio 2 x
    longest), in both orientations, and ordinary ones."""
    shapes = [(240, 320), (333, 500), (500, 260), (1, 1), (1, 5)]
    for short in (1, 2, 3):
        for ratio in (2 * longest - 1, 2 * longest, 2 * longest + 1):
            shapes += [(short, short * ratio), (short * ratio, short)]
    return shapes


def test_only_images_the_processor_cannot_resize_are_resized_otherwise(processor):
    longest = processor.image_processor.size["longest_edge"]
    refused = 0
    for shape in around_the_edge(longest):
        pixels = image(*shape)
        ours = model_inputs(processor, [pixels], CAPTION)
        try:
            theirs = processor(images=[pixels], text=[CAPTION], return_tensors="pt", input_data_format="channels_last")
        except ValueError:
            refused += 1
            assert nonzero_resize(processor, shape) is not None, shape
            assert min(ours["pixel_values"].shape[-2:]) >= 1
            continue
        assert nonzero_resize(processor, shape) is None, shape
        for name in ("pixel_values", "pixel_mask", "input_ids"):
            assert torch.equal(ours[name], theirs[name]), (shape, name)
    assert refused > 0  # the sweep reaches the processor's failures


@pytest.mark.parametrize("size", [{"shortest_edge": 800, "longest_edge": 1333}, {"shortest_edge": 320, "longest_edge": 480}])
@pytest.mark.parametrize("shape", [(1, 100_000), (100_000, 1), (3, 40_000), (1, 2 * 1333), (2, 4 * 1333)])
def test_the_short_side_is_raised_to_one_and_the_long_side_kept(size, shape):
    from transformers.image_transforms import get_size_with_aspect_ratio

    processor = SimpleNamespace(image_processor=SimpleNamespace(size=size))
    theirs = get_size_with_aspect_ratio(shape, size["shortest_edge"], size["longest_edge"])
    assert min(theirs) == 0  # what the processor would fail on

    ours = nonzero_resize(processor, shape)

    long_axis = int(np.argmax(shape))
    assert ours[long_axis] == theirs[long_axis] and ours[1 - long_axis] == 1


def test_a_processor_with_a_fixed_size_is_left_alone():
    processor = SimpleNamespace(image_processor=SimpleNamespace(size={"height": 800, "width": 1333}))
    assert nonzero_resize(processor, (1, 100_000)) is None


@pytest.mark.parametrize("shape", [(1, 100_000), (100_000, 1), (1, 960)])
def test_the_backend_detects_on_extreme_aspect_ratios(backend, shape):
    found = backend.detect([DetectItem(image(*shape), CAPTION, box_threshold=0.0, text_threshold=0.0)])[0]

    assert isinstance(found, list), found
    assert found and all(isinstance(d, Detection) for d in found)
    assert all(np.isfinite(d.box).all() and 0.0 <= d.score <= 1.0 for d in found)


def test_strips_batched_with_other_shapes_are_all_served(backend):
    items = [DetectItem(image(1, 100_000), CAPTION, 0.0, 0.0), DetectItem(image(64, 96), CAPTION, 0.0, 0.0),
             DetectItem(image(1, 100_000, seed=1), CAPTION, 0.0, 0.0)]

    results = backend.detect(items)

    assert all(isinstance(result, list) and result for result in results), results


def test_a_strip_mixed_with_other_shapes_in_one_processor_call_is_refused(processor):
    with pytest.raises(ValueError, match="extreme aspect ratio"):
        model_inputs(processor, [image(1, 100_000), image(64, 96)], CAPTION)
