"""Sam3ConceptBackend against transformers' own SAM 3 pipeline (Sam3Processor -> Sam3Model ->
post_process_instance_segmentation) on the same tiny random-weight checkpoint in the official
`save_pretrained` format.

The backend runs the same kernels on the same inputs with the same batch shape (1) as the pipeline:
`Sam3Model.forward` with `pixel_values` calls the very vision encoder `get_vision_features` calls, and
with `input_ids` the very `get_text_features`; cached features are those tensors, passed on unchanged.
Nothing is reordered, so masks, boxes and scores are compared exactly, as tests/tolerances.py
prescribes where nothing is reordered.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from labelgate.core.errors import InvalidInput
from labelgate.models.kinds import LoadContext
from labelgate.models.sam3 import kind
from labelgate.models.backend import ConceptItem
from labelgate.models.sam3.demo import DEMO_WORDS, END_TOKEN, START_TOKEN, write_sam3_demo_model
from labelgate.models.sam3.torch_backend import Sam3ConceptBackend
from labelgate.models.spec import ModelSpec
from tolerances import SAM3_DEMO_VISION_DEPTH, reordering_tolerance

SIZES = [(90, 120), (300, 200), (37, 400)]  # landscape below the 224 px input, portrait above it, extreme aspect
PHRASES = ["cat", "small red car"]
# An example and a counter-example, in pixels of a 90 x 120 image (scaled to the others).
EXEMPLARS = ([(10.0, 10.0, 70.0, 60.0), (60.0, 20.0, 110.0, 80.0)], [1, 0])
SCORE_THRESHOLD = 0.0  # every query's instances: the demo's random-weight scores are all near 0.25
MASK_THRESHOLD = 0.5


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return write_sam3_demo_model(tmp_path_factory.mktemp("sam3") / "sam3-demo", seed=0)


@pytest.fixture(scope="module")
def backend(model_dir):
    return Sam3ConceptBackend.from_pretrained(model_dir)


@pytest.fixture(scope="module")
def reference(model_dir):
    """The checkpoint through transformers alone: no labelgate code, a fresh vision run per call."""
    from transformers import Sam3Model, Sam3Processor

    processor = Sam3Processor.from_pretrained(model_dir)
    model = Sam3Model.from_pretrained(model_dir).eval()

    @torch.inference_mode()
    def run(image, phrase, boxes, labels):
        prompts = {"input_boxes": [boxes], "input_boxes_labels": [labels]} if boxes else {}
        inputs = processor(images=image, text=phrase or None, return_tensors="pt", **prompts)
        outputs = model(**inputs)
        [found] = processor.post_process_instance_segmentation(
            outputs, threshold=SCORE_THRESHOLD, mask_threshold=MASK_THRESHOLD, target_sizes=[image.shape[:2]]
        )
        return found["masks"].bool().numpy(), found["boxes"].numpy(), found["scores"].numpy()

    return run


@pytest.fixture(scope="module")
def cached_features(backend):
    """Each test image encoded once; every query below runs on these same features."""
    return {size: backend.encode([_image(size)])[0] for size in SIZES}


def _image(size) -> np.ndarray:
    image = np.random.default_rng(sum(size)).integers(0, 256, (*size, 3), dtype=np.uint8)
    image.flags.writeable = False  # as the server's decoded pixels are
    return image


def _queries(size):
    """(name, phrase, boxes, labels) of every query, boxes in pixels of an image of `size`."""
    sy, sx = size[0] / 90, size[1] / 120
    boxes = [[x0 * sx, y0 * sy, x1 * sx, y1 * sy] for x0, y0, x1, y1 in EXEMPLARS[0]]
    return [(phrase, phrase, [], []) for phrase in PHRASES] + [("exemplars", "", boxes, list(EXEMPLARS[1]))]


def _item(features, phrase, boxes, labels) -> ConceptItem:
    return ConceptItem(
        features=features,
        phrase=phrase,
        score_threshold=SCORE_THRESHOLD,
        mask_threshold=MASK_THRESHOLD,
        boxes=np.array(boxes, np.float32).reshape(-1, 4),
        box_labels=np.array(labels, np.int64),
    )


def _segment(backend, item):
    [found] = backend.segment_concepts([item])
    assert not isinstance(found, Exception), found
    return found


@pytest.mark.fidelity
@pytest.mark.parametrize("query", range(3), ids=["phrase", "phrase of three words", "exemplar boxes"])
@pytest.mark.parametrize("size", SIZES, ids=[f"{h}x{w}" for h, w in SIZES])
def test_instances_equal_the_transformers_pipeline(backend, reference, cached_features, size, query):
    _, phrase, boxes, labels = _queries(size)[query]
    expected_masks, expected_boxes, expected_scores = reference(np.array(_image(size)), phrase, boxes, labels)
    found = _segment(backend, _item(cached_features[size], phrase, boxes, labels))
    assert len(found) == len(expected_scores) > 0
    for instance, mask, box, score in zip(found, expected_masks, expected_boxes, expected_scores):
        assert instance.mask.shape == size and instance.mask.dtype == bool
        np.testing.assert_array_equal(instance.mask, mask)
        assert instance.box == tuple(float(v) for v in box)
        assert instance.score == float(score)
        assert instance.label == phrase


@pytest.mark.fidelity
def test_instances_from_cached_features_equal_a_fresh_run(backend, model_dir):
    """Features queried many times (the cache's case) give what a new vision run gives."""
    size = SIZES[1]
    features = backend.encode([_image(size)])[0]
    queries = [query[1:] for query in _queries(size)]
    first = [_segment(backend, _item(features, *query)) for query in queries]
    again = [_segment(backend, _item(features, *query)) for query in reversed(queries)][::-1]
    fresh_backend = Sam3ConceptBackend.from_pretrained(model_dir)
    fresh = [_segment(fresh_backend, _item(fresh_backend.encode([_image(size)])[0], *query)) for query in queries]
    for a, b, c in zip(first, again, fresh):
        assert len(a) == len(b) == len(c) > 0
        for x, y, z in zip(a, b, c):
            np.testing.assert_array_equal(x.mask, y.mask)
            np.testing.assert_array_equal(x.mask, z.mask)
            assert x.box == y.box == z.box and x.score == y.score == z.score


@pytest.mark.fidelity
def test_a_batch_of_images_gives_each_its_own_features(backend, cached_features):
    """One vision pass over three images (other GEMM shapes than one at a time, so other roundings)."""
    batched = backend.encode([_image(size) for size in SIZES])
    for size, features in zip(SIZES, batched):
        single = cached_features[size]
        assert features.orig_hw == size and features.nbytes == single.nbytes
        for level, expected in zip(features.fpn_hidden_states, single.fpn_hidden_states):
            tolerance = reordering_tolerance(float(expected.abs().max()), SAM3_DEMO_VISION_DEPTH)
            torch.testing.assert_close(level, expected, rtol=0, atol=tolerance)


def _count_calls(module: torch.nn.Module) -> list:
    calls = []
    handle = module.register_forward_hook(lambda *_: calls.append(1))
    return calls, handle


def test_a_second_phrase_on_an_image_reuses_its_vision_features(model_dir):
    backend = Sam3ConceptBackend.from_pretrained(model_dir)
    vision_calls, vision_hook = _count_calls(backend.model.vision_encoder)
    text_calls, text_hook = _count_calls(backend.model.text_encoder)
    try:
        [features] = backend.encode([_image(SIZES[0])])
        assert len(vision_calls) == 1
        for phrase in ["cat", "dog", "cat"]:
            _segment(backend, _item(features, phrase, [], []))
    finally:
        vision_hook.remove()
        text_hook.remove()
    assert len(vision_calls) == 1  # the backbone ran for the image only, not per query
    assert len(text_calls) == 2  # "cat" the second time came from the text cache
    assert (backend.text_cache.hits, backend.text_cache.misses) == (1, 2)


def test_the_text_cache_keeps_the_most_recent_phrases(model_dir):
    backend = Sam3ConceptBackend.from_pretrained(model_dir, text_cache_entries=2)
    [features] = backend.encode([_image(SIZES[0])])
    for phrase in ["cat", "dog", "tree", "cat"]:
        _segment(backend, _item(features, phrase, [], []))
    assert len(backend.text_cache) == 2
    assert (backend.text_cache.hits, backend.text_cache.misses) == (0, 4)  # "cat" was evicted by "tree"


def test_features_say_their_size_and_share_position_encodings(backend, cached_features):
    features = [cached_features[size] for size in SIZES]
    for one in features:
        levels = sum(level.numel() * level.element_size() for level in one.fpn_hidden_states)
        assert one.nbytes == levels + one.tracker.nbytes and one.tracker.nbytes > 0  # the tracker's, for clicks
        assert all(level.shape[0] == 1 for level in one.fpn_hidden_states)
    assert all(a is b for a, b in zip(features[0].fpn_position_encoding, features[2].fpn_position_encoding))
    assert [one.orig_hw for one in features] == SIZES


def test_a_bad_query_fails_alone(backend, cached_features):
    features = cached_features[SIZES[0]]
    bad = [
        _item(features, "  ", [], []),  # neither a phrase nor an exemplar
        _item(features, "cat", [[10, 10, 5, 40]], [1]),  # x1 < x0
        _item(features, "cat", [[10, 10, 50, 40]], [2]),  # a label that is neither 1 nor 0
        _item(features, " ".join(["cat"] * 40), [], []),  # over SAM 3's 32 tokens
    ]
    results = backend.segment_concepts([*bad, _item(features, "cat", [], [])])
    assert all(isinstance(result, InvalidInput) for result in results[:-1]), results
    assert isinstance(results[-1], list) and results[-1]


def test_demo_tokenizer_spells_each_demo_word_as_one_token(backend):
    tokenizer = backend.processor.tokenizer
    start, end = tokenizer.convert_tokens_to_ids([START_TOKEN, END_TOKEN])
    for word in DEMO_WORDS:
        ids = tokenizer(word).input_ids
        assert len(ids) == 3 and ids[0] == start and ids[-1] == end, (word, ids)
    assert len(tokenizer("zebra").input_ids) == 2 + len("zebra")  # unknown words fall back to bytes


def test_kind_loads_the_demo_and_refuses_what_it_cannot_run(model_dir, tmp_path):
    spec = ModelSpec(name="concepts", kind="sam3", weights=str(model_dir))
    loaded = kind.load(spec, LoadContext())
    assert isinstance(loaded, Sam3ConceptBackend) and loaded.info.kind == "sam3" and loaded.info.name == "concepts"
    with pytest.raises(ValueError, match="in process only"):
        kind.load(spec, LoadContext(backend="triton"))
    with pytest.raises(ValueError, match="fp32 only"):
        kind.load(spec, LoadContext(dtype="fp16"))
    with pytest.raises(ValueError, match="gated"):
        kind.load(ModelSpec(name="concepts", kind="sam3", weights=str(tmp_path)), LoadContext())
