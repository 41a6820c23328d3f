"""The shared-cache flags: off by default, read from LABELGATE_REDIS_*, refused when unusable."""

from __future__ import annotations

import argparse

import pytest

from labelgate.server.metrics import Metrics
from labelgate.server.settings import Settings, add_serve_arguments, normalize_args
from labelgate.server.feature_cache import build_feature_cache


class _Backend:
    class info:  # noqa: N801 - shaped like ModelInfo
        name = "sam2"
        device = "cpu"


def _parse(*argv: str) -> Settings:
    parser = argparse.ArgumentParser()
    add_serve_arguments(parser)
    return Settings.from_args(normalize_args(parser.parse_args(list(argv))))


async def test_off_by_default_so_one_process_needs_no_redis(monkeypatch):
    monkeypatch.delenv("LABELGATE_REDIS_URL", raising=False)
    settings = _parse("--demo-weights", "w")
    cache = build_feature_cache(settings, Metrics(), _Backend(), 1 << 20)
    assert settings.redis_url == "" and cache.shared is None


async def test_flags_and_variables_configure_the_shared_tier(monkeypatch):
    monkeypatch.setenv("LABELGATE_REDIS_URL", "redis://cache:6379/2")
    settings = _parse("--demo-weights", "w", "--redis-ttl-seconds", "60", "--redis-key-prefix", "team-a:").validate()
    cache = build_feature_cache(settings, Metrics(), _Backend(), 1 << 20)
    try:
        assert cache.shared.url == "redis://cache:6379/2" and cache.shared.ttl_seconds == 60
        assert cache.redis_key(("img_1", "sam2", "v9")).startswith("team-a:features:")
    finally:
        await cache.close()


@pytest.mark.parametrize("flags, complaint", [
    (("--redis-url", "http://cache:6379"), "--redis-url"),
    (("--redis-url", "redis://cache", "--redis-ttl-seconds", "0"), "--redis-ttl-seconds"),
    (("--redis-url", "redis://cache", "--redis-timeout-ms", "nan"), "--redis-timeout-ms"),
    (("--redis-url", "redis://cache", "--redis-lock-seconds", "-1"), "--redis-lock-seconds"),
])
def test_unusable_values_stop_the_server_at_start(flags, complaint):
    with pytest.raises(ValueError, match=complaint):
        _parse("--demo-weights", "w", *flags).validate()
