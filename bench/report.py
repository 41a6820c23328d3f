"""The benchmark's outputs: a Markdown table (printed, and docs/performance.md's), a JSON file and a PNG chart."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from labelgate.bench.rows import Row

# The issue's row numbers (7 is ours; 8-10 are issue 12's, 11-13 issue 13's, 14-16 issue 14's); every batching row is row 4.
_NUMBERS = {"repeat_click": 1, "versus_baseline": 2, "service_overhead": 3, "payload": 5, "payload_object_shape": 5,
            "text_to_masks": 6, "click_under_load": 7, "click_under_load_equal_priority": 7, "edgetam_cold_click": 8,
            "concepts_vs_detector": 9, "concept_second_phrase": 10, "labeling_throughput": 11, "labeling_resume": 12,
            "labeling_rss": 13, "video_throughput": 14, "video_rss": 15, "video_rss_upstream": 15, "video_correction": 16}
_TIMES_X = ("versus_baseline", "batching_")  # rows read as "N times faster"


def _number(row: Row) -> int:
    return _NUMBERS.get(row.key, 4)


def _ratio_text(row: Row) -> str:
    text = f"{row.ratio:.3g}" if row.ratio < 1000 else f"{row.ratio:.0f}"
    return text + "x" if row.key.startswith(_TIMES_X) else text


def _met_text(row: Row) -> str:
    return {True: "yes", False: "**no**", None: ""}[row.met]


def _parts_text(row: Row) -> str:
    def one(value: float) -> str:
        if row.unit == "s":
            return f"{value * 1000:.1f} ms"
        return f"{value:.1f} {row.unit}" if row.unit.endswith("/s") else f"{value:.0f} {row.unit}"

    return " / ".join(one(value) for value in row.parts.values())


def table(rows: list[Row], absolute: bool) -> str:
    """Ratios only, unless `absolute` (a GPU run): then each row's two medians too."""
    header = ["#", "Measure", "What is divided", "Ratio", "Target", "Met"] + (["Medians"] if absolute else [])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [str(_number(row)), row.title, row.measure, _ratio_text(row), row.target_text, _met_text(row)]
        if absolute:
            cells.append(_parts_text(row))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def gpu_table(gpu_rows: list[dict]) -> str:
    """One line per measure, one column per way of running it (the union over the rows, in order)."""
    if not gpu_rows:
        return ""
    columns = list(dict.fromkeys(key for row in gpu_rows for key in row if key not in ("measure", "unit")))
    lines = ["| GPU measure | " + " | ".join(columns) + " |", "|" + "---|" * (len(columns) + 1)]
    for row in gpu_rows:
        cells = [_gpu_value(row.get(column, "")) for column in columns]
        lines.append(f"| {row['measure']} ({row['unit']}) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _gpu_value(value: float | str) -> str:
    return f"{value:.2f}" if isinstance(value, float) else value


def write_json(path: Path, config: dict, rows: list[Row], throughput: dict, samples: dict, gpu_rows: list[dict]) -> None:
    data = {
        "config": config,
        "rows": [row.as_json() for row in rows],
        "throughput_req_per_s": throughput,
        "latency_samples_s": samples,
        "gpu": gpu_rows,
    }
    path.write_text(json.dumps(data, indent=2))


def write_chart(path: Path, title: str, samples: dict[str, list[float]], throughput: dict) -> None:
    """Left: latency distributions (log scale). Right: throughput against concurrency."""
    try:
        import matplotlib
    except ImportError:  # e.g. a bare GPU machine running scripts/gpu_check.sh
        print(f"matplotlib is not installed: no chart at {path} (pip install 'labelgate[bench]')")
        return

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (latency, rates) = plt.subplots(1, 2, figsize=(13, 5))
    names = list(samples)
    latency.boxplot([[s * 1000 for s in samples[name]] for name in names], vert=False, showfliers=True)
    latency.set_yticks(range(1, len(names) + 1), names)
    latency.set_xscale("log")
    latency.set_xlabel("latency (ms, log scale)")
    latency.set_title("Latency distributions")
    for kind, modes in throughput.items():
        for mode, by_concurrency in modes.items():
            levels = sorted(by_concurrency)
            medians = [statistics.median(by_concurrency[c]) for c in levels]
            rates.plot(levels, medians, marker="o", linestyle="-" if mode == "on" else "--",
                       label=f"{kind}-bound, batching {mode}")
    rates.set_xscale("log", base=2)
    rates.set_yscale("log")
    rates.set_xlabel("concurrent callers")
    rates.set_ylabel("requests / s (log scale)")
    rates.set_title("Throughput against concurrency")
    if throughput:  # none in a run of the concept section alone
        rates.legend()
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
