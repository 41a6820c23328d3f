"""`labelgate bench --soak SECONDS`: the soak (soak.py) for longer, against a server of its own,
with a short report written as soak.md and soak.json."""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, replace
from pathlib import Path

from labelgate.bench.setup import prepare_models
from labelgate.bench.soak import KINDS, MiB, SoakPlan, SoakResult, run_soak
from labelgate.bench.timing import percentile
from labelgate.server.launcher import start_server

MARKDOWN_FILE, JSON_FILE = "soak.md", "soak.json"
# Before the load, the idle answers take callers x images x 3 requests one at a time: about 25 s
# with the demo models on 2 cores, several minutes with hiera-tiny at 1024 px on 2 busy ones.
BENCH_PLAN = SoakPlan(callers=8, images=8, image_size=(640, 480), image_cache_bytes=160 * 1024)  # about 4 JPEGs
FULL_MODEL_CACHE_BYTES = 64 * MiB  # 4 images' features at 1024 px (16 MiB each), as the demo plan's 4 MiB at 256 px


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


def summary(result: SoakResult, exact_answers: bool) -> dict:
    tally = result.tally

    def ms(kind: str, q: float) -> float | None:
        samples = tally.latencies[kind]
        return _ms(percentile(samples, q)) if samples else None

    return {
        "plan": asdict(result.plan),
        "seconds": round(result.seconds, 1),
        "kinds": {kind: {"answered": tally.answered[kind], "shed": tally.shed[kind], "p50_ms": ms(kind, 50),
                         "p99_ms": ms(kind, 99)} for kind in KINDS},
        "click_p50_ms": _ms(result.click_latency(50)),
        "click_p99_ms": _ms(result.click_latency(99)),
        "differing_answers": len(tally.mismatches),
        "failures": tally.failures,
        "shed_by_callers": sum(tally.shed.values()),
        "shed_by_server": result.server_sheds,
        "rss_mib": {"baseline": result.rss_baseline / MiB, "budgets": result.plan.budget_bytes / MiB,
                    "slack": result.plan.rss_slack_bytes / MiB, "bound": result.rss_bound / MiB, "peak": result.rss_peak / MiB},
        "problems": result.problems(exact_answers),
    }


def _ms_text(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f} ms"


def markdown(result: SoakResult, models: str, device: str) -> str:
    exact = not device.startswith("cuda")
    data = summary(result, exact)
    plan, rss = result.plan, data["rss_mib"]
    answered = sum(result.tally.answered.values())
    lines = [
        f"## Soak: {plan.callers} callers for {data['seconds']:.0f} s ({models}, {device}, "
        f"{plan.image_size[0]}x{plan.image_size[1]} JPEG, --max-queue {plan.max_queue})",
        "",
        "| Kind | Answered | Shed | p50 | p99 |",
        "|---|---|---|---|---|",
    ]
    for kind, row in data["kinds"].items():
        lines.append(f"| {kind} | {row['answered']} | {row['shed']} | {_ms_text(row['p50_ms'])} | {_ms_text(row['p99_ms'])} |")
    lines += [
        "",
        f"- Clicks (new image and repeat): p50 {_ms_text(data['click_p50_ms'])}, p99 {_ms_text(data['click_p99_ms'])}.",
        f"- Answers equal to the idle server's: {answered - data['differing_answers']} of {answered}"
        + ("" if exact else " (on a GPU, SAM 2 requests share forward passes, so a pixel may move)") + ".",
        f"- Failures other than RESOURCE_EXHAUSTED: {len(data['failures'])}.",
        f"- Shed with RESOURCE_EXHAUSTED: {data['shed_by_callers']} (the server counted {data['shed_by_server']}).",
        f"- Server RSS: peak {rss['peak']:.0f} MiB, bound {rss['bound']:.0f} MiB = warm-up peak (baseline) "
        f"{rss['baseline']:.0f} MiB + cache budgets {rss['budgets']:.1f} MiB + slack {rss['slack']:.0f} MiB"
        + (" (over)" if rss["peak"] > rss["bound"] else "") + ".",
    ]
    lines += [f"- Problem: {problem}" for problem in data["problems"][:20]]
    return "\n".join(lines)


def write_report(out: Path, result: SoakResult, models: str, device: str) -> str:
    """Writes soak.md and soak.json into `out`; returns the Markdown."""
    out.mkdir(parents=True, exist_ok=True)
    text = markdown(result, models, device)
    (out / MARKDOWN_FILE).write_text(text + "\n")
    (out / JSON_FILE).write_text(json.dumps(summary(result, not device.startswith("cuda")), indent=2) + "\n")
    return text


def run(out: Path, work: Path, seconds: float, quick: bool, device: str) -> int:
    """Exit status 1 when the soak broke a promise (see `SoakResult.problems`), else 0."""
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    plan = replace(BENCH_PLAN, seconds=seconds)
    if not quick:
        plan = replace(plan, cache_bytes=FULL_MODEL_CACHE_BYTES)
    models = prepare_models(work, quick)
    run_dir = work / "soak"
    shutil.rmtree(run_dir, ignore_errors=True)
    print(f"labelgate bench --soak: {models.description}; device {device}; {plan.callers} callers for {seconds:.0f} s",
          flush=True)
    server = start_server(run_dir, None, *models.serve_flags(), "--device", device, *plan.server_flags())
    try:
        result = run_soak(server, plan)
    finally:
        server.stop()
    print(write_report(out, result, models.description, device))
    print(f"\nwrote {out / MARKDOWN_FILE}, {out / JSON_FILE}")
    return 1 if result.problems(exact_answers=not device.startswith("cuda")) else 0
