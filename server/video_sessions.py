"""The open video sessions of one server: who owns each, how long an idle one lives, how many
there may be, and how much memory one may hold. Past a limit: `Overloaded` (RESOURCE_EXHAUSTED)
saying which setting to change, never an out-of-memory kill. A closed session remembers why, so that
a call still running on it ends with that status (`VideoSession.ended`)."""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import dataclass, field
from typing import Callable

from labelgate.core.errors import LabelgateError, NotFound, NotReady, Overloaded
from labelgate.models.video_tracking import FrameSource, TrackingSession
from labelgate.server.metrics import VideoMetrics
from labelgate.server.quoting import quoted

_REOPEN = "open the video again (OpenVideo) and replay its prompts"


@dataclass(frozen=True)
class SessionLimits:
    max_sessions: int
    ttl_s: float
    max_bytes: int
    window: int


@dataclass
class VideoSession:
    id: str
    owner: str
    model: str
    frames: FrameSource
    tracking: TrackingSession
    last_used: float
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # one call at a time: the tracking state is not shared
    changed_frames: set[int] = field(default_factory=set)  # prompted since the last Propagate
    held_bytes: int = 0  # tracking.nbytes when last measured (between model runs: a running one changes it)
    ended: LabelgateError | None = None  # why it was closed: what a call still running on it raises

    @property
    def closed(self) -> bool:
        return self.ended is not None

    def free(self) -> None:
        self.tracking.close()
        close_frames = getattr(self.frames, "close", None)
        if close_frames is not None:
            close_frames()


class VideoSessions:
    def __init__(self, limits: SessionLimits, clock: Callable[[], float] = time.monotonic, metrics: VideoMetrics | None = None):
        self.limits, self.clock, self.metrics = limits, clock, metrics
        self.sessions: dict[str, VideoSession] = {}

    def open(self, owner: str, model: str, frames: FrameSource, tracking: TrackingSession) -> VideoSession:
        self.expire()
        session = VideoSession(secrets.token_urlsafe(24), owner, model, frames, tracking, self.clock())
        if len(self.sessions) >= self.limits.max_sessions:
            session.free()
            raise Overloaded(
                f"{len(self.sessions)} video sessions are open, the most this server keeps (--video-max-sessions): "
                "close finished ones with CloseVideo, wait for idle ones to expire "
                f"(--video-session-ttl-s {self.limits.ttl_s:g}), or raise the limit"
            )
        self.sessions[session.id] = session
        self.check_bytes(session)
        return session

    def get(self, session_id: str, owner: str) -> VideoSession:
        """The caller's session; another caller's is as unknown as one that never was."""
        self.expire()
        session = self.sessions.get(session_id)
        if session is None or not secrets.compare_digest(session.owner, owner):
            raise NotFound(
                f"unknown video session {quoted(session_id)}: it was closed, expired after "
                f"{self.limits.ttl_s:g} s idle (--video-session-ttl-s), belongs to another caller, or lived on a server "
                "that restarted; open the video again (OpenVideo) and replay its prompts"
            )
        session.last_used = self.clock()
        return session

    def close(self, session: VideoSession, why: LabelgateError | None = None) -> None:
        """Forgets the session; `why` (default: closed by CloseVideo) is what a call running on it ends with."""
        if self.sessions.pop(session.id, None) is not None:
            session.ended = why or NotFound(f"video session {session.id} was closed (CloseVideo) during this call; {_REOPEN}")
            if not session.lock.locked():
                session.free()  # else the call holding it frees it (VideoService)
            self._measure()

    def check_bytes(self, session: VideoSession) -> None:
        """Closes the session and raises Overloaded when it holds more than the per-session budget.
        Call it between model runs only (it walks the tracking state)."""
        held = session.held_bytes = session.tracking.nbytes
        if held > self.limits.max_bytes:
            over = Overloaded(
                f"video session {session.id} needs {held / 2**20:.1f} MiB, over --video-session-bytes "
                f"({self.limits.max_bytes / 2**20:.1f} MiB); it is closed. Send a shorter clip or smaller frames, track fewer "
                "objects or with a smaller --video-window, or raise --video-session-bytes"
            )
            self.close(session, over)
            raise over
        self._measure()

    def check_room(self, session: VideoSession, more: int) -> None:
        """Raises Overloaded (the session stays open) when `more` bytes would take it over its budget."""
        held = session.tracking.nbytes
        if held + more > self.limits.max_bytes:
            raise Overloaded(
                f"appending {more / 2**20:.1f} MiB of frames would take video session {session.id} to "
                f"{(held + more) / 2**20:.1f} MiB, over --video-session-bytes ({self.limits.max_bytes / 2**20:.1f} MiB). "
                "Append with release_old_frames (keeps the prompted and the last --video-window frames), send smaller frames, "
                "or raise --video-session-bytes"
            )

    def expire(self) -> None:
        """Closes the sessions idle for longer than the TTL (not those in a call)."""
        now = self.clock()
        for session in [s for s in self.sessions.values() if now - s.last_used > self.limits.ttl_s and not s.lock.locked()]:
            self.close(session, NotFound(f"video session {session.id} expired after {self.limits.ttl_s:g} s idle "
                                         f"(--video-session-ttl-s); {_REOPEN}"))

    def close_all(self) -> None:
        """Closes every session as the server shuts down: a call running on one ends UNAVAILABLE."""
        for session in list(self.sessions.values()):
            self.close(session, NotReady(f"the server is shutting down and video session {session.id} ends with it; "
                                         f"{_REOPEN} (on another replica, or once this one is back)"))

    def _measure(self) -> None:
        if self.metrics is not None:
            self.metrics.size(len(self.sessions), sum(session.held_bytes for session in self.sessions.values()))
