"""AsyncClient <-> the fake labelgate server: the same image_id reuse, resend, retries, deadlines,
token and errors as Client, awaited."""

from __future__ import annotations

import asyncio

import grpc
import numpy as np
import pytest
from fake_labelgate import serve_fake

from labelgate.client import AsyncClient, ImageId, LabelgateClientError, RetryPolicy

IMAGE = np.arange(36, dtype=np.uint8).reshape(3, 4, 3)
QUICK = RetryPolicy(max_attempts=3, initial_backoff=0.01, max_backoff=0.02)


async def test_image_id_reuse_and_resend():
    with serve_fake() as (servicer, address):
        async with AsyncClient(address, timeout=10) as client:
            first = await client.segment(IMAGE, points=[(3, 2)])
            second = await client.detect(IMAGE.copy(), "cat .")
            servicer.forget()
            third = await client.embed(IMAGE)
            fourth = await client.segment(ImageId(third.image_id), boxes=[(0, 0, 2, 2)])
        assert first.image_id == second.image_id == third.image_id == fourth.image_id
        assert servicer.sources() == ["data", "image_id", "image_id", "data", "image_id"]
        assert first.objects[0].best.to_numpy().sum() == 4 and second.detections[0].label == "cat"


async def test_errors_keep_their_code_and_are_not_resent():
    with serve_fake() as (servicer, address):
        async with AsyncClient(address, timeout=10) as client:
            await client.embed(IMAGE)
            with pytest.raises(LabelgateClientError) as error:
                await client.segment(IMAGE, points=[(10, 1)])
            assert error.value.code == grpc.StatusCode.INVALID_ARGUMENT and error.value.method == "Segment"
            with pytest.raises(LabelgateClientError) as error:
                await client.detect(ImageId("img_" + "0" * 32), "dog .")
            assert error.value.code == grpc.StatusCode.NOT_FOUND
        assert servicer.sources() == ["data", "image_id", "image_id"]


async def test_retries_deadline_and_token():
    with serve_fake() as (servicer, address):
        async with AsyncClient(address, timeout=30, retry=QUICK, token="s3cret") as client:
            servicer.fail_next = [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNAVAILABLE]
            [model] = await client.list_models(timeout=2)
            assert model.name == "m" and len(servicer.requests) == 3
            servicer.fail_next = [grpc.StatusCode.UNAVAILABLE] * 3
            with pytest.raises(LabelgateClientError) as error:
                await client.list_models()
            assert error.value.code == grpc.StatusCode.UNAVAILABLE and len(servicer.requests) == 6
            servicer.fail_next = [grpc.StatusCode.RESOURCE_EXHAUSTED]
            with pytest.raises(LabelgateClientError) as error:
                await client.embed(IMAGE)
            assert error.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED and len(servicer.requests) == 7
        assert all(0 < remaining < 3 for remaining in servicer.time_remaining[:3])
        assert 20 < servicer.time_remaining[3] < 31
        assert {m.get("authorization") for m in servicer.metadata} == {"Bearer s3cret"}


async def test_concurrent_calls_share_one_client():
    with serve_fake() as (servicer, address):
        async with AsyncClient(address, timeout=10) as client:
            images = [IMAGE + i for i in range(5)]
            results = await asyncio.gather(*(client.embed(image) for image in images))
        assert len({result.image_id for result in results}) == 5 and len(servicer.requests) == 5
