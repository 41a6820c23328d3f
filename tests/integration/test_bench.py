"""`labelgate bench --quick --sections main concepts` runs end to end against real servers and writes a
complete table, JSON file and chart: the main rows (EdgeTAM's included) and the concept section's SAM 3
rows, with the demo models. (Benchmarks are not timed tests: nothing here asserts a speed.)"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys

import pytest
from PIL import Image

from labelgate.bench.concept_scenarios import SAMPLE_NAMES

EXPECTED_ROWS = {
    "repeat_click", "versus_baseline", "service_overhead", "payload", "payload_object_shape", "text_to_masks",
    "click_under_load", "click_under_load_equal_priority", "edgetam_cold_click",
    *(f"batching_{kind}_c{c}" for kind in ("decoder", "encoder") for c in (1, 4, 8, 16)),
}
CONCEPT_ROWS = {"concepts_vs_detector", "concept_second_phrase"}
TARGETED = {"repeat_click", "versus_baseline", "service_overhead", "payload", "batching_decoder_c8", "batching_encoder_c8",
            "edgetam_cold_click"}


def run_quick_bench(tmp_path_factory, name: str, sections: tuple[str, ...], timeout: int) -> tuple:
    """`labelgate bench --quick` on the CPU for `sections`: (its output folder, its stdout)."""
    out = tmp_path_factory.mktemp(f"bench-results{name}")
    work = tmp_path_factory.mktemp(f"bench-work{name}")
    completed = subprocess.run(
        [sys.executable, "-m", "labelgate.cli", "bench", "--quick", "--sections", *sections, "--device", "cpu",
         "--out", str(out), "--work", str(work)],
        capture_output=True, text=True, timeout=timeout,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-5000:]
    return out, completed.stdout


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory):
    return run_quick_bench(tmp_path_factory, "", ("main", "concepts"), timeout=300)


def test_json_has_every_row_with_a_finite_ratio_of_two_measured_sides(bench_run):
    out, _ = bench_run
    data = json.loads((out / "bench.json").read_text())
    rows = {row["key"]: row for row in data["rows"]}
    assert set(rows) == EXPECTED_ROWS | CONCEPT_ROWS
    for key, row in rows.items():
        assert math.isfinite(row["ratio"]) and row["ratio"] > 0, key
        sides = list(row["parts"].values())
        assert len(sides) == 2 and all(value > 0 for value in sides), key
        assert row["ratio"] == pytest.approx(sides[0] / sides[1], rel=1e-9), key
        assert (row["target"] is not None) == (key in TARGETED), key
        assert row["met"] in ((True, False) if row["target"] else (None,)), key
    assert data["config"]["quick"] is True and data["config"]["device"] == "cpu"
    assert data["config"]["sections"] == ["main", "concepts"]
    assert data["gpu"] == []


def test_json_keeps_the_samples_behind_the_medians(bench_run):
    out, _ = bench_run
    data = json.loads((out / "bench.json").read_text())
    samples = data["latency_samples_s"]
    for name in ("cold click", "repeat click", "usual backend click", "gRPC cached click", "in-process decoder call",
                 "Segment(text)", "Detect + Segment(boxes)", "click, idle", "click, encoding", "click, idle, equal priority",
                 "click, encoding, equal priority", "EdgeTAM cold click", "SAM 2 cold click", *SAMPLE_NAMES):
        assert len(samples[name]) >= 3 and all(s > 0 for s in samples[name]), name
    for kind in ("decoder", "encoder"):
        for mode in ("on", "off"):
            assert sorted(int(c) for c in data["throughput_req_per_s"][kind][mode]) == [1, 4, 8, 16]


def test_table_is_printed_and_written_with_one_line_per_row(bench_run):
    out, stdout = bench_run
    table = (out / "bench.md").read_text()
    lines = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| #")]
    assert len(lines) == len(EXPECTED_ROWS | CONCEPT_ROWS)
    assert table.strip() in stdout
    for title in ("Repeat click", "Versus the usual backend", "Service overhead", "Batching, decoder-bound, concurrency 8",
                  "Batching, encoder-bound, concurrency 16", "Payload", "Text to masks", "EdgeTAM cold click",
                  "Concepts in one call (SAM 3)", "Second concept (SAM 3)"):
        assert any(f"| {title} |" in line for line in lines), title
    assert " ms" not in table  # CPU runs report ratios only


def test_concept_rows_compare_calls_that_returned_objects(bench_run):
    """Both sides of the SAM 3 against Grounding DINO + SAM 2 row answered with masks (a side that found
    nothing would time less work), and the row says how many."""
    out, _ = bench_run
    row = next(row for row in json.loads((out / "bench.json").read_text())["rows"] if row["key"] == "concepts_vs_detector")
    counts = re.search(r"\(([\d.]+) / ([\d.]+) objects\)", row["measure"])
    assert counts and float(counts[1]) > 0 and float(counts[2]) > 0, row["measure"]


def test_chart_is_a_real_png(bench_run):
    out, _ = bench_run
    with Image.open(out / "bench.png") as chart:
        assert chart.format == "PNG"
        assert chart.width >= 800 and chart.height >= 300


LABELING_VIDEO_TARGETS = {"labeling_throughput": ">= 0.9", "labeling_resume": "<= 0.55", "labeling_rss": "<= 1.2",
                          "video_throughput": ">= 0.9", "video_rss": "<= 1.5", "video_rss_upstream": None,
                          "video_correction": None}


@pytest.fixture(scope="module")
def labeling_video_run(tmp_path_factory):
    """The labeling and video sections alone, at their quick sizes (a few images, a few frames)."""
    return run_quick_bench(tmp_path_factory, "-labeling-video", ("labeling", "video"), timeout=600)


def test_labeling_and_video_rows_divide_two_measured_sides(labeling_video_run):
    out, stdout = labeling_video_run
    data = json.loads((out / "bench.json").read_text())
    rows = {row["key"]: row for row in data["rows"]}
    assert set(rows) == set(LABELING_VIDEO_TARGETS)
    for key, row in rows.items():
        sides = list(row["parts"].values())
        assert math.isfinite(row["ratio"]) and row["ratio"] > 0, key
        assert len(sides) == 2 and all(value > 0 for value in sides), key
        assert row["ratio"] == pytest.approx(sides[0] / sides[1], rel=1e-9), key
        assert row["target"] == LABELING_VIDEO_TARGETS[key], key
    assert data["config"]["sections"] == ["labeling", "video"]
    table = (out / "bench.md").read_text()
    assert table.strip() in stdout
    for title in ("Labeling job throughput", "Labeling job resume", "Labeling job memory", "Video tracking throughput",
                  "Video tracking memory (service)", "Video tracking memory (upstream)", "Video correction"):
        assert f"| {title} |" in table, title
