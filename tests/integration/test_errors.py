"""Bad requests, limits, overload and shutdown against real servers: the right status code, a
message the caller can act on, and a server that keeps serving."""

from __future__ import annotations

import base64
import io
import math
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2
from PIL import Image

from labelgate.models.demo import SAM2_DEMO_CONFIG, SAM2_DEMO_OVERRIDES
from labelgate.models.demo import demo_paths
from labelgate.v1 import labelgate_pb2 as pb
from labelgate.v1 import labelgate_pb2_grpc
from reference import encode, random_image
from server_process import start_server

Code = grpc.StatusCode

GOOD = random_image(7, 64, 96)
GOOD_PNG = encode(GOOD)
UNKNOWN_ID = "img_" + "0" * 32


def _gif() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(GOOD).save(buffer, "GIF")
    return buffer.getvalue()


def _noise_png(seed: int, height: int, width: int) -> bytes:
    """Incompressible pixels: the PNG is about 3 bytes a pixel."""
    return encode(np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8))


def point(x, y, negative=False):
    return pb.Point(x=x, y=y, negative=negative)


def box(x_min, y_min, x_max, y_max):
    return pb.Box(x_min=x_min, y_min=y_min, x_max=x_max, y_max=y_max)


def segment(image=None, **fields):
    return ("Segment", pb.SegmentRequest(image=image if image is not None else pb.Image(data=GOOD_PNG), **fields))


def detect(image=None, **fields):
    return ("Detect", pb.DetectRequest(image=image if image is not None else pb.Image(data=GOOD_PNG), **fields))


def embed(image=None, **fields):
    return ("Embed", pb.EmbedRequest(image=image, **fields))


ONE_POINT = {"points": [point(10, 10)]}

# name: ((method, request), expected code, phrase of the message)
BAD_REQUESTS = {
    "Embed empty image bytes": (embed(pb.Image(data=b"")), Code.INVALID_ARGUMENT, "no image"),
    "Embed no image at all": (embed(), Code.INVALID_ARGUMENT, "Embed: no image"),
    "Segment no image at all": (("Segment", pb.SegmentRequest(**ONE_POINT)), Code.INVALID_ARGUMENT, "Segment: no image"),
    "garbage bytes": (segment(pb.Image(data=b"hello, this is not an image"), **ONE_POINT), Code.INVALID_ARGUMENT,
                      "could not decode the image"),
    "base64 text instead of bytes": (embed(pb.Image(data=base64.b64encode(GOOD_PNG))), Code.INVALID_ARGUMENT,
                                     "looks like base64"),
    "truncated PNG": (segment(pb.Image(data=GOOD_PNG[: len(GOOD_PNG) // 2]), **ONE_POINT), Code.INVALID_ARGUMENT, "truncated"),
    "PNG signature only": (embed(pb.Image(data=GOOD_PNG[:12])), Code.INVALID_ARGUMENT, "starts like a PNG file"),
    "GIF": (embed(pb.Image(data=_gif())), Code.INVALID_ARGUMENT, "GIF images are not supported"),
    "Segment unknown image_id": (segment(pb.Image(image_id=UNKNOWN_ID), **ONE_POINT), Code.NOT_FOUND,
                                 "send the image bytes in Image.data"),
    "Embed unknown image_id": (embed(pb.Image(image_id=UNKNOWN_ID)), Code.NOT_FOUND, f"unknown image_id '{UNKNOWN_ID}'"),
    "Detect unknown image_id": (detect(pb.Image(image_id=UNKNOWN_ID), text="cat ."), Code.NOT_FOUND,
                                "send the image bytes in Image.data"),
    "NaN point": (segment(points=[point(math.nan, 5)]), Code.INVALID_ARGUMENT, "point 0 has a non-finite coordinate"),
    "inf box": (segment(boxes=[box(0, 0, math.inf, 10)]), Code.INVALID_ARGUMENT, "box 0 has a non-finite coordinate"),
    "out-of-image point": (segment(points=[point(97, 10)]), Code.INVALID_ARGUMENT, "is outside the 96 x 64 image"),
    "out-of-image box": (segment(boxes=[box(0, 0, 50, 65)]), Code.INVALID_ARGUMENT, "is outside the 96 x 64 image"),
    "inverted box": (segment(boxes=[box(50, 10, 20, 40)]), Code.INVALID_ARGUMENT, "box 0 is empty or inverted"),
    "empty prompt": (segment(), Code.INVALID_ARGUMENT, "empty prompt"),
    "text and points": (segment(text="cat .", **ONE_POINT), Code.INVALID_ARGUMENT, "cannot be combined with points or boxes"),
    "points and 2 boxes": (segment(points=[point(10, 10)], boxes=[box(0, 0, 20, 20), box(5, 5, 30, 30)]),
                           Code.INVALID_ARGUMENT, "exactly one box, got 2 boxes"),
    "65 points": (segment(points=[point(i % 90, 10) for i in range(65)]), Code.INVALID_ARGUMENT,
                  "65 points is over this server's limit of 64 (--max-points)"),
    "unknown SAM 2 model": (segment(model="sam9", **ONE_POINT), Code.NOT_FOUND, "unknown model 'sam9'"),
    "Embed unknown SAM 2 model": (embed(pb.Image(data=GOOD_PNG), model="sam9"), Code.NOT_FOUND, "unknown model 'sam9'"),
    "unknown detector model": (segment(text="cat .", detector_model="dino9"), Code.NOT_FOUND,
                               "unknown model 'dino9'"),
    "box_threshold 2.0": (segment(text="cat .", box_threshold=2.0), Code.INVALID_ARGUMENT,
                          "box_threshold must be between 0 and 1"),
    "text_threshold NaN": (segment(text="cat .", text_threshold=math.nan), Code.INVALID_ARGUMENT,
                           "text_threshold must be between 0 and 1"),
    "unknown mask format 7": (segment(formats=[pb.PNG, 7], **ONE_POINT), Code.INVALID_ARGUMENT, "unknown mask format 7"),
    "too-long text": (segment(text="cat " * 501), Code.INVALID_ARGUMENT, "over the limit of 2000"),
    "Detect empty text": (detect(text=""), Code.INVALID_ARGUMENT, "empty text prompt"),
    "Detect dots only": (detect(text=" .. "), Code.INVALID_ARGUMENT, "empty text prompt"),
    "Detect negative box_threshold": (detect(text="cat .", box_threshold=-0.5), Code.INVALID_ARGUMENT,
                                      "box_threshold must be between 0 and 1"),
    "Detect unknown model": (detect(text="cat .", model="dino9"), Code.NOT_FOUND, "unknown model 'dino9'"),
    "Detect no image": (("Detect", pb.DetectRequest(text="cat .")), Code.INVALID_ARGUMENT, "Detect: no image"),
    "Embed image_id that is no id": (embed(pb.Image(image_id="photo.jpg")), Code.INVALID_ARGUMENT,
                                     "image_id 'photo.jpg' is not an image id: ids are 'img_' and 32 lower-case hex digits"),
}

# Caller values far longer than any message should be: refused or echoed shortened, never in full.
LONG_ID, LONG_NAME = "img_" + "0" * 100_000, "m" * 10_000
LONG_VALUES = {
    "Embed 100 KB image_id": (embed(pb.Image(image_id=LONG_ID)), Code.INVALID_ARGUMENT, "(100004 characters) is not an image id"),
    "Segment 100 KB image_id": (segment(pb.Image(image_id=LONG_ID), **ONE_POINT), Code.INVALID_ARGUMENT, "is not an image id"),
    "Detect 100 KB image_id": (detect(pb.Image(image_id=LONG_ID), text="cat ."), Code.INVALID_ARGUMENT, "is not an image id"),
    "Embed 10 KB model name": (embed(pb.Image(data=GOOD_PNG), model=LONG_NAME), Code.INVALID_ARGUMENT,
                               "the model field: a name of 10000 characters is over the limit of 256"),
    "Segment 10 KB model name": (segment(model=LONG_NAME, **ONE_POINT), Code.INVALID_ARGUMENT, "a name of 10000"),
    "Segment 10 KB detector model name": (segment(text="cat .", detector_model=LONG_NAME), Code.INVALID_ARGUMENT,
                                          "the detector_model field: a name of 10000 characters"),
    "Detect 10 KB model name": (detect(text="cat .", model=LONG_NAME), Code.INVALID_ARGUMENT,
                                "the model field: a name of 10000 characters"),
    "unknown 256-character model name": (segment(model="m" * 256, **ONE_POINT), Code.NOT_FOUND,
                                         "... (256 characters); the models for"),
}
BAD_REQUESTS.update(LONG_VALUES)


def call(stub, method: str, request, timeout: float = 60):
    return getattr(stub, method)(request, timeout=timeout)


def rpc_error(stub, method: str, request) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call(stub, method, request)
    return caught.value


def assert_serves(stub) -> None:
    """A good Segment still works."""
    response = stub.Segment(pb.SegmentRequest(image=pb.Image(data=GOOD_PNG), points=[point(30, 20)]), timeout=60)
    assert (response.width, response.height) == (96, 64)
    assert len(response.objects) == 1 and len(response.objects[0].masks) == 1
    assert response.objects[0].masks[0].rle.counts


@pytest.mark.parametrize("name", list(BAD_REQUESTS))
def test_bad_request_gets_its_status_and_the_server_keeps_serving(server, stub, name):
    (method, request), code, phrase = BAD_REQUESTS[name]
    errors_before = server.metric("labelgate_requests_total", method=method, code=code.name)

    error = rpc_error(stub, method, request)

    assert error.code() == code, error.details()
    assert phrase in error.details()
    assert server.metric("labelgate_requests_total", method=method, code=code.name) == errors_before + 1
    assert_serves(stub)


@pytest.mark.parametrize("name", list(LONG_VALUES))
def test_a_long_caller_value_gives_a_short_answer_and_log_line(server, stub, name):
    (method, request), code, _ = LONG_VALUES[name]

    error = rpc_error(stub, method, request)

    assert error.code() == code, error.details()
    assert len(error.details().encode()) < 1000
    assert "m" * 300 not in server.log() and "0" * 300 not in server.log()


def test_no_bad_request_was_a_server_fault(server, stub):
    for method in ("Embed", "Segment", "Detect"):
        assert server.metric("labelgate_requests_total", method=method, code="INTERNAL") == 0
    assert "Traceback" not in server.log()


# --- limits, eviction and overload ---------------------------------------------------------------

MAX_MESSAGE, MAX_PIXELS, FEATURE_BUDGET, IMAGE_BUDGET = 200_000, 40_000, 3_000_000, 300_000


@pytest.fixture(scope="module")
def limited(demo_weights, tmp_path_factory):
    """The demo SAM 2 given as an ordinary checkpoint, without a detector, with small limits.

    (`--demo-weights` always loads the demo Grounding DINO, whatever `--gdino-model` says.)"""
    checkpoint, _ = demo_paths(demo_weights)
    overrides = [arg for override in SAM2_DEMO_OVERRIDES for arg in ("--sam2-override", override)]
    running = start_server(
        tmp_path_factory.mktemp("limited"), None,
        "--sam2-config", SAM2_DEMO_CONFIG, "--sam2-checkpoint", str(checkpoint), *overrides, "--sam2-name", "sam2_demo",
        "--gdino-model", "", "--max-message-bytes", str(MAX_MESSAGE), "--max-image-pixels", str(MAX_PIXELS),
        "--cache-bytes", str(FEATURE_BUDGET), "--image-cache-bytes", str(IMAGE_BUDGET), "--max-queue", "1",
        "--max-batch-size", "1",
    )
    yield running
    assert running.stop() == 0, running.log()


@pytest.fixture(scope="module")
def limited_stub(limited):
    return limited.stub()


def test_a_message_over_max_message_bytes_is_resource_exhausted(limited, limited_stub):
    error = rpc_error(limited_stub, "Embed", pb.EmbedRequest(image=pb.Image(data=b"\0" * (MAX_MESSAGE + 50_000))))
    assert error.code() == Code.RESOURCE_EXHAUSTED, error.details()
    assert "larger than max" in error.details() and str(MAX_MESSAGE) in error.details()
    assert_serves(limited_stub)


def test_an_image_over_max_image_pixels_is_invalid_argument(limited, limited_stub):
    data = encode(random_image(20, 200, 300))  # 60000 pixels, a small file
    assert len(data) < MAX_MESSAGE
    for method, request in (embed(pb.Image(data=data)), segment(pb.Image(data=data), **ONE_POINT)):
        error = rpc_error(limited_stub, method, request)
        assert error.code() == Code.INVALID_ARGUMENT, error.details()
        assert "300 x 200 = 60000 pixels" in error.details() and "--max-image-pixels" in error.details()
    # 200 x 200 is exactly the limit.
    assert limited_stub.Embed(pb.EmbedRequest(image=pb.Image(data=encode(random_image(21, 200, 200)))), timeout=60).width == 200


def test_text_prompts_without_a_detector_are_unimplemented(limited, limited_stub):
    for method, request in (segment(text="cat ."), detect(text="cat .")):
        error = rpc_error(limited_stub, method, request)
        assert error.code() == Code.UNIMPLEMENTED, error.details()
        assert "no model for boxes from a text prompt" in error.details() and "--model" in error.details()
    kinds = [model.kind for model in limited_stub.ListModels(pb.ListModelsRequest(), timeout=10).models]
    assert kinds == ["sam2"]
    assert_serves(limited_stub)


def test_evicted_images_are_not_found_and_the_caches_stay_within_budget(limited, limited_stub):
    images = [_noise_png(30 + i, 199, 199) for i in range(4)]  # ~119 kB each, 1 MiB of features each
    assert all(IMAGE_BUDGET / 3 < len(data) < MAX_MESSAGE for data in images)
    caches = ("features/sam2_demo", "images")
    evictions = {c: limited.metric("labelgate_cache_events_total", cache=c, event="evictions") for c in caches}

    ids = []
    for data in images:
        response = limited_stub.Embed(pb.EmbedRequest(image=pb.Image(data=data)), timeout=60)
        assert not response.cache_hit
        ids.append(response.image_id)
        features_bytes = limited.metric("labelgate_cache_bytes", cache="features/sam2_demo")
        images_bytes = limited.metric("labelgate_cache_bytes", cache="images")
        assert 0 < features_bytes <= FEATURE_BUDGET
        assert 0 < images_bytes <= IMAGE_BUDGET

    for cache in caches:
        assert limited.metric("labelgate_cache_events_total", cache=cache, event="evictions") > evictions[cache], cache
    error = rpc_error(limited_stub, "Segment", pb.SegmentRequest(image=pb.Image(image_id=ids[0]), points=[point(5, 5)]))
    assert error.code() == Code.NOT_FOUND, error.details()
    assert f"unknown image_id '{ids[0]}'" in error.details() and "send the image bytes" in error.details()
    # The newest image is still there, features and all.
    latest = limited_stub.Segment(pb.SegmentRequest(image=pb.Image(image_id=ids[-1]), points=[point(5, 5)]), timeout=60)
    assert latest.cache_hit and latest.image_id == ids[-1]
    # Sending the bytes again brings the evicted image back.
    again = limited_stub.Segment(pb.SegmentRequest(image=pb.Image(data=images[0]), points=[point(5, 5)]), timeout=60)
    assert again.image_id == ids[0] and not again.cache_hit


def test_a_full_queue_is_resource_exhausted_and_the_rest_succeed(limited, limited_stub):
    clients = 12
    images = [encode(random_image(200 + i, 120, 150)) for i in range(clients)]
    channels = [limited.channel() for _ in range(clients)]
    for channel in channels:
        grpc.channel_ready_future(channel).result(timeout=10)
    start = threading.Barrier(clients)

    def run(index):
        stub = labelgate_pb2_grpc.LabelgateStub(channels[index])
        start.wait()
        try:
            stub.Embed(pb.EmbedRequest(image=pb.Image(data=images[index])), timeout=60)
            return Code.OK, ""
        except grpc.RpcError as error:
            return error.code(), error.details()

    try:
        with ThreadPoolExecutor(clients) as pool:
            results = list(pool.map(run, range(clients)))
    finally:
        for channel in channels:
            channel.close()

    refused = [details for code, details in results if code == Code.RESOURCE_EXHAUSTED]
    assert refused, results
    assert all("queue is full" in details and "retry with backoff" in details for details in refused)
    assert all(code in (Code.OK, Code.RESOURCE_EXHAUSTED) for code, _ in results), results
    assert sum(code == Code.OK for code, _ in results) >= 1
    assert limited.metric("labelgate_batch_dropped_total", stage="encode", model="sam2_demo", reason="queue_full") >= len(refused)
    assert_serves(limited_stub)


# --- shutdown ------------------------------------------------------------------------------------


def test_sigterm_lets_the_request_in_flight_finish_then_exits_0(demo_weights, tmp_path):
    running = start_server(tmp_path / "shutdown", demo_weights)
    try:
        stub = running.stub()
        height, width, count = 1000, 1200, 20
        request = pb.SegmentRequest(
            image=pb.Image(data=encode(random_image(300, height, width))),
            boxes=[box(i, i, width - 1 - i, height - 1 - i) for i in range(count)],
            multimask_output=True,
        )
        misses = running.metric("labelgate_cache_events_total", cache="features/sam2_demo", event="misses")
        finished = []
        future = stub.Segment.future(request, timeout=60)
        future.add_done_callback(lambda _: finished.append(time.monotonic()))
        deadline = time.monotonic() + 20
        while running.metric("labelgate_cache_events_total", cache="features/sam2_demo", event="misses") == misses:
            assert time.monotonic() < deadline and not future.done(), "the request never reached the feature cache"
            time.sleep(0.005)
        assert not future.done(), "the request finished before SIGTERM: make it slower"

        signalled = time.monotonic()
        running.process.send_signal(signal.SIGTERM)
        response = future.result(timeout=30)

        assert finished and finished[0] > signalled
        assert len(response.objects) == count and all(len(o.masks) == 3 for o in response.objects)
        assert (response.width, response.height) == (width, height)
        assert _stops_serving(running, within=15)
        assert running.process.wait(timeout=30) == 0
        log = running.log()
        assert "shutting down" in log and "stopped" in log
        assert "Traceback" not in log
    finally:
        if running.process.poll() is None:
            running.process.kill()
            running.process.wait()


def _stops_serving(running, within: float) -> bool:
    """Health says NOT_SERVING, or nothing answers any more."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if running.health() != health_pb2.HealthCheckResponse.SERVING:
                return True
        except grpc.RpcError:
            return True
        time.sleep(0.05)
    return False
