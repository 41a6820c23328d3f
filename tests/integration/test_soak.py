"""The soak (labelgate.bench.soak), short: SDK callers (Client threads, AsyncClient tasks) mix new
images, repeat clicks, Detect and text Segment against one demo server started with a small
--max-queue and small cache budgets. `labelgate bench --soak SECONDS` runs the same code longer."""

from __future__ import annotations

import json

import pytest

from labelgate.bench.soak import KINDS, SoakPlan, run_soak
from labelgate.bench.soak_bench import JSON_FILE, MARKDOWN_FILE, write_report
from server_process import start_server

PLAN = SoakPlan(callers=6, images=6, seconds=8.0)


@pytest.fixture(scope="module")
def soak(demo_weights, tmp_path_factory):
    server = start_server(tmp_path_factory.mktemp("soak-server"), demo_weights, *PLAN.server_flags())
    try:
        result = run_soak(server, PLAN)
    finally:
        assert server.stop() == 0, server.log()
    return result


def test_every_kind_was_answered_and_every_answer_equals_the_idle_one(soak):
    assert all(soak.tally.answered[kind] > 0 for kind in KINDS), soak.tally.answered
    assert soak.tally.mismatches == []


def test_overload_is_shed_only_with_resource_exhausted(soak):
    assert soak.tally.failures == []
    shed = sum(soak.tally.shed.values())
    assert shed >= 1, "nothing was shed: the load did not overflow --max-queue"
    assert soak.server_sheds == shed  # every RESOURCE_EXHAUSTED came from the server's full queues


def test_rss_stays_within_the_cache_budgets_plus_the_constant(soak):
    assert soak.rss_baseline > 0
    assert soak.rss_peak <= soak.rss_bound, soak.problems()


def test_report_names_the_figures(soak, tmp_path):
    text = write_report(tmp_path, soak, "demo models", "cpu")
    assert (tmp_path / MARKDOWN_FILE).read_text().strip() == text
    data = json.loads((tmp_path / JSON_FILE).read_text())
    assert {kind: data["kinds"][kind]["answered"] for kind in KINDS} == dict(soak.tally.answered)
    assert data["shed_by_callers"] == data["shed_by_server"] >= 1
    assert data["click_p50_ms"] <= data["click_p99_ms"]
    assert data["problems"] == [] and data["differing_answers"] == 0
    assert data["rss_mib"]["peak"] <= data["rss_mib"]["bound"]
    for kind in KINDS:
        assert f"| {kind} | {soak.tally.answered[kind]} | {soak.tally.shed[kind]} |" in text
    assert "p99" in text and "RSS" in text
