"""GroundingDinoBackend against a plain transformers run of the same checkpoint (a tiny random-weight
Grounding DINO in the official `save_pretrained` format)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from agreement import assert_detections_agree, grounding_run
from labelgate.models.backend import DetectItem
from labelgate.models.demo import write_grounding_dino_demo_model
from labelgate.models.grounding_dino.text_cache import CachedTextBackbone, install_text_cache
from labelgate.models.grounding_dino.torch_backend import GroundingDinoBackend, normalize_caption

BOX_THRESHOLD = 0.35
TEXT_THRESHOLD = 0.25
SIZES = [(240, 320), (333, 500), (500, 260)]
CAPTIONS = ["cat . dog .", "a red car . person"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return write_grounding_dino_demo_model(tmp_path_factory.mktemp("grounding_dino") / "gd-demo")


@pytest.fixture(scope="module")
def reference(model_dir):
    """The checkpoint through transformers alone: no labelgate code, no text cache."""
    from transformers import AutoProcessor, GroundingDinoForObjectDetection

    processor = AutoProcessor.from_pretrained(model_dir)
    model = GroundingDinoForObjectDetection.from_pretrained(model_dir).eval()
    return lambda image, caption: grounding_run(processor, model, image, caption)


@pytest.fixture(scope="module")
def backend(model_dir):
    return GroundingDinoBackend.from_pretrained(model_dir)


def _image(seed: int, height: int, width: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _assert_same(detections, run, box_threshold=BOX_THRESHOLD, text_threshold=TEXT_THRESHOLD):
    """What transformers' post-processing keeps at these thresholds (within the tolerances of another
    kernel: a batch is not bit-equal to a single image)."""
    assert_detections_agree([(d.box, d.score, d.label) for d in detections], run, box_threshold, text_threshold)


def _assert_identical(a, b):
    assert [(d.box, d.score, d.label) for d in a] == [(d.box, d.score, d.label) for d in b]


def test_info(backend, model_dir):
    assert backend.info.kind == "grounding_dino"
    assert backend.info.name == model_dir.name
    assert backend.info.device == "cpu"
    assert len(backend.info.version) == 12
    assert isinstance(backend.model.model.text_backbone, CachedTextBackbone)


@pytest.mark.parametrize("caption", CAPTIONS)
@pytest.mark.parametrize("size_index", range(len(SIZES)))
def test_matches_reference(backend, reference, caption, size_index):
    height, width = SIZES[size_index]
    image = _image(size_index, height, width)
    [detections] = backend.detect([DetectItem(image, normalize_caption(caption), BOX_THRESHOLD, TEXT_THRESHOLD)])
    assert not isinstance(detections, Exception), detections
    assert len(detections) > 0
    _assert_same(detections, reference(image, normalize_caption(caption)))
    for detection in detections:
        assert len(detection.box) == 4 and all(isinstance(v, float) for v in detection.box)
        assert isinstance(detection.score, float) and detection.score > BOX_THRESHOLD
        assert isinstance(detection.label, str)


def test_caption_is_normalised_by_the_backend(backend, reference):
    image = _image(7, 240, 320)
    [detections] = backend.detect([DetectItem(image, "  A Red   CAR . person ", BOX_THRESHOLD, TEXT_THRESHOLD)])
    _assert_same(detections, reference(image, "a red car . person."))


def test_thresholds_filter(backend, reference):
    image = _image(3, 240, 320)
    caption = "cat . dog ."
    low, high = backend.detect(
        [DetectItem(image, caption, 0.05, TEXT_THRESHOLD), DetectItem(image, caption, 0.99, TEXT_THRESHOLD)]
    )
    assert 0 < len(high) < len(low)
    run = reference(image, caption)
    _assert_same(low, run, 0.05, TEXT_THRESHOLD)
    _assert_same(high, run, 0.99, TEXT_THRESHOLD)


@pytest.mark.fidelity
def test_batch_equals_single_runs(backend, reference):
    specs = [
        (11, 240, 320, "cat . dog .", 0.35, 0.25),
        (12, 333, 500, "a red car . person.", 0.3, 0.2),
        (13, 240, 320, "cat . dog .", 0.9, 0.5),  # same group as the first, other thresholds
        (14, 240, 320, "a red car . person.", 0.35, 0.25),
        (15, 500, 260, "cat . dog .", 0.35, 0.25),
        (16, 240, 320, "cat . dog .", 0.2, 0.25),  # a group of three
    ]
    items = [DetectItem(_image(seed, h, w), caption, bt, tt) for seed, h, w, caption, bt, tt in specs]
    batched = backend.detect(items)
    assert len(batched) == len(items)
    for item, result in zip(items, batched):
        assert not isinstance(result, Exception), result
        assert len(result) > 0
        # What a run of this image alone through transformers keeps at the item's own thresholds.
        _assert_same(result, reference(item.image, item.caption), item.box_threshold, item.text_threshold)


@pytest.mark.fidelity
def test_batch_matches_reference(backend, reference):
    # Seeds whose query choice is clear of the top-k cutoff on every ATEN_CPU_CAPABILITY (agreement.py).
    images = [_image(21 + i, 240, 320) for i in range(3)]
    results = backend.detect([DetectItem(image, "cat . dog .", BOX_THRESHOLD, TEXT_THRESHOLD) for image in images])
    for image, detections in zip(images, results):
        _assert_same(detections, reference(image, "cat . dog ."))


def test_text_cache_hits(model_dir):
    backend = GroundingDinoBackend.from_pretrained(model_dir, text_cache_entries=4)
    cache = backend.text_cache
    image = _image(30, 240, 320)
    item = DetectItem(image, "person . car .", BOX_THRESHOLD, TEXT_THRESHOLD)
    [first] = backend.detect([item])
    assert (cache.hits, cache.misses) == (0, 1)
    [second] = backend.detect([item])
    assert (cache.hits, cache.misses) == (1, 1)
    _assert_identical(first, second)
    # A batch of one caption is one lookup; another image with the same caption is a hit too.
    backend.detect([item, DetectItem(_image(31, 333, 500), "person . car .", 0.3, 0.2)] * 2)
    assert cache.misses == 1 and cache.hits == 3
    backend.detect([DetectItem(image, "dog .", BOX_THRESHOLD, TEXT_THRESHOLD)])
    assert cache.misses == 2
    assert len(cache) == 2


def test_text_cache_lru_bound(model_dir):
    backend = GroundingDinoBackend.from_pretrained(model_dir, text_cache_entries=2)
    image = _image(40, 240, 320)
    for caption in ["cat .", "dog .", "car ."]:
        backend.detect([DetectItem(image, caption, BOX_THRESHOLD, TEXT_THRESHOLD)])
    cache = backend.text_cache
    assert len(cache) == 2 and cache.misses == 3
    backend.detect([DetectItem(image, "car .", BOX_THRESHOLD, TEXT_THRESHOLD)])
    assert cache.hits == 1
    backend.detect([DetectItem(image, "cat .", BOX_THRESHOLD, TEXT_THRESHOLD)])  # evicted
    assert cache.misses == 4


def test_text_cache_mixed_rows_and_tuple_output(model_dir):
    """Rows with different captions in one call (padded to one length) are computed one by one
    and equal an uncached run; `return_dict=False` gives a tuple."""
    from transformers import AutoTokenizer, GroundingDinoForObjectDetection
    from transformers.models.grounding_dino.modeling_grounding_dino import (
        generate_masks_with_special_tokens_and_transfer_map,
    )

    model = GroundingDinoForObjectDetection.from_pretrained(model_dir).eval()
    plain = model.model.text_backbone
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    tokens = tokenizer(["cat . dog .", "a red car . person .", "cat . dog ."], padding=True, return_tensors="pt")
    masks, position_ids = generate_masks_with_special_tokens_and_transfer_map(
        tokens["input_ids"], special_tokens=model.model.special_tokens
    )
    args = (tokens["input_ids"], masks[:, None], tokens["token_type_ids"], position_ids)
    cached = install_text_cache(model, max_entries=8)
    assert install_text_cache(model, max_entries=8) is cached
    with torch.inference_mode():
        out = cached(*args, return_dict=True).last_hidden_state
        as_tuple = cached(*args, return_dict=False)
        for row in range(3):
            expected = plain(*(a[row : row + 1] for a in args), return_dict=True).last_hidden_state
            torch.testing.assert_close(out[row : row + 1], expected, rtol=0, atol=0)
    assert isinstance(as_tuple, tuple)
    torch.testing.assert_close(as_tuple[0], out, rtol=0, atol=0)
    assert cached.misses == 2 and cached.hits == 2


def test_bad_items_fail_alone(backend, reference):
    good_image = _image(50, 240, 320)
    items = [
        DetectItem(np.zeros((0, 5, 3), np.uint8), "cat .", BOX_THRESHOLD, TEXT_THRESHOLD),
        DetectItem(good_image, "cat . dog .", BOX_THRESHOLD, TEXT_THRESHOLD),
        DetectItem(good_image, "   ", BOX_THRESHOLD, TEXT_THRESHOLD),
        DetectItem(np.zeros((20, 30), np.uint8), "cat .", BOX_THRESHOLD, TEXT_THRESHOLD),
        DetectItem(np.zeros((20, 30, 3), np.float32), "cat .", BOX_THRESHOLD, TEXT_THRESHOLD),
        DetectItem(good_image, "cat . dog .", float("nan"), TEXT_THRESHOLD),
    ]
    results = backend.detect(items)
    assert len(results) == len(items)
    for index in (0, 2, 3, 4, 5):
        assert isinstance(results[index], Exception), index
    assert not isinstance(results[1], Exception)
    _assert_same(results[1], reference(good_image, "cat . dog ."))


def test_group_failure_does_not_fail_other_groups(backend, monkeypatch):
    image = _image(60, 240, 320)
    original = backend._detect_group

    def flaky(caption, items):
        if caption == "dog.":
            raise RuntimeError("boom")
        return original(caption, items)

    monkeypatch.setattr(backend, "_detect_group", flaky)
    results = backend.detect([DetectItem(image, "dog", 0.3, 0.2), DetectItem(image, "cat .", 0.3, 0.2)])
    assert isinstance(results[0], RuntimeError)
    assert isinstance(results[1], list)


def test_empty_batch(backend):
    assert backend.detect([]) == []


@pytest.mark.parametrize(
    "text, expected",
    [
        ("cat . dog .", "cat . dog ."),
        ("Cat . Dog", "cat . dog."),
        ("  a  RED\tcar \n. person  ", "a red car . person."),
        ("person.", "person."),
        ("person", "person."),
    ],
)
def test_normalize_caption(text, expected):
    assert normalize_caption(text) == expected
    assert normalize_caption(expected) == expected


@pytest.mark.parametrize("text", ["", "   ", "\n\t", ".", " . . "])
def test_normalize_caption_rejects_empty(text):
    with pytest.raises(ValueError):
        normalize_caption(text)
