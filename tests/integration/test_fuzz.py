"""A fuzz corpus the suite owns: 1,200 requests drawn by hypothesis (fixed seed, so every run sends
the same ones) to every RPC and through every field, against one real server, each answered with
OK or the documented status for its mistake, never a server fault. `labelgate bench --fuzz N` runs
the same generator for as long as wanted."""

from __future__ import annotations

import grpc
import pytest
from grpc_health.v1 import health_pb2

from labelgate.bench.fuzz import REQUESTS
from labelgate.bench.fuzz_runner import (
    FUZZ_MAX_IMAGE_PIXELS,
    FUZZ_MAX_MESSAGE_BYTES,
    MAX_DETAILS_BYTES,
    discover,
    fuzz,
    fuzz_channel,
    fuzz_server_flags,
    health_status,
)
from server_process import start_server

CASES = 1_200
SERVING = health_pb2.HealthCheckResponse.SERVING


@pytest.fixture(scope="module")
def fuzz_server(demo_weights, tmp_path_factory):
    """The demo models with small image and message limits, so that going over them stays cheap."""
    running = start_server(tmp_path_factory.mktemp("fuzz"), demo_weights, *fuzz_server_flags())
    yield running
    assert running.stop() == 0, running.log()


@pytest.fixture(scope="module")
def channel(fuzz_server):
    with fuzz_channel(fuzz_server.address) as channel:
        yield channel


def test_every_generated_request_gets_ok_or_its_documented_status(fuzz_server, channel):
    facts = discover(channel, FUZZ_MAX_IMAGE_PIXELS, FUZZ_MAX_MESSAGE_BYTES)

    report = fuzz(channel, facts, CASES, random_seed=0, serving=lambda: health_status(channel) == SERVING)

    assert report.cases == CASES and not report.stopped, report.summary()
    if report.violations:
        pytest.fail(report.summary(), pytrace=False)
    # The corpus reached every RPC, and both sides of each.
    for method in REQUESTS:
        assert report.counts[(method, "OK")] > 0, report.summary()
    for method in ("Embed", "Segment", "Detect"):
        for code in ("INVALID_ARGUMENT", "NOT_FOUND"):
            assert report.counts[(method, code)] > 0, report.summary()
    assert sum(report.counts[(method, "RESOURCE_EXHAUSTED")] for method in REQUESTS) > 0, report.summary()
    assert report.counts[("(unknown)", "UNIMPLEMENTED")] > 0, report.summary()
    assert health_status(channel) == SERVING
    for method in REQUESTS:
        assert fuzz_server.metric("labelgate_requests_total", method=method, code="INTERNAL") == 0
    log = fuzz_server.log()
    at = log.find("Traceback")
    assert at < 0, log[max(0, at - 600) : at + 3000]


NOT_A_REQUEST = [(method, raw) for method in sorted(REQUESTS) for raw in (b"\xff\xff\xff", b"hello, not a protobuf")]
# Invalid UTF-8 in a string field: Embed.model, Segment.text, Detect.text.
NOT_A_REQUEST += [("Embed", b"\x12\x02\xc3\x28"), ("Segment", b"\x22\x01\xff"), ("Detect", b"\x12\x03ok\x80")]


@pytest.mark.parametrize(("method", "raw"), NOT_A_REQUEST)
def test_bytes_that_are_no_request_are_invalid_argument(fuzz_server, channel, method, raw):
    """The fuzzer's raw-bytes cases, one of each kind: a malformed message is the caller's mistake."""
    before = fuzz_server.metric("labelgate_requests_total", method=method, code="INVALID_ARGUMENT")

    with pytest.raises(grpc.RpcError) as caught:
        channel.unary_unary(f"/labelgate.v1.Labelgate/{method}")(raw, timeout=30)

    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, caught.value.details()
    assert "not a valid" in caught.value.details() and REQUESTS[method].__name__ in caught.value.details()
    assert len(caught.value.details().encode()) < MAX_DETAILS_BYTES
    assert fuzz_server.metric("labelgate_requests_total", method=method, code="INVALID_ARGUMENT") == before + 1
