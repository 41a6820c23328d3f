"""`AffinityClient` for asyncio: the same routing over several replicas (see affinity), each call
awaited on an `AsyncClient`. Create it inside the event loop that uses it.

    async with AsyncAffinityClient(["10.0.0.5:50051", "10.0.0.6:50051"]) as client:
        embedded = await client.embed("photo.jpg")
        await client.segment(ImageId(embedded.image_id), points=[(5, 5)])  # the same replica
        async for frame in client.track("clip.mp4", prompts):                # the clip's replica
            ...
"""

from __future__ import annotations

import asyncio

from labelgate.client.affinity import FleetRouting, common_models, moves_on, rank_endpoints, skips_listing
from labelgate.client.async_client import AsyncClient
from labelgate.client.errors import LabelgateClientError
from labelgate.client.images import ImageId, ImageLike
from labelgate.client.tracking import open_video_request
from labelgate.client.video_session import AsyncVideoSession, track_on_async


class AsyncAffinityClient(FleetRouting):
    """`AsyncClient`'s methods over several replicas, each image and each clip pinned to one of them
    (the next one when it is down). `client_options` go to every per-endpoint `AsyncClient`."""

    async def embed(self, image: ImageLike | ImageId, *args, **kwargs):
        return await self._call("embed", image, args, kwargs)

    async def segment(self, image: ImageLike | ImageId, *args, **kwargs):
        return await self._call("segment", image, args, kwargs)

    async def detect(self, image: ImageLike | ImageId, *args, **kwargs):
        return await self._call("detect", image, args, kwargs)

    def track(self, video, prompts=(), *, model: str = "", **options):
        """`AsyncClient.track` on the video's replica: ``async for frame in client.track(clip, prompts)``."""
        request = open_video_request(video, model)
        return track_on_async(self._video_clients(request), request, prompts, **options)

    async def open_video(self, video, *, model: str = "", stream: bool = False,
                         timeout: float | None = None) -> AsyncVideoSession:
        """`AsyncClient.open_video` on the video's replica."""
        request = open_video_request(video, model, stream)
        return await AsyncVideoSession(self._video_clients(request), request, timeout=timeout).open()

    async def list_models(self, **kwargs):
        """As `AffinityClient.list_models`: what every reachable replica serves, one version each."""
        listings = {}
        for endpoint in self.endpoints:
            try:
                listings[endpoint] = await self.client(endpoint).list_models(**kwargs)
            except LabelgateClientError as error:
                if not skips_listing(error, endpoint, self.endpoints, len(listings)):
                    raise
        return common_models(listings)

    async def close(self) -> None:
        for client in self._take_clients():
            await client.close()

    async def __aenter__(self) -> "AsyncAffinityClient":
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.close()

    def _new_client(self, endpoint: str, **options) -> AsyncClient:
        return AsyncClient(endpoint, **options)

    async def _call(self, method: str, image: ImageLike | ImageId, args: tuple, kwargs: dict):
        payload, key = await asyncio.to_thread(self._route, image)  # reading a file, encoding pixels
        ranked = rank_endpoints(key, self.endpoints)
        for index, endpoint in enumerate(ranked):
            try:
                result = await getattr(self.client(endpoint), method)(payload, *args, **kwargs)
            except LabelgateClientError as error:
                if moves_on(error, index, len(ranked)):
                    continue
                raise
            self._remember(result.image_id, key)
            return result
