"""Two real labelgate replicas sharing a real redis-server: an image_id issued by one is served by the
other from Redis without its encoder (SAM 2 and SAM 3); Redis going away and coming back never fails
a request."""

from __future__ import annotations

import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from agreement import sam2_score_tolerance_from_fp16_features
from labelgate.bench.feature_precision import IOU_BAR
from labelgate.client import AffinityClient, ImageId
from labelgate.client.retry import NO_RETRIES
from labelgate.v1 import labelgate_pb2 as pb
from reference import decode_rle, encode, iou, random_image
from redis_server import free_port
from server_process import start_server

MODEL = "sam2_demo"
FEATURES_BYTES = 1024 * 1024  # demo model (256 px): 256x16x16 + 32x64x64 + 64x32x32 float32
B_CACHE_BYTES = 3 * FEATURES_BYTES + FEATURES_BYTES // 2


@pytest.fixture(scope="module")
def replicas(demo_weights, redis_server, tmp_path_factory):
    flags = ("--redis-url", redis_server.url, "--redis-timeout-ms", "200", "--gdino-model", "")
    with ThreadPoolExecutor(2) as pool:
        a = pool.submit(start_server, tmp_path_factory.mktemp("replica-a"), demo_weights, *flags)
        b = pool.submit(start_server, tmp_path_factory.mktemp("replica-b"), demo_weights, *flags,
                        "--cache-bytes", str(B_CACHE_BYTES))
        a, b = a.result(), b.result()
    yield a, b
    for replica in (a, b):
        assert replica.stop() == 0, replica.log()


def _encodes(replica) -> float:
    return replica.metric("labelgate_model_seconds_count", stage="encode", model=MODEL)


def _shared(replica, event: str) -> float:
    return replica.metric("labelgate_shared_cache_events_total", tier="redis", event=event)


def _click(stub, image: pb.Image, x: float = 40, y: float = 50):
    request = pb.SegmentRequest(image=image, points=[pb.Point(x=x, y=y)], multimask_output=True)
    return stub.Segment(request, timeout=60)


def _masks(response) -> list[np.ndarray]:
    return [decode_rle(mask) for obj in response.objects for mask in obj.masks]


def test_embed_on_a_then_segment_by_id_on_b_is_a_hit_without_b_encoding(replicas):
    a, b = replicas
    image = random_image(40, 180, 240)
    embedded = a.stub().Embed(pb.EmbedRequest(image=pb.Image(data=encode(image))), timeout=60)
    encodes_b, hits_b = _encodes(b), _shared(b, "hit")

    on_b = _click(b.stub(), pb.Image(image_id=embedded.image_id))
    on_a = _click(a.stub(), pb.Image(image_id=embedded.image_id))

    assert on_b.cache_hit and (on_b.width, on_b.height) == (240, 180)
    assert _encodes(b) == encodes_b  # B's encoder never ran
    assert _shared(b, "hit") == hits_b + 1
    # B decodes the fp16 copy from Redis, A its own fp32 features: masks within the codec's bar (the IoU
    # FP16_TENSORS was chosen by), scores within float16 rounding of the features.
    for mask_b, mask_a in zip(_masks(on_b), _masks(on_a), strict=True):
        assert iou(mask_b, mask_a) >= IOU_BAR
    scores_a = [m.score for o in on_a.objects for m in o.masks]
    for score_b, score_a in zip([m.score for o in on_b.objects for m in o.masks], scores_a, strict=True):
        assert score_b == pytest.approx(score_a, abs=sam2_score_tolerance_from_fp16_features(score_a))


SAM3 = "sam3"  # the demo SAM 3 that --demo-weights serves next to the pair


def _concepts(stub, image: pb.Image):
    request = pb.SegmentRequest(image=image, text="cat", model=SAM3, box_threshold=0.001)  # random weights score low
    return stub.Segment(request, timeout=60)


def test_sam3_concepts_on_b_use_the_features_a_computed(replicas):
    """SAM 3 features go through Redis losslessly, position encodings made by B from their shapes: B
    finds exactly A's instances without running its vision encoder."""
    a, b = replicas
    on_a = _concepts(a.stub(), pb.Image(data=encode(random_image(60, 150, 200))))
    encodes_b, hits_b = b.metric("labelgate_model_seconds_count", stage="encode", model=SAM3), _shared(b, "hit")

    on_b = _concepts(b.stub(), pb.Image(image_id=on_a.image_id))

    assert on_b.cache_hit and not on_a.cache_hit
    assert b.metric("labelgate_model_seconds_count", stage="encode", model=SAM3) == encodes_b
    assert _shared(b, "hit") > hits_b  # (B's local share of its small --cache-bytes cannot hold them: one per lookup)
    assert len(on_b.objects) == len(on_a.objects) > 0
    for obj_b, obj_a in zip(on_b.objects, on_a.objects):
        assert np.array_equal(decode_rle(obj_b.masks[0]), decode_rle(obj_a.masks[0]))
        assert obj_b.detection_score == obj_a.detection_score and obj_b.prompt_box == obj_a.prompt_box


def test_local_tier_stays_within_its_byte_budget_under_distinct_images(replicas):
    _, b = replicas
    stub = b.stub()
    evictions = b.metric("labelgate_cache_events_total", cache="features/sam2_demo", event="evictions")
    held = []
    for seed in range(8):
        stub.Embed(pb.EmbedRequest(image=pb.Image(data=encode(random_image(200 + seed, 120, 160)))), timeout=60)
        held.append(b.metric("labelgate_cache_bytes", cache="features/sam2_demo"))

    assert max(held) <= B_CACHE_BYTES
    assert held[-1] == 3 * FEATURES_BYTES  # full, to the entry
    assert b.metric("labelgate_cache_events_total", cache="features/sam2_demo", event="evictions") >= evictions + 5


def test_affinity_client_keeps_each_image_on_one_replica(replicas):
    """Clicks by id land where the image was embedded: local hits, no shared-tier traffic. An
    endpoint that is down is skipped for the images that ranked it first."""
    a, b = replicas
    shared_hits, encodes = [_shared(r, "hit") for r in (a, b)], sum(_encodes(r) for r in (a, b))
    down = f"127.0.0.1:{free_port()}"
    with AffinityClient([a.address, b.address, down], retry=NO_RETRIES, timeout=60) as client:
        images = [encode(random_image(400 + i, 100, 120)) for i in range(4)]
        images += next([data] for data in (encode(random_image(500 + i, 100, 120)) for i in range(100))
                       if client.endpoint_for(data) == down)  # one image whose first choice is down
        for data in images:
            embedded = client.embed(data)
            clicked = client.segment(ImageId(embedded.image_id), points=[(10, 10)])
            assert clicked.cache_hit and clicked.image_id == embedded.image_id

    assert sum(_encodes(r) for r in (a, b)) == encodes + len(images)
    assert [_shared(r, "hit") for r in (a, b)] == shared_hits


def test_health_probe_of_the_images_reports_serving_and_fails_when_down(replicas):
    a, _ = replicas

    def probe(address: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "labelgate.server.health_probe", "--address", address]
        return subprocess.run(command, capture_output=True, text=True, timeout=60)

    up, down = probe(a.address), probe(f"127.0.0.1:{free_port()}")
    assert (up.returncode, down.returncode) == (0, 1)
    assert "SERVING" in up.stdout and "UNAVAILABLE" in down.stdout


def test_redis_killed_then_restarted(replicas, redis_server):
    a, b = replicas
    image = random_image(50, 150, 200)
    redis_server.kill()

    # Both replicas keep answering, from their own encoders: the same masks as each other.
    down = [_click(replica.stub(), pb.Image(data=encode(image))) for replica in (a, b)]
    assert all(response.objects for response in down)
    for mask_a, mask_b in zip(_masks(down[0]), _masks(down[1]), strict=True):
        assert np.array_equal(mask_a, mask_b)
    for replica in (a, b):
        assert replica.metric("labelgate_shared_cache_outages_total", tier="redis") == 1
        assert replica.metric("labelgate_shared_cache_up", tier="redis") == 0
        assert _click(replica.stub(), pb.Image(data=encode(random_image(51, 90, 90)))).objects  # and again
        assert sum("unreachable" in line for line in replica.log().splitlines()) == 1  # logged once

    redis_server.start()
    # The tier comes back by itself within the retry interval: an id embedded on A becomes a hit on B.
    for attempt in range(20):
        embedded = a.stub().Embed(pb.EmbedRequest(image=pb.Image(data=encode(random_image(300 + attempt, 100, 130)))))
        try:
            if _click(b.stub(), pb.Image(image_id=embedded.image_id)).cache_hit:
                break
        except Exception as error:  # NOT_FOUND while A has not yet written to the new Redis
            assert "NOT_FOUND" in str(error.code()), error
        time.sleep(0.3)
    else:
        pytest.fail("the shared tier did not come back after Redis restarted")
    assert b.metric("labelgate_shared_cache_up", tier="redis") == 1
    assert "is back" in a.log()
