"""The URL -> image_id cache: download once, then send only the id; download again on NOT_FOUND."""

from dataclasses import dataclass

import grpc
import pytest
from labelgate.client import ImageId, LabelgateClientError

from labelgate.label_studio.task_images import TaskImages


class CountingFetcher:
    def __init__(self):
        self.calls = []

    def fetch(self, reference, task_id=None):
        self.calls.append(reference)
        return f"bytes of {reference}".encode()


@dataclass
class Answer:
    image_id: str


def test_the_second_call_sends_only_the_id():
    fetcher, sent = CountingFetcher(), []
    images = TaskImages(fetcher)
    rpc = lambda image: sent.append(image) or Answer("img_1")  # noqa: E731
    images.call("/data/upload/1/a.png", 1, rpc)
    images.call("/data/upload/1/a.png", 1, rpc)
    assert fetcher.calls == ["/data/upload/1/a.png"]
    assert sent == [b"bytes of /data/upload/1/a.png", ImageId("img_1")]
    assert isinstance(sent[1], ImageId)


def test_an_id_the_server_forgot_is_replaced_by_the_bytes():
    fetcher = CountingFetcher()
    images = TaskImages(fetcher)
    images.call("a", 1, lambda image: Answer("img_old"))

    def forgetful(image):
        if isinstance(image, ImageId):
            raise LabelgateClientError(grpc.StatusCode.NOT_FOUND, "unknown image_id")
        return Answer("img_new")

    assert images.call("a", 1, forgetful).image_id == "img_new"
    assert fetcher.calls == ["a", "a"]
    assert images.call("a", 1, lambda image: Answer(str(image))).image_id == "img_new"


def test_other_errors_are_not_retried():
    images = TaskImages(CountingFetcher())
    images.call("a", 1, lambda image: Answer("img_1"))

    def unavailable(image):
        raise LabelgateClientError(grpc.StatusCode.UNAVAILABLE, "down")

    with pytest.raises(LabelgateClientError):
        images.call("a", 1, unavailable)


def test_the_cache_is_bounded():
    fetcher = CountingFetcher()
    images = TaskImages(fetcher, capacity=2)
    for reference in ("a", "b", "c", "a"):
        images.call(reference, 1, lambda image: Answer("img_" + reference))
    assert fetcher.calls == ["a", "b", "c", "a"]
