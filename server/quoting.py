"""Caller values quoted in messages, shortened: an error message travels back in a gRPC trailer and
into a log line, so a value the caller sent must not make it as long as the value."""

from __future__ import annotations

MAX_QUOTED_CHARS = 80


def quoted(value: str | bytes, limit: int = MAX_QUOTED_CHARS) -> str:
    """repr(value), cut after `limit` characters with the value's full length noted."""
    text = repr(value)
    if len(text) <= limit:
        return text
    unit = "bytes" if isinstance(value, (bytes, bytearray)) else "characters"
    return f"{text[:limit]}... ({len(value)} {unit})"
