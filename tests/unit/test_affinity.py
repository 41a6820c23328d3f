"""Rendezvous routing of images over replicas: stable, spread, and minimal moves on change."""

from __future__ import annotations

from collections import Counter

import grpc
import pytest

from labelgate.client import AffinityClient, AsyncAffinityClient, endpoints_from_dns, rank_endpoints
from labelgate.client.errors import LabelgateClientError
from labelgate.client.results import ModelInfo

ENDPOINTS = [f"10.0.0.{i}:50051" for i in range(1, 5)]
KEYS = [f"img_{i:032x}" for i in range(2000)]


def test_ranking_is_a_stable_permutation():
    ranked = rank_endpoints("img_1", ENDPOINTS)
    assert sorted(ranked) == sorted(ENDPOINTS)
    assert rank_endpoints("img_1", list(reversed(ENDPOINTS))) == ranked  # order of the list is irrelevant


def test_images_spread_over_all_replicas():
    load = Counter(rank_endpoints(key, ENDPOINTS)[0] for key in KEYS)
    assert set(load) == set(ENDPOINTS)
    assert all(0.18 * len(KEYS) < count < 0.32 * len(KEYS) for count in load.values())


def test_removing_a_replica_moves_only_its_own_images():
    removed = ENDPOINTS[2]
    before = {key: rank_endpoints(key, ENDPOINTS) for key in KEYS}
    after = {key: rank_endpoints(key, [e for e in ENDPOINTS if e != removed])[0] for key in KEYS}
    moved = [key for key in KEYS if after[key] != before[key][0]]
    assert moved and all(before[key][0] == removed for key in moved)
    assert all(after[key] == before[key][1] for key in moved)  # each goes to its second choice


def test_endpoints_from_dns_lists_addresses_with_the_port():
    assert endpoints_from_dns("localhost:50051") and all(e.endswith(":50051") for e in endpoints_from_dns("localhost:50051"))
    assert endpoints_from_dns("127.0.0.1:7") == ["127.0.0.1:7"]


def _model(name: str, version: str) -> ModelInfo:
    return ModelInfo(name=name, kind="sam2", version=version, device="cpu", is_default=False)


class _Replica:
    def __init__(self, models=None, down=False):
        self.models, self.down = models, down

    def list_models(self, **_):
        if self.down:
            raise LabelgateClientError(grpc.StatusCode.UNAVAILABLE, "connection refused", "ListModels")
        return self.models


def _fleet(monkeypatch, replicas: dict) -> AffinityClient:
    monkeypatch.setattr(AffinityClient, "client", lambda self, endpoint: replicas[endpoint])
    return AffinityClient(list(replicas))


def test_a_fleet_lists_the_models_every_reachable_replica_serves(monkeypatch):
    fleet = _fleet(monkeypatch, {"a:1": _Replica([_model("sam2", "v1"), _model("sam3", "v3")]),
                                 "b:1": _Replica(down=True),
                                 "c:1": _Replica([_model("sam2", "v1")])})
    assert [m.name for m in fleet.list_models()] == ["sam2"]


def test_a_fleet_with_one_model_at_two_versions_is_refused(monkeypatch):
    fleet = _fleet(monkeypatch, {"a:1": _Replica([_model("sam2", "v1")]), "b:1": _Replica([_model("sam2", "v2")])})
    with pytest.raises(ValueError, match=r"'sam2' at different versions \(v1 on a:1; v2 on b:1\)"):
        fleet.list_models()


def test_a_fleet_with_every_replica_down_says_so(monkeypatch):
    fleet = _fleet(monkeypatch, {"a:1": _Replica(down=True), "b:1": _Replica(down=True)})
    with pytest.raises(LabelgateClientError) as caught:
        fleet.list_models()
    assert caught.value.code == grpc.StatusCode.UNAVAILABLE


class _AsyncReplica(_Replica):
    async def list_models(self, **kwargs):
        return _Replica.list_models(self, **kwargs)


async def test_the_async_fleet_lists_models_as_the_sync_one(monkeypatch):
    replicas = {"a:1": _AsyncReplica([_model("sam2", "v1"), _model("sam3", "v3")]), "b:1": _AsyncReplica(down=True),
                "c:1": _AsyncReplica([_model("sam2", "v1")])}
    monkeypatch.setattr(AsyncAffinityClient, "client", lambda self, endpoint: replicas[endpoint])
    assert [m.name for m in await AsyncAffinityClient(list(replicas)).list_models()] == ["sam2"]
    down = {"a:1": _AsyncReplica(down=True)}
    monkeypatch.setattr(AsyncAffinityClient, "client", lambda self, endpoint: down[endpoint])
    with pytest.raises(LabelgateClientError):
        await AsyncAffinityClient(list(down)).list_models()
