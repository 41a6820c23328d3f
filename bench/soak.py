"""Soak: callers through the Python SDK (`Client` threads and `AsyncClient` tasks) mix new images,
repeat clicks, Detect and text Segment against one real server for a fixed time.

Checked: every answer equals the one the same request got from the same server while idle
(computed first, one request at a time); overload is shed only with RESOURCE_EXHAUSTED; the
server's RSS stays within its cache budgets plus a constant (see `RSS_SLACK_BYTES`). Reported:
requests and sheds by kind, click latency percentiles, peak RSS against that bound.
tests/integration/test_soak.py runs it short; `labelgate bench --soak SECONDS` runs it longer
(soak_bench.py).

Why answers can be compared bit for bit: with the models on a CPU the server runs every SAM 2
request, image or prompt, in a forward pass of its own (`Sam2TorchBackend.shares_forward_passes`),
and Grounding DINO shares a pass only between requests with the same caption and image size.
Each caller has a caption of its own and one request in flight, so under load no request
shares a forward pass either: it runs the same kernels on the same inputs as on the idle server.
On a GPU, SAM 2 requests do share passes and fp32 accumulation order may move a pixel; there the
bench reports the differing answers instead of expecting none.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import threading
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable

import grpc

from labelgate.bench.images import click_point, jpeg, scene
from labelgate.bench.rss import peak_rss_bytes, reset_peak_rss
from labelgate.bench.timing import percentile
from labelgate.client import AsyncClient, Client, LabelgateClientError, RetryPolicy

MiB = 1024 * 1024
NEW_IMAGE, REPEAT_CLICK, DETECT, TEXT_SEGMENT = "new image", "repeat click", "detect", "text segment"
KINDS = (NEW_IMAGE, REPEAT_CLICK, DETECT, TEXT_SEGMENT)
CLICKS = (NEW_IMAGE, REPEAT_CLICK)
# Words the demo Grounding DINO's vocabulary has too; pairs of them make one caption per caller.
CAPTION_WORDS = ("cat", "dog", "car", "person", "bird", "tree", "house", "chair", "cup", "bottle", "book", "bag",
                 "ball", "box", "sign", "hat")
# A shed request is sent again after a wait that doubles with each shed in a row, as README asks
# of callers that get RESOURCE_EXHAUSTED (the SDK itself retries only UNAVAILABLE).
SHED_BACKOFF = RetryPolicy(initial_backoff=0.05, max_backoff=1.0)
# The RSS bound is the server's peak RSS during the warm-up (VmHWM: the models, and every model
# stage's working set at once) + the cache budgets + this constant, which covers more requests in
# flight than the warm-up's four and allocator fragmentation. Measured here (2 cores, demo models,
# the peak over that baseline): 0-55 MiB in 8 s test soaks (6 callers, 320x240), 93 MiB in a
# 150 s `labelgate bench --soak --quick` (8 callers, 640x480), flat after its first minute, and
# 87 MiB with hiera-tiny at 1024 px (`labelgate bench --soak 40`). The constant is twice the largest.
RSS_SLACK_BYTES = 192 * MiB


@dataclass(frozen=True)
class SoakPlan:
    callers: int = 6  # half use one shared Client (threads), half one shared AsyncClient (tasks)
    images: int = 8  # distinct images every caller walks through, each from its own offset
    image_size: tuple[int, int] = (320, 240)  # width, height
    seconds: float = 10.0
    max_queue: int = 2  # small, so that overload is really shed
    cache_bytes: int = 4 * MiB  # the feature cache holds a few images only: the stream keeps evicting
    image_cache_bytes: int = 48 * 1024
    call_timeout_s: float = 120.0
    rss_slack_bytes: int = RSS_SLACK_BYTES

    def server_flags(self) -> list[str]:
        return ["--max-queue", str(self.max_queue), "--cache-bytes", str(self.cache_bytes),
                "--image-cache-bytes", str(self.image_cache_bytes)]

    @property
    def budget_bytes(self) -> int:
        return self.cache_bytes + self.image_cache_bytes


@dataclass(frozen=True)
class Request:
    kind: str
    caller: int
    image: int  # index into the plan's images
    points: tuple = ()  # (x, y, negative)
    text: str = ""


def caller_caption(caller: int) -> str:
    words = list(itertools.combinations(CAPTION_WORDS, 2))[caller]
    return " . ".join(words) + " ."


def image_bytes(plan: SoakPlan) -> list[bytes]:
    width, height = plan.image_size
    return [jpeg(scene(50_000 + index, width, height)) for index in range(plan.images)]


def workload(plan: SoakPlan) -> list[list[Request]]:
    """Each caller's requests, in order: per image, a click (new image), a two-point repeat click,
    then Detect or a text Segment (alternating) with the caller's caption."""
    width, height = plan.image_size
    stride = max(1, plan.images // plan.callers)
    per_caller = []
    for caller in range(plan.callers):
        caption, requests = caller_caption(caller), []
        for step in range(plan.images):
            image = (caller * stride + step) % plan.images
            first, second, third = (click_point(1000 * caller + 3 * step + n, width, height) for n in range(3))
            requests += [
                Request(NEW_IMAGE, caller, image, ((*first, False),)),
                Request(REPEAT_CLICK, caller, image, ((*second, False), (*third, True))),
                Request(DETECT if (caller + step) % 2 else TEXT_SEGMENT, caller, image, text=caption),
            ]
        per_caller.append(requests)
    return per_caller


def send(client, request: Request, data: bytes, timeout: float):
    """The SDK call for `request` (a coroutine for an AsyncClient)."""
    if request.kind == DETECT:
        return client.detect(data, request.text, timeout=timeout)
    if request.kind == TEXT_SEGMENT:
        return client.segment(data, text=request.text, timeout=timeout)
    return client.segment(data, points=request.points, timeout=timeout)


def answer(result) -> tuple:
    """Everything a caller gets back, as plain values compared exactly (floats bit for bit, masks
    as their RLE)."""
    head = (result.image_id, result.width, result.height)
    if hasattr(result, "detections"):
        return head + tuple((d.label, d.score, d.box) for d in result.detections)
    return head + tuple(
        (o.label, o.detection_score, o.prompt_box, tuple((m.score, m.bbox, m.area, m.rle["counts"]) for m in o.masks))
        for o in result.objects
    )


def idle_answers(client: Client, plan: SoakPlan, requests: list[list[Request]], data: list[bytes]) -> dict[Request, tuple]:
    """Every request's answer, one request at a time, image after image (so each image is encoded once)."""
    ordered = sorted({r for caller in requests for r in caller}, key=lambda r: (r.image, r.caller, KINDS.index(r.kind)))
    return {r: answer(send(client, r, data[r.image], plan.call_timeout_s)) for r in ordered}


@dataclass
class Tally:
    """What the callers saw: answers by kind, sheds, other failures, differing answers, and the
    start and end of every call (monotonic seconds). Shared by threads and the event loop."""

    idle: dict[Request, tuple]
    answered: Counter = field(default_factory=Counter)
    shed: Counter = field(default_factory=Counter)
    latencies: dict = field(default_factory=lambda: defaultdict(list))
    failures: list[str] = field(default_factory=list)
    mismatches: list[Request] = field(default_factory=list)
    calls: list[tuple[float, float]] = field(default_factory=list)
    in_flight: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def begin(self) -> float:
        with self._lock:
            self.in_flight += 1
        return time.monotonic()

    def end(self, request: Request, started: float, result=None, error: LabelgateClientError | None = None) -> bool:
        """Records one call; True when it was shed (the caller then sends it again)."""
        ended = time.monotonic()
        with self._lock:
            self.in_flight -= 1
            self.calls.append((started, ended))
            if error is None:
                self.answered[request.kind] += 1
                self.latencies[request.kind].append(ended - started)
                if answer(result) != self.idle[request]:
                    self.mismatches.append(request)
                return False
            if error.code == grpc.StatusCode.RESOURCE_EXHAUSTED:
                self.shed[request.kind] += 1
                return True
            self.failures.append(f"{request.kind} (caller {request.caller}, image {request.image}): {error}")
            return False


def _sync_caller(client: Client, requests: list[Request], data: list[bytes], tally: Tally, keep_going: Callable[[], bool],
                 timeout: float, rng: random.Random) -> None:
    index, sheds_in_a_row = 0, 0
    while keep_going():
        request = requests[index % len(requests)]
        started = tally.begin()
        try:
            result = send(client, request, data[request.image], timeout)
        except LabelgateClientError as error:
            if tally.end(request, started, error=error):
                sheds_in_a_row += 1
                time.sleep(SHED_BACKOFF.backoff(sheds_in_a_row, rng))
                continue
        else:
            tally.end(request, started, result)
        index, sheds_in_a_row = index + 1, 0


async def _async_caller(client: AsyncClient, requests: list[Request], data: list[bytes], tally: Tally,
                        keep_going: Callable[[], bool], timeout: float, rng: random.Random) -> None:
    index, sheds_in_a_row = 0, 0
    while keep_going():
        request = requests[index % len(requests)]
        started = tally.begin()
        try:
            result = await send(client, request, data[request.image], timeout)
        except LabelgateClientError as error:
            if tally.end(request, started, error=error):
                sheds_in_a_row += 1
                await asyncio.sleep(SHED_BACKOFF.backoff(sheds_in_a_row, rng))
                continue
        else:
            tally.end(request, started, result)
        index, sheds_in_a_row = index + 1, 0


def run_callers(address: str, plan: SoakPlan, requests: list[list[Request]], data: list[bytes], tally: Tally,
                keep_going: Callable[[], bool], **client_options) -> None:
    """Even callers are threads sharing one `Client`, odd ones tasks sharing one `AsyncClient`; all
    start together and call until `keep_going()` turns false. `client_options` go to both clients."""
    sync_callers = range(0, plan.callers, 2)

    async def main() -> None:
        async with AsyncClient(address, **client_options) as async_client:
            loop = asyncio.get_running_loop()
            with Client(address, **client_options) as client, ThreadPoolExecutor(len(sync_callers)) as threads:
                await asyncio.gather(
                    *(loop.run_in_executor(threads, _sync_caller, client, requests[k], data, tally, keep_going,
                                           plan.call_timeout_s, random.Random(k)) for k in sync_callers),
                    *(_async_caller(async_client, requests[k], data, tally, keep_going, plan.call_timeout_s, random.Random(k))
                      for k in range(1, plan.callers, 2)),
                )

    asyncio.run(main())


def warm_up(client: Client, plan: SoakPlan) -> None:
    """Requests of every kind at once, on images outside the soak's own, so that what the server
    allocates once (lazy model state, allocator pools sized by the model stages running side by
    side) is in the RSS baseline."""
    width, height = plan.image_size
    for seed in (90_000, 90_001, 90_002):
        data = jpeg(scene(seed, width, height))
        requests = [Request(kind, 0, 0, ((width / 2, height / 2, False),), caller_caption(0)) for kind in KINDS]
        with ThreadPoolExecutor(len(requests)) as threads:
            list(threads.map(lambda request: _send_until_answered(client, request, data, plan.call_timeout_s), requests))


def _send_until_answered(client: Client, request: Request, data: bytes, timeout: float):
    for sheds_in_a_row in itertools.count(1):
        try:
            return send(client, request, data, timeout)
        except LabelgateClientError as error:
            if error.code != grpc.StatusCode.RESOURCE_EXHAUSTED:
                raise
            time.sleep(SHED_BACKOFF.backoff(sheds_in_a_row))


@dataclass
class SoakResult:
    plan: SoakPlan
    seconds: float  # the load phase, as run
    tally: Tally
    rss_baseline: int  # the peak during the warm-up
    rss_peak: int  # the peak from the warm-up to the end of the load
    server_sheds: int  # RESOURCE_EXHAUSTED answers during the load, as the server counted them

    @property
    def rss_bound(self) -> int:
        return self.rss_baseline + self.plan.budget_bytes + self.plan.rss_slack_bytes

    def click_latency(self, percentile_q: float) -> float | None:
        samples = [s for kind in CLICKS for s in self.tally.latencies[kind]]
        return percentile(samples, percentile_q) if samples else None

    def problems(self, exact_answers: bool = True) -> list[str]:
        """What broke the soak's promises; empty when it held. `exact_answers`: answers must equal
        the idle ones (models on a CPU; see the module's docstring)."""
        problems = [f"failed: {failure}" for failure in self.tally.failures]
        if exact_answers:
            problems += [f"answer differs from the idle one: {request}" for request in self.tally.mismatches]
        if self.rss_peak > self.rss_bound:
            problems.append(f"RSS peaked at {self.rss_peak / MiB:.0f} MiB, over the bound of {self.rss_bound / MiB:.0f} MiB")
        return problems


def run_soak(server, plan: SoakPlan) -> SoakResult:
    """The whole scenario against a running `launcher.ServerProcess` started with `plan.server_flags()`:
    warm-up, RSS baseline, idle answers, then `plan.seconds` of load by `plan.callers` callers."""
    data, requests = image_bytes(plan), workload(plan)
    pid = server.process.pid
    with Client(server.address, timeout=plan.call_timeout_s) as client:
        reset_peak_rss(pid)  # model loading's own peak is not the baseline
        warm_up(client, plan)
        baseline = peak_rss_bytes(pid)
        tally = Tally(idle_answers(client, plan, requests, data))
    sheds_before = _server_sheds(server)
    started = time.monotonic()
    stop_at = started + plan.seconds
    run_callers(server.address, plan, requests, data, tally, lambda: time.monotonic() < stop_at)
    seconds = time.monotonic() - started
    peak = peak_rss_bytes(pid)
    return SoakResult(plan, seconds, tally, baseline, peak, _server_sheds(server) - sheds_before)


def _server_sheds(server) -> int:
    return int(sum(server.metric("labelgate_requests_total", method=method, code="RESOURCE_EXHAUSTED")
                   for method in ("Segment", "Detect")))
