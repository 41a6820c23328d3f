"""Sends fuzz cases to a running server and checks every answer against its case's verdict.

`fuzz()` is what tests/integration/test_fuzz.py runs (about a thousand cases) and what
`labelgate bench --fuzz N` runs for as many as asked, against a demo server of its own.

The rule for every case: the code is one the case allows (OK, or the documented status for its
mistake; never INTERNAL or UNKNOWN for a caller's error), the details are under 1 KB, and an OK
answer parses and reports the image's size and a well-formed image id.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, Phase, Verbosity, given, seed, settings

from labelgate.bench.fuzz import RESPONSES, SERVICE, Case, Code, ServerFacts, cases
from labelgate.bench.fuzz_images import TINY_SIZES, plain_image
from labelgate.server.settings import Settings
from labelgate.server.validation import Limits
from labelgate.v1 import labelgate_pb2 as pb
from labelgate.v1 import labelgate_pb2_grpc

MAX_DETAILS_BYTES = 1024
# Cases per hypothesis run: each run remembers every case it drew, so long runs go in batches.
BATCH = 2_000
_IMAGE_ID = re.compile(r"img_[0-9a-f]{32}")
# The fuzzed server's limits: small, so that over-limit images and messages stay cheap to send.
FUZZ_MAX_IMAGE_PIXELS = 200_000
FUZZ_MAX_MESSAGE_BYTES = 1 << 20


def fuzz_server_flags() -> list[str]:
    return ["--max-image-pixels", str(FUZZ_MAX_IMAGE_PIXELS), "--max-message-bytes", str(FUZZ_MAX_MESSAGE_BYTES)]


@dataclass(frozen=True)
class Violation:
    case: Case
    code: Code
    details: str
    problems: tuple[str, ...]

    def describe(self) -> str:
        allowed = ", ".join(sorted(c.name for c in self.case.allowed))
        return (f"{self.case.path}: {'; '.join(self.problems)} (allowed {allowed}) for [{self.case.label}]; "
                f"details {self.details[:300]!r}")


@dataclass
class Report:
    counts: Counter = field(default_factory=Counter)  # (method, code name) -> cases
    violations: list[Violation] = field(default_factory=list)
    slowest: list[tuple[float, str]] = field(default_factory=list)
    seconds: float = 0.0
    stopped: str = ""  # why the run ended early, if it did

    @property
    def cases(self) -> int:
        return sum(self.counts.values())

    def record(self, case: Case, code: Code, details: str, problems: list[str], seconds: float) -> None:
        self.counts[(case.method if _ours(case) else "(unknown)", code.name)] += 1
        if problems:
            self.violations.append(Violation(case, code, details, tuple(problems)))
        self.slowest = sorted(self.slowest + [(seconds, f"{case.path} [{case.label}]")], reverse=True)[:5]

    def summary(self) -> str:
        methods = sorted({method for method, _ in self.counts})
        codes = sorted({code for _, code in self.counts})
        lines = [f"{self.cases} cases in {self.seconds:.0f} s, {len(self.violations)} violations"
                 + (f"; stopped early: {self.stopped}" if self.stopped else ""), "",
                 "| method | " + " | ".join(codes) + " |", "|---|" + "---|" * len(codes)]
        lines += [f"| {m} | " + " | ".join(str(self.counts.get((m, c), "")) for c in codes) + " |" for m in methods]
        lines += ["", "slowest cases:"] + [f"  {s:.2f} s {label[:200]}" for s, label in self.slowest]
        groups: dict[tuple, list[Violation]] = {}
        for violation in self.violations:
            key = (violation.case.method, violation.code.name, violation.problems[0][:60])
            groups.setdefault(key, []).append(violation)
        if groups:
            lines += ["", "violations (count, method, code, first problem; first example below each):"]
            for (method, code, problem), members in sorted(groups.items(), key=lambda item: -len(item[1])):
                lines += [f"  {len(members)} x {method} {code}: {problem}", f"      e.g. {members[0].describe()[:600]}"]
        return "\n".join(lines)


class Caller:
    """One unary-unary callable per method path, sending and receiving raw bytes."""

    def __init__(self, channel: grpc.Channel):
        self.channel, self.calls = channel, {}

    def __call__(self, case: Case) -> tuple[Code, str, bytes | None]:
        call = self.calls.get(case.path)
        if call is None:
            call = self.calls[case.path] = self.channel.unary_unary(case.path)
        try:
            return Code.OK, "", call(case.payload, timeout=case.timeout)
        except grpc.RpcError as error:
            return error.code(), error.details() or "", None


def problems(case: Case, code: Code, details: str, response: bytes | None) -> list[str]:
    found = []
    if code not in case.allowed:
        found.append(f"got {code.name}")
    if len(details.encode()) >= MAX_DETAILS_BYTES:
        found.append(f"details of {len(details.encode())} bytes")
    if code == Code.OK and _ours(case):
        found += _answer_problems(case, RESPONSES[case.method].FromString(response))
    return found


def _ours(case: Case) -> bool:
    return case.service == SERVICE and case.method in RESPONSES


def _answer_problems(case: Case, answer) -> list[str]:
    if case.method == "ListModels":
        return [] if answer.models else ["ListModels answered no models"]
    found = []
    if not _IMAGE_ID.fullmatch(answer.image_id):
        found.append(f"image_id {answer.image_id[:50]!r}")
    if case.size is not None and (answer.width, answer.height) != case.size:
        found.append(f"answered {answer.width}x{answer.height} for a {case.size[0]}x{case.size[1]} image")
    return found


def discover(channel: grpc.Channel, max_image_pixels: int, max_message_bytes: int,
             max_points: int = Settings.max_points, max_boxes: int = Settings.max_boxes) -> ServerFacts:
    """The loaded models, and a few images embedded so that cases can refer to them by id."""
    stub = labelgate_pb2_grpc.LabelgateStub(channel)
    listed = stub.ListModels(pb.ListModelsRequest(), timeout=30).models
    known = []
    for size in TINY_SIZES[::2]:
        sample = plain_image("PNG", "RGB", size, 0, 1)
        answer = stub.Embed(pb.EmbedRequest(image=pb.Image(data=sample.data)), timeout=120)
        known.append((answer.image_id, answer.width, answer.height))
    return ServerFacts(
        sam2_models=tuple(m.name for m in listed if m.kind == "sam2"),
        detector_models=tuple(m.name for m in listed if m.kind == "grounding_dino"),
        known_images=tuple(known), max_image_pixels=max_image_pixels, max_message_bytes=max_message_bytes,
        max_points=max_points, max_boxes=max_boxes, max_text_chars=Limits.max_text_chars,
    )


class _ServerDown(Exception):
    pass


def fuzz(channel: grpc.Channel, facts: ServerFacts, examples: int, random_seed: int = 0,
         serving: Callable[[], bool] | None = None, progress: Callable[[Report], None] | None = None) -> Report:
    """Runs `examples` cases drawn by hypothesis from `random_seed` (the same seed, the same cases).

    `serving` is asked after an UNAVAILABLE answer; if the server is gone the run stops there."""
    report, caller, started = Report(), Caller(channel), time.perf_counter()
    for first in range(0, examples, BATCH):
        @seed(random_seed * 1_000_003 + first)
        @settings(max_examples=min(BATCH, examples - first), deadline=None, database=None, phases=[Phase.generate],
                  suppress_health_check=list(HealthCheck), verbosity=Verbosity.quiet)
        @given(cases(facts))
        def one(case: Case) -> None:
            if report.stopped:
                raise _ServerDown(report.stopped)
            sent = time.perf_counter()
            code, details, response = caller(case)
            report.record(case, code, details, problems(case, code, details, response), time.perf_counter() - sent)
            if code == Code.UNAVAILABLE and serving is not None and not serving():
                report.stopped = f"the server stopped serving after {case.path} [{case.label}]"
                raise _ServerDown(report.stopped)
            if progress is not None and report.cases % 1000 == 0:
                progress(report)

        try:
            one()
        except _ServerDown:
            break
    report.seconds = time.perf_counter() - started
    return report


def health_status(channel: grpc.Channel) -> int:
    return health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10).status


def fuzz_channel(address: str) -> grpc.Channel:
    """Answers of any size come back, so the server's own limit on what it sends is what is tested."""
    return grpc.insecure_channel(address, options=[("grpc.max_receive_message_length", -1)])


def run_fuzz(examples: int, random_seed: int, work: Path, out: Path) -> int:
    """`labelgate bench --fuzz N`: a demo server of its own, N cases, a report in out/fuzz.md and each
    violating request's bytes in work/fuzz/violations/. Exit 1 on any violation."""
    from labelgate.models.demo import ensure_demo_weights
    from labelgate.server.launcher import start_server

    weights = work / "demo"
    ensure_demo_weights(weights)
    server = start_server(work / "fuzz" / "server", weights, *fuzz_server_flags())
    try:
        with fuzz_channel(server.address) as channel:
            facts = discover(channel, FUZZ_MAX_IMAGE_PIXELS, FUZZ_MAX_MESSAGE_BYTES)
            report = fuzz(channel, facts, examples, random_seed, serving=lambda: _serving(channel),
                          progress=lambda r: print(f"  {r.cases} cases, {len(r.violations)} violations", flush=True))
            still_serving = _serving(channel)
    finally:
        exit_code = server.stop()
    tracebacks = server.log().count("Traceback")
    text = (report.summary() + f"\n\nafterwards: health {'SERVING' if still_serving else 'NOT SERVING'}, "
            f"{tracebacks} tracebacks in {server.log_path}, server exit code {exit_code}\n")
    out.mkdir(parents=True, exist_ok=True)
    (out / "fuzz.md").write_text(text)
    saved = work / "fuzz" / "violations"
    saved.mkdir(parents=True, exist_ok=True)
    for index, violation in enumerate(report.violations):
        stem = saved / f"{index:05d}-{violation.case.method[:40]}"
        stem.with_suffix(".bin").write_bytes(violation.case.payload)
        stem.with_suffix(".txt").write_text(violation.describe() + "\n")
    print(text)
    return 0 if not report.violations and still_serving and not tracebacks and exit_code == 0 else 1


def _serving(channel: grpc.Channel) -> bool:
    try:
        return health_status(channel) == health_pb2.HealthCheckResponse.SERVING
    except grpc.RpcError:
        return False
