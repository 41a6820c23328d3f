"""segment(..., refine=) in Client and AsyncClient: a Mask of an earlier result, or its id, travels
as SegmentRequest.refine_mask_id; a mask without an id fails before any call."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from fake_labelgate import FAKE_MASK_ID, serve_fake

from labelgate.client import AsyncClient, Client

IMAGE = np.arange(36, dtype=np.uint8).reshape(3, 4, 3)


def test_refine_by_mask_or_id():
    with serve_fake() as (servicer, address):
        with Client(address, timeout=10) as client:
            first = client.segment(IMAGE, points=[(3, 2)])
            assert first.objects[0].best.mask_id == FAKE_MASK_ID
            client.segment(IMAGE, points=[(3, 2), (1, 1, True)], refine=first.objects[0].best)
            client.segment(IMAGE, points=[(3, 2)], refine="mask_" + "7" * 32)
    assert [r.refine_mask_id for r in servicer.requests] == ["", FAKE_MASK_ID, "mask_" + "7" * 32]


@pytest.mark.parametrize("refine, phrase", [(7, "expected a Mask"), ("mask without id", "has no mask_id")])
def test_bad_refine_fails_before_any_call(refine, phrase):
    with serve_fake() as (servicer, address):
        with Client(address, timeout=10) as client:
            if refine == "mask without id":
                refine = dataclasses.replace(client.segment(IMAGE, points=[(3, 2)]).objects[0].best, mask_id="")
            calls = len(servicer.requests)
            with pytest.raises(ValueError, match=phrase):
                client.segment(IMAGE, points=[(3, 2)], refine=refine)
            assert len(servicer.requests) == calls


async def test_async_client_refines_alike():
    with serve_fake() as (servicer, address):
        async with AsyncClient(address, timeout=10) as client:
            first = await client.segment(IMAGE, points=[(3, 2)])
            await client.segment(IMAGE, points=[(3, 2), (1, 1, True)], refine=first.objects[0].best)
    assert servicer.requests[-1].refine_mask_id == FAKE_MASK_ID
