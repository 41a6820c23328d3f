"""Faults: the server is SIGKILLed in the middle of requests and a new one starts on the same port
while SDK callers (Client threads, AsyncClient tasks; the soak's callers and requests) keep calling.

Every call returns the answer the idle server gave: the SDK retries UNAVAILABLE while the server is
down or loading, and sends the bytes again for image ids the new server has never seen
(NOT_FOUND). No call outlives its deadline."""

from __future__ import annotations

import threading
import time

import pytest

from labelgate.bench.soak import SoakPlan, Tally, idle_answers, image_bytes, run_callers, workload
from labelgate.client import Client, RetryPolicy
from server_process import ServerProcess, restart_on_same_port, start_server

CALL_TIMEOUT_S = 60.0
# Enough attempts to outlast a restart: the deadline, not the attempt count, ends a call.
RETRY = RetryPolicy(max_attempts=1_000, initial_backoff=0.05, max_backoff=0.5)
PLAN = SoakPlan(callers=4, images=4, call_timeout_s=CALL_TIMEOUT_S)
# After a deadline passes, the SDK only raises; this covers thread scheduling on a busy machine.
DEADLINE_GRACE_S = 5.0
WAIT_S = 120.0  # the longest the test waits for the callers to make progress before failing


@pytest.fixture
def servers():
    """Servers a test starts; any still running at the end is killed."""
    started: list[ServerProcess] = []
    yield started
    for server in started:
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait()


class Callers(threading.Thread):
    """The soak's callers in a thread of their own, until `stop()`; `error` is what ended them early."""

    def __init__(self, address: str, requests, data, tally: Tally):
        super().__init__(daemon=True)
        self._enough = threading.Event()
        self._callers_args = (address, PLAN, requests, data, tally, lambda: not self._enough.is_set())
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            run_callers(*self._callers_args, retry=RETRY)
        except BaseException as error:  # reported by the test, not lost in this thread
            self.error = error

    def stop(self) -> None:
        self._enough.set()
        self.join(CALL_TIMEOUT_S + DEADLINE_GRACE_S)


def _wait_for(condition, what: str, callers: Callers) -> None:
    give_up = time.monotonic() + WAIT_S
    while not condition():
        assert callers.is_alive(), f"the callers stopped early: {callers.error!r}"
        assert time.monotonic() < give_up, f"gave up waiting for {what}"
        time.sleep(0.005)


def _answered(tally: Tally) -> int:
    return sum(tally.answered.values())


def test_callers_ride_out_a_sigkill_and_a_restart_on_the_same_port(demo_weights, tmp_path, servers):
    data, requests = image_bytes(PLAN), workload(PLAN)
    servers.append(start_server(tmp_path / "first", demo_weights))
    with Client(servers[0].address) as client:
        tally = Tally(idle_answers(client, PLAN, requests, data))
    callers = Callers(servers[0].address, requests, data, tally)
    callers.start()
    try:
        # Every caller has had answers, so the clients remember image ids the next server won't know.
        _wait_for(lambda: _answered(tally) >= 3 * PLAN.callers, "answers before the kill", callers)
        _wait_for(lambda: tally.in_flight > 0, "a call in flight", callers)
        killed_at = time.monotonic()
        servers[0].process.kill()
        servers[0].process.wait()
        answered_at_kill = _answered(tally)
        servers.append(restart_on_same_port(servers[0], tmp_path / "second", demo_weights))
        _wait_for(lambda: _answered(tally) >= answered_at_kill + 3 * PLAN.callers, "answers after the restart", callers)
    finally:
        callers.stop()
    assert not callers.is_alive(), "a caller is stuck past its call's deadline"
    assert callers.error is None
    assert tally.failures == [] and not tally.shed
    assert tally.mismatches == []
    assert any(started < killed_at < ended for started, ended in tally.calls), "no call was in flight at the kill"
    assert max(ended - started for started, ended in tally.calls) <= CALL_TIMEOUT_S + DEADLINE_GRACE_S
    restarted = servers[1]
    forgotten = sum(restarted.metric("labelgate_requests_total", method=method, code="NOT_FOUND")
                    for method in ("Segment", "Detect"))
    assert forgotten >= 1  # the new server refused a remembered id, and the call still got its answer
    assert restarted.stop() == 0, restarted.log()
