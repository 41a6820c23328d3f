"""SAM 3 (concepts and clicks) on CUDA agrees with the CPU (skipped on machines without CUDA).

The sam3 kind runs in fp32 only (models/in_process.py refuses --dtype bf16/fp16), so this is one
fp32 comparison, TF32 off (device_agreement.py), within tests/tolerances.py's reordering_tolerance at
the demo's depths. Both sides take the same pixels: the image processor runs on the CPU first."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]

from device_agreement import (  # noqa: E402
    assert_clicks_agree,
    assert_within_reordering,
    decode_on_both,
    fp32_kernels,
    magnitude,
)
from tolerances import (  # noqa: E402
    SAM3_DEMO_CLICK_DEPTH,
    SAM3_DEMO_MASK_DEPTH,
    SAM3_DEMO_QUERY_DEPTH,
    SAM3_DEMO_VISION_DEPTH,
    UNIT_ROUNDOFF_FP32,
    reordering_tolerance,
    through_sigmoid,
)

IMAGE_HW = (300, 200)  # portrait, above the demo's 224 px input: resized and padded


@pytest.fixture(scope="module")
def backends(demo_weights):
    from labelgate.models.demo import extra_demo_paths
    from labelgate.models.sam3.torch_backend import Sam3ConceptBackend

    directory = extra_demo_paths(demo_weights)["sam3"]
    return Sam3ConceptBackend.from_pretrained(directory, "cpu"), Sam3ConceptBackend.from_pretrained(directory, "cuda")


@pytest.fixture(scope="module")
def features(backends):
    image = np.random.default_rng(3).integers(0, 256, (*IMAGE_HW, 3), dtype=np.uint8)
    with fp32_kernels():
        return tuple(backend.encode([image])[0] for backend in backends)


def test_sam3_cuda_features_match_cpu(features):
    cpu, gpu = features
    assert all(level.is_cuda for level in gpu.fpn_hidden_states)
    for got, expected in zip(gpu.fpn_hidden_states, cpu.fpn_hidden_states):
        assert_within_reordering(got, expected, SAM3_DEMO_VISION_DEPTH, "FPN level")
    # The tracker's features: the same ViT through its own FPN neck.
    assert_within_reordering(gpu.tracker.image_embed, cpu.tracker.image_embed, SAM3_DEMO_VISION_DEPTH, "tracker image embedding")
    for got, expected in zip(gpu.tracker.high_res_feats, cpu.tracker.high_res_feats):
        assert_within_reordering(got, expected, SAM3_DEMO_VISION_DEPTH, "tracker high-res level")


@pytest.mark.parametrize("query", ["phrase", "exemplars"])
def test_sam3_cuda_concepts_match_cpu(backends, features, query):
    """Every query (score threshold -1 keeps all, in query order on both sides): the model's raw
    outputs within tolerance, then the instances the processor makes of them."""
    from labelgate.models.backend import ConceptItem

    phrase, boxes, labels = ("cat", np.zeros((0, 4), np.float32), np.zeros((0,), np.int64)) if query == "phrase" else \
        ("", np.array([[20, 30, 120, 200], [100, 150, 190, 290]], np.float32), np.array([1, 0]))
    raw = []
    for backend in backends:
        original = backend.processor.post_process_instance_segmentation

        def spy(outputs, *args, original=original, **kwargs):
            raw.append(outputs)
            return original(outputs, *args, **kwargs)

        backend.processor.post_process_instance_segmentation = spy
    try:
        with fp32_kernels():
            expected, got = (backend.segment_concepts([ConceptItem(f, phrase, score_threshold=-1.0, boxes=boxes, box_labels=labels)])[0]
                             for backend, f in zip(backends, features))
    finally:
        for backend in backends:
            del backend.processor.post_process_instance_segmentation
    assert not isinstance(got, Exception) and not isinstance(expected, Exception), (got, expected)
    cpu_out, gpu_out = raw
    logit_tol = assert_within_reordering(gpu_out.pred_logits, cpu_out.pred_logits, SAM3_DEMO_QUERY_DEPTH, "query logits")
    presence_tol = assert_within_reordering(gpu_out.presence_logits, cpu_out.presence_logits, SAM3_DEMO_QUERY_DEPTH, "presence logit")
    mask_tol = assert_within_reordering(gpu_out.pred_masks, cpu_out.pred_masks, SAM3_DEMO_MASK_DEPTH, "mask logits")
    # Boxes: x0, y0, x1, y1 = cx -/+ w/2, cy -/+ h/2 of sigmoid outputs: 1.5 times a coordinate's move,
    # a quarter of its logit's (the box head's output at the query depth).
    box = cpu_out.pred_boxes.double().cpu()
    cxcywh = torch.cat([(box[..., :2] + box[..., 2:]) / 2, box[..., 2:] - box[..., :2]], -1).clamp(1e-7, 1 - 1e-7)
    box_tol = 1.5 * through_sigmoid(reordering_tolerance(magnitude(torch.logit(cxcywh)), SAM3_DEMO_QUERY_DEPTH))
    assert float((gpu_out.pred_boxes.double().cpu() - box).abs().max()) <= box_tol

    assert len(got) == len(expected) == cpu_out.pred_logits.shape[1]
    # Score = sigmoid(query) x sigmoid(presence), both in [0, 1]: |ab - a'b'| <= |a - a'| + |b - b'|.
    score_tol = through_sigmoid(logit_tol) + through_sigmoid(presence_tol)
    # Masks: sigmoid, bilinear to the image (non-negative weights summing to 1; on CUDA for one side,
    # a few more roundings of the probabilities), then > mask_threshold. Pixels whose CPU probability
    # is within the tolerance of the threshold may go either way.
    prob_tol = through_sigmoid(mask_tol) + 4 * UNIT_ROUNDOFF_FP32
    post = backends[0].processor.image_processor.post_process_instance_segmentation
    surely = post(cpu_out, -1.0, 0.5 + prob_tol, [IMAGE_HW])[0]["masks"].bool().numpy()
    maybe = post(cpu_out, -1.0, 0.5 - prob_tol, [IMAGE_HW])[0]["masks"].bool().numpy()
    height, width = IMAGE_HW
    for index, (g, e) in enumerate(zip(got, expected)):
        assert abs(g.score - e.score) <= score_tol, f"instance {index}"
        assert np.abs(np.subtract(g.box, e.box)).max() <= box_tol * max(height, width), f"instance {index}"
        assert not (surely[index] & ~g.mask).any() and not (g.mask & ~maybe[index]).any(), f"instance {index}"


@pytest.mark.parametrize("multimask", [True, False])
def test_sam3_cuda_clicks_match_cpu(backends, features, multimask):
    from labelgate.models.backend import SamPrompt

    prompt = SamPrompt(np.array([[100, 150], [40, 60]], np.float32), np.array([1, 0], np.int32),
                       np.array([[30, 40, 170, 260]], np.float32), multimask)
    expected, got, expected_logits, got_logits = decode_on_both(backends, features, prompt, lambda b: b.tracker_processor)
    assert got.masks.shape == expected.masks.shape == (1, 3 if multimask else 1, *IMAGE_HW)
    assert_clicks_agree(got, expected, got_logits, expected_logits, SAM3_DEMO_VISION_DEPTH + SAM3_DEMO_CLICK_DEPTH)
