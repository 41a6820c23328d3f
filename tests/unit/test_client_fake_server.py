"""Client <-> a fake in-process labelgate server (no models): image_id reuse, the NOT_FOUND
resend, error wrapping, result conversion, retries, deadlines and the token, over real gRPC."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
from fake_labelgate import FakeLabelgate, serve_fake

from labelgate.client import NO_RETRIES, Client, ImageId, LabelgateClientError, RetryPolicy


@pytest.fixture
def fake():
    with serve_fake() as (servicer, address):
        with Client(address, timeout=10) as client:
            yield servicer, client


def _sources(servicer: FakeLabelgate) -> list[str]:
    return servicer.sources()


IMAGE = np.arange(36, dtype=np.uint8).reshape(3, 4, 3)


def test_second_call_sends_only_the_id(fake):
    servicer, client = fake
    first = client.segment(IMAGE, points=[(3, 2)])
    second = client.segment(IMAGE.copy(), points=[(3, 2)])
    client.detect(IMAGE, "cat .")
    assert first.image_id == second.image_id
    assert _sources(servicer) == ["data", "image_id", "image_id"]
    assert servicer.requests[1].image.image_id == first.image_id
    assert first.objects[0].best.to_numpy().shape == (3, 4)


def test_forgotten_id_is_resent_once_with_the_bytes(fake):
    servicer, client = fake
    client.embed(IMAGE)
    servicer.forget()
    result = client.segment(IMAGE, points=[(1, 1)])
    assert _sources(servicer) == ["data", "image_id", "data"]
    assert result.image_id in servicer.known
    client.segment(IMAGE, points=[(1, 1)])
    assert _sources(servicer)[-1] == "image_id"


def test_explicit_image_id(fake):
    servicer, client = fake
    image_id = client.embed(IMAGE).image_id
    assert client.detect(ImageId(image_id), "dog .").detections[0].label == "dog"
    with pytest.raises(LabelgateClientError) as error:
        client.detect(ImageId("img_" + "0" * 32), "dog .")
    assert error.value.code == grpc.StatusCode.NOT_FOUND and "unknown image_id" in error.value.details
    assert _sources(servicer) == ["data", "image_id", "image_id"]  # nothing to resend for an explicit id


def test_errors_are_wrapped_and_do_not_trigger_a_resend(fake):
    servicer, client = fake
    client.embed(IMAGE)
    with pytest.raises(LabelgateClientError) as error:
        client.segment(IMAGE, points=[(10, 1)])
    assert error.value.code == grpc.StatusCode.INVALID_ARGUMENT and error.value.method == "Segment"
    assert _sources(servicer) == ["data", "image_id"]


def test_list_models(fake):
    _, client = fake
    [model] = client.list_models()
    assert (model.name, model.kind, model.is_default) == ("m", "sam2", True)


def test_unreachable_server():
    with Client("127.0.0.1:1", timeout=5) as client:
        with pytest.raises(LabelgateClientError) as error:
            client.list_models()
    assert error.value.code == grpc.StatusCode.UNAVAILABLE and error.value.unreachable


# --- retries, deadlines, token -------------------------------------------------------------------

QUICK = RetryPolicy(max_attempts=3, initial_backoff=0.01, max_backoff=0.02)


def test_unavailable_is_retried_until_it_succeeds():
    with serve_fake() as (servicer, address), Client(address, timeout=10, retry=QUICK) as client:
        servicer.fail_next = [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNAVAILABLE]
        result = client.segment(IMAGE, points=[(1, 1)])
        assert result.image_id in servicer.known
        assert servicer.sources() == ["data", "data", "data"]


def test_retries_are_bounded_and_keep_the_status_code():
    with serve_fake() as (servicer, address), Client(address, timeout=10, retry=QUICK) as client:
        servicer.fail_next = [grpc.StatusCode.UNAVAILABLE] * 5
        with pytest.raises(LabelgateClientError) as error:
            client.list_models()
        assert error.value.code == grpc.StatusCode.UNAVAILABLE and "scripted" in error.value.details
        assert len(servicer.requests) == 3  # max_attempts
    with serve_fake() as (servicer, address), Client(address, timeout=10, retry=NO_RETRIES) as client:
        servicer.fail_next = [grpc.StatusCode.UNAVAILABLE]
        with pytest.raises(LabelgateClientError):
            client.list_models()
        assert len(servicer.requests) == 1


@pytest.mark.parametrize("code", [grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.INTERNAL,
                                  grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNAUTHENTICATED])
def test_other_codes_are_not_retried(code):
    with serve_fake() as (servicer, address), Client(address, timeout=10, retry=QUICK) as client:
        servicer.fail_next = [code]
        with pytest.raises(LabelgateClientError) as error:
            client.detect(IMAGE, "cat .")
        assert error.value.code == code and error.value.method == "Detect"
        assert len(servicer.requests) == 1


def test_deadline_per_client_and_per_call():
    with serve_fake() as (servicer, address), Client(address, timeout=30) as client:
        client.embed(IMAGE)
        client.embed(IMAGE, timeout=2)
        client.list_models(timeout=None)
        default, short, unlimited = servicer.time_remaining
        assert 20 < default < 31 and 0 < short < 3  # gRPC rounds deadlines a little
        assert unlimited is None or unlimited > 1e6  # no deadline
        with pytest.raises(ValueError, match="timeout"):
            client.embed(IMAGE, timeout=0)


def test_token_goes_in_the_metadata_of_every_call():
    with serve_fake() as (servicer, address), Client(address, token="s3cret") as client:
        client.embed(IMAGE)
        client.list_models()
        assert [m.get("authorization") for m in servicer.metadata] == ["Bearer s3cret"] * 2
        assert "s3cret" not in repr(client) and "s3cret" not in repr(client.security)
    with serve_fake() as (servicer, address), Client(address) as client:
        client.list_models()
        assert "authorization" not in servicer.metadata[0]
