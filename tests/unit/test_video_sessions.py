"""Video session limits on a fake clock: count, idle expiry, owner, byte budget."""

from __future__ import annotations

import pytest

from labelgate.core.errors import NotFound, NotReady, Overloaded
from labelgate.server.metrics import Metrics
from labelgate.server.video_service import sweep_period
from labelgate.server.video_sessions import SessionLimits, VideoSessions


class FakeTracking:
    def __init__(self, nbytes=0):
        self.nbytes, self.closed = nbytes, False

    def close(self):
        self.closed = True


class FakeFrames:
    num_frames = 3


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def sessions(clock=None, metrics=None, **limits):
    values = {"max_sessions": 2, "ttl_s": 10.0, "max_bytes": 100, "window": 16, **limits}
    return VideoSessions(SessionLimits(**values), clock or Clock(), metrics)


def test_past_the_most_sessions_is_overloaded_until_one_closes():
    table = sessions()
    first = table.open("", "m", FakeFrames(), FakeTracking())
    table.open("", "m", FakeFrames(), FakeTracking())
    refused = FakeTracking()
    with pytest.raises(Overloaded, match="--video-max-sessions"):
        table.open("", "m", FakeFrames(), refused)
    assert refused.closed
    table.close(first)
    assert first.tracking.closed
    table.open("", "m", FakeFrames(), FakeTracking())


def test_an_idle_session_expires_after_the_ttl_and_a_used_one_does_not():
    clock = Clock()
    table = sessions(clock)
    idle = table.open("", "m", FakeFrames(), FakeTracking())
    used = table.open("", "m", FakeFrames(), FakeTracking())
    clock.now = 8.0
    table.get(used.id, "")
    clock.now = 10.5
    with pytest.raises(NotFound, match="--video-session-ttl-s"):
        table.get(idle.id, "")
    assert idle.tracking.closed
    assert table.get(used.id, "") is used


def test_a_session_is_its_owners_only():
    table = sessions()
    session = table.open("alice", "m", FakeFrames(), FakeTracking())
    with pytest.raises(NotFound):
        table.get(session.id, "bob")
    assert table.get(session.id, "alice") is session
    assert len(session.id) >= 32  # 24 random bytes


def test_a_session_over_its_byte_budget_is_closed():
    table = sessions(max_bytes=100)
    with pytest.raises(Overloaded, match="--video-session-bytes"):
        table.open("", "m", FakeFrames(), FakeTracking(nbytes=101))
    assert table.sessions == {}


def test_frames_that_would_take_a_session_over_its_budget_are_refused_and_the_session_stays_open():
    table = sessions(max_bytes=100)
    session = table.open("", "m", FakeFrames(), FakeTracking(nbytes=60))
    table.check_room(session, 40)
    with pytest.raises(Overloaded, match="release_old_frames.*--video-session-bytes"):
        table.check_room(session, 41)
    assert table.get(session.id, "") is session and not session.tracking.closed


def test_a_closed_session_says_why_and_the_gauges_follow_the_open_sessions():
    clock, metrics = Clock(), Metrics()
    table = sessions(clock, metrics.video, max_sessions=4)

    def gauges():
        return [metrics.registry.get_sample_value(name) for name in ("labelgate_video_sessions", "labelgate_video_session_bytes")]

    closed, expired, over, shut = (table.open("", "m", FakeFrames(), FakeTracking(nbytes)) for nbytes in (10, 20, 30, 40))
    assert gauges() == [4, 100]
    table.close(closed)
    assert isinstance(closed.ended, NotFound) and "closed (CloseVideo)" in str(closed.ended)
    clock.now = 5.0
    for session in (over, shut):
        table.get(session.id, "")
    clock.now = 10.5
    table.expire()
    assert isinstance(expired.ended, NotFound) and "expired after 10 s idle" in str(expired.ended)
    assert gauges() == [2, 70]
    over.tracking.nbytes = 101
    with pytest.raises(Overloaded) as refused:
        table.check_bytes(over)
    assert over.ended is refused.value
    table.close_all()
    assert isinstance(shut.ended, NotReady) and "shutting down" in str(shut.ended)
    assert gauges() == [0, 0] and table.sessions == {}


def test_idle_sessions_are_swept_at_a_quarter_of_the_ttl_at_most_every_30_s():
    assert sweep_period(2.0) == 0.5
    assert sweep_period(600.0) == 30.0
