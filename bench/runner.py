"""Runs the whole benchmark: starts the three servers side by side, measures every row, writes
the table, the JSON file and the chart, and stops the servers whatever happens."""

from __future__ import annotations

import datetime
import os
import platform
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

from labelgate.bench.baseline_server import start_baseline
from labelgate.bench.report import gpu_table, table, write_chart, write_json
from labelgate.bench.concept_scenarios import ConceptScenarios
from labelgate.bench.labeling_scenarios import LABELING_FULL, LABELING_QUICK, LabelingPlan, LabelingScenarios
from labelgate.bench.video_scenarios import VIDEO_FULL, VIDEO_QUICK, VideoPlan, VideoScenarios
from labelgate.bench.scenarios import Scenarios, Servers
from labelgate.bench.rows import Row
from labelgate.bench.setup import FULL, QUICK, ConceptModels, Models, Plan, prepare_concept_models, prepare_models
from labelgate.server.launcher import ServerProcess, start_server
from labelgate.server.settings import Settings

TABLE_FILE, JSON_FILE, CHART_FILE = "bench.md", "bench.json", "bench.png"


def _start_servers(models: Models, work: Path, device: str) -> Servers:
    """The labelgate servers run the serve defaults (the launcher's test delay undone), but for one
    flag each: --max-batch-size 1 (batching off), --heavy-stage-priority normal (every stage at the
    same priority); the batched one also serves EdgeTAM. `work` must be fresh: the launcher takes an
    existing port file for its server's."""
    common = ["--device", device, "--max-batch-delay-ms", str(Settings.max_batch_delay_ms)]
    pair = [*models.serve_flags(), *common]
    with ThreadPoolExecutor(4) as pool:
        futures = [
            pool.submit(start_server, work / "labelgate-batched", None, *models.with_edgetam_flags(), *common),
            pool.submit(start_server, work / "labelgate-unbatched", None, *pair, "--max-batch-size", "1"),
            pool.submit(start_server, work / "labelgate-equal-priority", None, *pair, "--heavy-stage-priority", "normal"),
            pool.submit(start_baseline, work / "baseline", models.sam2_config, models.sam2_checkpoint,
                        models.sam2_overrides, device),
        ]
        errors = [future.exception() for future in futures]
    if any(errors):
        for future, error in zip(futures, errors):
            if error is None:
                future.result().stop()
        raise next(error for error in errors if error is not None)
    return Servers(*(future.result() for future in futures))


def _gpu_rows(models: Models, plan: Plan, work: Path, quick: bool, budget_s: float) -> list[dict]:
    """labelgate's backends on the GPU; then, in a full run, the export graphs against TensorRT."""
    from labelgate.bench.engines import engine_rows
    from labelgate.bench.gpu import Budget, backend_rows

    budget = Budget(budget_s)
    print(f"  measuring GPU rows (budget {budget_s:.0f} s)", flush=True)
    rows = backend_rows(models, plan.image_size, budget)
    print(gpu_table(rows), flush=True)  # now, in case a time limit stops the engine builds
    if not quick:
        engines_dir = work / "engines"
        engines_dir.mkdir(parents=True, exist_ok=True)
        rows += engine_rows(budget, engines_dir)
    return rows


def _main_section(models: Models, plan: Plan, run_dir: Path, device: str) -> tuple[list[Row], Scenarios]:
    servers = _start_servers(models, run_dir, device)
    rows: list[Row] = []
    try:
        scenarios = Scenarios(plan, models, servers, run_dir, device)
        for step in (scenarios.repeat_click, scenarios.versus_baseline, scenarios.service_overhead, scenarios.batching,
                     scenarios.payload, scenarios.text_to_masks, scenarios.click_under_load, scenarios.edgetam_cold_click):
            rows += _measured(step)
    finally:
        for server in (servers.batched, servers.unbatched, servers.equal_priority, servers.baseline):
            server.stop()
    return rows, scenarios


def _concept_section(concept_models: ConceptModels, plan: Plan, run_dir: Path, device: str,
                     quick: bool) -> tuple[list[Row], ConceptScenarios]:
    """SAM 3 and the default pair in one more server, started once the main section's are stopped."""
    print(f"  concept section: {concept_models.description}; starting a server", flush=True)
    # --no-warmup: the section's own warm-up round makes the first calls; the server's would run SAM 3's
    # backbone once more, and would try a click on a SAM 3 without tracker weights, which it refuses.
    server = start_server(run_dir / "labelgate-concepts", None, *concept_models.serve_flags(), "--device", device,
                          "--max-batch-delay-ms", str(Settings.max_batch_delay_ms), "--no-warmup")
    try:
        scenarios = ConceptScenarios(plan, server.stub(), quick)
        rows = _measured(scenarios.concept_rows)
    finally:
        server.stop()
    return rows, scenarios


def _demo_server(name: str, run_dir: Path, work: Path, device: str) -> tuple[Models, ServerProcess]:
    """One more server with the demo models (the labeling and video sections run them whatever the size)."""
    models = prepare_models(work, quick=True)
    return models, start_server(run_dir / name, None, *models.serve_flags(), "--device", device,
                                "--max-batch-delay-ms", str(Settings.max_batch_delay_ms))


def _labeling_section(plan: LabelingPlan, run_dir: Path, work: Path, device: str) -> tuple[list[Row], LabelingScenarios]:
    """`labelgate label` jobs against one more server, and the plain loop in this process."""
    print(f"  labeling section: {plan.images} images a run, {plan.image_size[0]}x{plan.image_size[1]}; starting a server",
          flush=True)
    models, server = _demo_server("labelgate-labeling", run_dir, work, device)
    try:
        scenarios = LabelingScenarios(plan, models, server, run_dir / "labeling", device)
        rows = _measured(scenarios.throughput) + _measured(scenarios.resume) + _measured(scenarios.memory)
    finally:
        server.stop()
    return rows, scenarios


def _video_section(plan: VideoPlan, run_dir: Path, work: Path, device: str) -> tuple[list[Row], VideoScenarios]:
    """Tracking through one more server (its default window), and upstream's loop in this process."""
    print(f"  video section: {plan.frames}-frame clip, {plan.frame_size[0]}x{plan.frame_size[1]}; starting a server",
          flush=True)
    models, server = _demo_server("labelgate-video", run_dir, work, device)
    try:
        scenarios = VideoScenarios(plan, models, server, run_dir / "video", device)
        try:
            rows = _measured(scenarios.throughput) + _measured(scenarios.memory) + _measured(scenarios.correction)
        finally:
            scenarios.close()
    finally:
        server.stop()
    return rows, scenarios


def _measured(step) -> list:
    started = time.monotonic()
    result = step()
    print(f"  measured {step.__name__.replace('_', ' ')} ({time.monotonic() - started:.0f} s)", flush=True)
    return result if isinstance(result, list) else [result]


def run(out: Path, work: Path, quick: bool, device: str, rounds: int | None = None, gpu_budget_s: float = 300.0,
        sections: tuple[str, ...] = ("main",), labeling_images: int | None = None, video_frames: int | None = None) -> int:
    import torch

    plan: Plan = QUICK if quick else FULL
    if rounds:
        plan = Plan(**{**plan.__dict__, "rounds": rounds})
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    out.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    # The labeling and video sections run the demo models whatever the size: alone, they need no others.
    models = prepare_models(work, quick or not {"main", "concepts"} & set(sections))
    print(f"labelgate bench: {models.description}; {plan.image_size[0]}x{plan.image_size[1]} JPEG; device {device}; "
          f"{os.cpu_count()} CPU cores; sections {', '.join(sections)}", flush=True)
    run_dir = work / "run"  # server logs and port files of this run only
    shutil.rmtree(run_dir, ignore_errors=True)
    rows, samples, throughput, description = [], {}, {}, models.description
    if "main" in sections:
        rows, main = _main_section(models, plan, run_dir, device)
        samples, throughput = main.samples, main.throughput
    if "concepts" in sections:
        concept_models = prepare_concept_models(work, quick, models)
        concept_rows, concepts = _concept_section(concept_models, plan, run_dir, device, quick)
        rows, samples = rows + concept_rows, {**samples, **concepts.samples}
        description += f"; concepts: {concept_models.description}"
    if "labeling" in sections:
        labeling_plan = LABELING_QUICK if quick else LABELING_FULL
        if labeling_images:
            labeling_plan = replace(labeling_plan, images=labeling_images)
        labeling_rows, labeling = _labeling_section(labeling_plan, run_dir, work, device)
        rows, samples = rows + labeling_rows, {**samples, **labeling.samples}
        description += "; labeling: SAM 2.1 hiera (demo, 256 px), Grounding DINO (demo)"
    if "video" in sections:
        video_plan = VIDEO_QUICK if quick else VIDEO_FULL
        if video_frames:
            video_plan = replace(video_plan, rss_frames=(max(1, video_frames // 10), video_frames))
        video_rows, video = _video_section(video_plan, run_dir, work, device)
        rows, samples = rows + video_rows, {**samples, **video.samples}
        description += "; video: SAM 2.1 hiera (demo, 256 px)"
    gpu = _gpu_rows(models, plan, work, quick, gpu_budget_s) if device.startswith("cuda") and "main" in sections else []
    config = {
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "models": description, "quick": quick, "device": device, "cpu_cores": os.cpu_count(),
        "machine": platform.platform(), "torch": torch.__version__, "image_size": list(plan.image_size),
        "plan": plan.__dict__, "sections": list(sections),
    }
    text = table(rows, absolute=device.startswith("cuda"))
    if gpu:
        text += "\n\n" + gpu_table(gpu)
    (out / TABLE_FILE).write_text(text + "\n")
    write_json(out / JSON_FILE, config, rows, throughput, samples, gpu)
    write_chart(out / CHART_FILE, f"labelgate bench: {description}, {device}", samples, throughput)
    print(text)
    print(f"\nwrote {out / TABLE_FILE}, {out / JSON_FILE}, {out / CHART_FILE}")
    return 0
