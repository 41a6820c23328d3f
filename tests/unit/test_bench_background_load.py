"""The background caller behind the "click under encoder load" row: it embeds while the clicks
are timed, stops when they are done, and a failure of its own fails the row."""

from __future__ import annotations

import threading
import time

import pytest

from labelgate.bench import scenarios


class _Stub:
    def __init__(self, fail: bool = False):
        self.calls, self.fail, self.lock = 0, fail, threading.Lock()

    def Embed(self, request):
        time.sleep(0.01)
        if self.fail:
            raise ConnectionError("server gone")
        with self.lock:
            self.calls += 1


def test_embeds_run_while_inside_and_stop_on_leaving(monkeypatch):
    monkeypatch.setattr(scenarios, "ENCODING_STARTED_S", 0.05)
    stub = _Stub()
    with scenarios._embedding_in_background(stub, lambda: b"image"):
        during_entry = stub.calls
        time.sleep(0.1)
        assert stub.calls > during_entry > 0
    after = stub.calls
    time.sleep(0.05)
    assert stub.calls == after


def test_a_failing_background_caller_fails_the_measurement(monkeypatch):
    monkeypatch.setattr(scenarios, "ENCODING_STARTED_S", 0.05)
    with pytest.raises(RuntimeError, match="not measured under load") as raised:
        with scenarios._embedding_in_background(_Stub(fail=True), lambda: b"image"):
            pass
    assert isinstance(raised.value.__cause__, ConnectionError)
