"""A request's image sent earlier by id is decoded once, however many stages of the request need
its pixels at the same time (the detector and the image encoder of a text Segment)."""

from __future__ import annotations

import asyncio
import io
import threading

import numpy as np
import pytest
from PIL import Image

from labelgate.core.errors import NotFound
from labelgate.server import service as service_module
from labelgate.server.cache import ByteLRUCache
from labelgate.server.metrics import Metrics
from labelgate.server.queries import ImageRef
from labelgate.server.refinement import mask_logits_cache
from labelgate.server.service import LabelgateService
from labelgate.server.validation import Limits

PIXELS = np.random.default_rng(3).integers(0, 256, (24, 40, 3), dtype=np.uint8)


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


class Decodes(list):
    """The inputs of every decode the service ran; `started` is set when one begins, and each
    waits for `release` (set unless a test clears it)."""

    def __init__(self):
        super().__init__()
        self.started, self.release = threading.Event(), threading.Event()
        self.release.set()


@pytest.fixture
def decodes(monkeypatch) -> Decodes:
    seen = Decodes()
    real = service_module.decode_image

    def counted(data, max_pixels):
        seen.append(data)
        seen.started.set()
        seen.release.wait(30)
        return real(data, max_pixels)

    monkeypatch.setattr(service_module, "decode_image", counted)
    return seen


@pytest.fixture
def service() -> LabelgateService:
    images = ByteLRUCache("images", 10_000_000, lambda stored: len(stored.data))
    # No model is served: the image is found in the image cache.
    return LabelgateService(images, Limits(), Metrics(), expected=[], refinable=mask_logits_cache(1 << 20))


async def stored_image(service: LabelgateService, decodes: Decodes):
    """The request image of a call that sends only the id of an image sent before."""
    sent = await service._resolve(ImageRef(data=png(PIXELS)), None)
    decodes.clear()
    return await service._resolve(ImageRef(image_id=sent.image_id), None)


async def test_concurrent_callers_share_one_decode(service, decodes):
    image = await stored_image(service, decodes)

    results = await asyncio.gather(*(image.pixels() for _ in range(3)))

    assert len(decodes) == 1
    for pixels in results:
        np.testing.assert_array_equal(pixels, PIXELS)
    await image.pixels()  # a later caller reuses the pixels
    assert len(decodes) == 1


async def test_a_caller_that_goes_away_does_not_cancel_the_decode_of_the_others(service, decodes):
    image = await stored_image(service, decodes)
    decodes.started.clear()
    decodes.release.clear()

    leaving = asyncio.create_task(image.pixels())
    staying = asyncio.create_task(image.pixels())
    await asyncio.to_thread(decodes.started.wait, 30)
    leaving.cancel()
    decodes.release.set()

    np.testing.assert_array_equal(await staying, PIXELS)
    with pytest.raises(asyncio.CancelledError):
        await leaving
    assert len(decodes) == 1


async def test_an_image_known_only_by_its_features_has_no_pixels(service):
    image = service_module._RequestImage("img_" + "0" * 32, 4, 3, None, None, service)
    with pytest.raises(NotFound, match="unknown image_id"):
        await image.pixels()
