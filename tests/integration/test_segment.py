"""Segment and Embed through a real server: masks identical to SAM2ImagePredictor, the cache works."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from agreement import assert_detections_agree, assert_mask_agrees, assert_score_agrees, fidelity_first, grounding_run
from labelgate.v1 import labelgate_pb2 as pb
from reference import (
    decode_rle,
    encode,
    grounding_dino_reference,
    iou,
    predictor_masks,
    random_image,
    scaled_prompt,
    segment_request,
)
from tolerances import SAM2_DEMO_DEPTH, UNIT_ROUNDOFF_FP32

IMAGES = {
    "landscape": random_image(1, 240, 360),
    "portrait": random_image(2, 401, 223),
    "square": random_image(3, 256, 256),
}

# (points [(x, y, negative)], boxes [(x1, y1, x2, y2)]) in fractions of the image size.
PROMPTS = {
    "one point": ([(0.5, 0.5, False)], []),
    "points with a negative": ([(0.3, 0.4, False), (0.7, 0.6, True), (0.2, 0.8, False)], []),
    "one box": ([], [(0.1, 0.2, 0.6, 0.9)]),
    "several boxes": ([], [(0.1, 0.2, 0.6, 0.9), (0.0, 0.0, 1.0, 1.0), (0.5, 0.5, 0.7, 0.6)]),
    "point and box": ([(0.4, 0.5, False), (0.45, 0.55, True)], [(0.2, 0.2, 0.8, 0.8)]),
}


@pytest.mark.parametrize("image_name", fidelity_first(sorted(IMAGES)))
@pytest.mark.parametrize("prompt_name", sorted(PROMPTS))
@pytest.mark.parametrize("multimask", [False, True])
def test_masks_identical_to_sam2_image_predictor(stub, predictor, image_name, prompt_name, multimask):
    image = IMAGES[image_name]
    points, boxes = scaled_prompt(PROMPTS[prompt_name], image)
    response = stub.Segment(segment_request(pb.Image(data=encode(image)), points, boxes, multimask))
    expected_masks, expected_scores = predictor_masks(predictor, image, points, boxes, multimask)

    assert (response.height, response.width) == image.shape[:2]
    assert len(response.objects) == expected_masks.shape[0]
    for obj, masks, scores in zip(response.objects, expected_masks, expected_scores):
        assert len(obj.masks) == (3 if multimask else 1)
        for mask_message, mask, score in zip(obj.masks, masks, scores):
            decoded = decode_rle(mask_message)
            # One image and one prompt at a time, as the predictor runs them: the same kernels, bit-identical.
            assert np.array_equal(decoded, mask), f"IoU {iou(decoded, mask):.5f}"
            assert mask_message.score == score
            assert mask_message.area == mask.sum()


def test_box_objects_carry_their_prompt_box(stub):
    image = IMAGES["landscape"]
    _, boxes = scaled_prompt(PROMPTS["several boxes"], image)
    response = stub.Segment(segment_request(pb.Image(data=encode(image)), [], boxes, False))
    got = [(o.prompt_box.x_min, o.prompt_box.y_min, o.prompt_box.x_max, o.prompt_box.y_max) for o in response.objects]
    assert np.allclose(got, boxes, rtol=UNIT_ROUNDOFF_FP32, atol=0)  # carried in float32 proto fields


def test_embed_then_click_by_id_is_a_cache_hit_without_the_encoder(server, stub):
    image = random_image(10, 200, 300)
    first = stub.Embed(pb.EmbedRequest(image=pb.Image(data=encode(image))))
    assert not first.cache_hit and (first.width, first.height) == (300, 200)
    encodes = server.metric("labelgate_model_seconds_count", stage="encode", model="sam2_demo")
    decodes = server.metric("labelgate_model_seconds_count", stage="decode", model="sam2_demo")

    clicks = [stub.Segment(segment_request(pb.Image(image_id=first.image_id), [(50 + i, 60, False)], [], False)) for i in range(3)]

    assert all(click.cache_hit and click.image_id == first.image_id for click in clicks)
    assert server.metric("labelgate_model_seconds_count", stage="encode", model="sam2_demo") == encodes
    assert server.metric("labelgate_model_seconds_count", stage="decode", model="sam2_demo") == decodes + 3
    assert stub.Embed(pb.EmbedRequest(image=pb.Image(data=encode(image)))).cache_hit


def test_same_pixels_in_other_encodings_share_one_id(stub):
    image = random_image(11, 120, 160)
    ids = {stub.Embed(pb.EmbedRequest(image=pb.Image(data=encode(image, fmt)))).image_id for fmt in ("PNG", "BMP", "TIFF")}
    assert len(ids) == 1


def test_second_segment_with_bytes_reports_cache_hit(stub):
    image = random_image(12, 150, 150)
    request = segment_request(pb.Image(data=encode(image)), [(75, 75, False)], [], True)
    first, second = stub.Segment(request), stub.Segment(request)
    assert not first.cache_hit and second.cache_hit
    assert [m.rle.counts for m in first.objects[0].masks] == [m.rle.counts for m in second.objects[0].masks]


def test_all_mask_formats_agree(stub):
    import cv2

    image = IMAGES["square"]
    response = stub.Segment(
        segment_request(pb.Image(data=encode(image)), [(128, 128, False)], [], True, formats=[pb.COCO_RLE, pb.POLYGONS, pb.PNG])
    )
    for mask_message in response.objects[0].masks:
        from_rle = decode_rle(mask_message)
        from_png = cv2.imdecode(np.frombuffer(mask_message.png, np.uint8), cv2.IMREAD_GRAYSCALE) > 0
        assert np.array_equal(from_rle, from_png)
        # OpenCV hole contours run along mask pixels: fill outers, clear holes, redraw hole outlines.
        outers = [np.array(p.points, np.float32).reshape(-1, 2).round().astype(np.int32) for p in mask_message.polygons if not p.hole]
        holes = [np.array(p.points, np.float32).reshape(-1, 2).round().astype(np.int32) for p in mask_message.polygons if p.hole]
        canvas = np.zeros(from_rle.shape, np.uint8)
        cv2.fillPoly(canvas, outers, 1)
        cv2.fillPoly(canvas, holes, 0)
        cv2.polylines(canvas, holes, True, 1)
        if from_rle.sum() > 100:
            assert iou(canvas.astype(bool), from_rle) > 0.97
        ys, xs = np.nonzero(from_rle)
        if len(xs):
            box = mask_message.bbox
            assert (box.x_min, box.y_min, box.x_max, box.y_max) == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)


def test_formats_default_to_coco_rle_only(stub):
    response = stub.Segment(segment_request(pb.Image(data=encode(IMAGES["square"])), [(10, 10, False)], [], False))
    mask = response.objects[0].masks[0]
    assert mask.rle.counts and not mask.png and not mask.polygons


@pytest.mark.fidelity
def test_concurrent_clients_get_their_own_results(server, predictor):
    """Many clients at once, on different images and prompts: nothing crosses over (batched on a GPU, one by one on a CPU)."""
    jobs = []
    for seed in range(8):
        image = random_image(100 + seed, 180 + 10 * seed, 220)
        points = [(20.0 + 15 * seed, 30.0 + 10 * seed, False)]
        jobs.append((image, points))
    expected = [predictor_masks(predictor, image, points, [], True, return_logits=True) for image, points in jobs]

    def run(job):
        image, points = job
        with server.channel() as channel:
            from labelgate.v1 import labelgate_pb2_grpc

            stub = labelgate_pb2_grpc.LabelgateStub(channel)
            return stub.Segment(segment_request(pb.Image(data=encode(image)), points, [], True), timeout=120)

    batches_before = server.metric("labelgate_batch_size_count", stage="encode", model="sam2_demo")
    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(run, jobs))
    for response, (image, _), (masks, scores) in zip(responses, jobs, expected):
        assert (response.height, response.width) == image.shape[:2]
        for mask_message, logits, score in zip(response.objects[0].masks, masks[0], scores[0]):
            # Batched execution runs other kernels than the single-image reference: within tolerance.
            assert_mask_agrees(decode_rle(mask_message), logits, SAM2_DEMO_DEPTH)
            assert_score_agrees(mask_message.score, score, SAM2_DEMO_DEPTH)
    batches = server.metric("labelgate_batch_size_count", stage="encode", model="sam2_demo") - batches_before
    # On a CPU the sam2 kind runs each image alone (a shared pass costs more than separate ones).
    assert batches == len(jobs), "on a CPU each of the 8 concurrent cold requests gets its own encoder pass"


@pytest.mark.fidelity
def test_text_prompt_segments_every_detection(stub, predictor, demo_weights):
    image = IMAGES["landscape"]
    run = grounding_run(*grounding_dino_reference(demo_weights), image, "cat . dog .")

    response = stub.Segment(pb.SegmentRequest(image=pb.Image(data=encode(image)), text="cat . dog ."))

    assert len(response.objects) > 0
    boxes = [(o.prompt_box.x_min, o.prompt_box.y_min, o.prompt_box.x_max, o.prompt_box.y_max) for o in response.objects]
    assert_detections_agree([(box, o.detection_score, o.label) for box, o in zip(boxes, response.objects)], run, 0.35, 0.25)
    # The masks are SAM 2's for the boxes the detector gave, as the predictor makes them: bit-identical.
    expected_masks, _ = predictor_masks(predictor, image, [], boxes, False)
    for obj, mask in zip(response.objects, expected_masks, strict=True):
        assert np.array_equal(decode_rle(obj.masks[0]), mask[0])


def test_text_prompt_with_no_detection_returns_no_objects(stub):
    response = stub.Segment(pb.SegmentRequest(image=pb.Image(data=encode(IMAGES["square"])), text="cat .", box_threshold=1.0))
    assert response.objects == [] or len(response.objects) == 0
    assert response.image_id.startswith("img_")
