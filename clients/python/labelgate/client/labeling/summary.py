"""The end-of-job summary: printed for a person, written as summary.json for a pipeline."""

from __future__ import annotations

import json
from pathlib import Path

from labelgate.client.labeling.exporting import ExportReport
from labelgate.client.labeling.job import FAILURES_LOG, JobCounters

SUMMARY_NAME = "summary.json"


def summary_dict(counters: JobCounters | None, report: ExportReport, manifest_counts: dict, classes: list[str],
                 pushed: list[str] = ()) -> dict:
    """`pushed`: what was pushed back to the source's annotation tool, one line per push."""
    summary = {
        "dataset": {"images": report.images, "objects": sum(report.objects.values()),
                    "objects_per_class": {name: report.objects.get(name, 0) for name in classes}},
        "manifest": manifest_counts,
        "files": [str(path) for path in report.files],
    }
    if counters is not None:
        seconds = counters.elapsed
        summary["run"] = {"seen": counters.seen, "labeled": counters.labeled, "skipped": counters.skipped,
                          "duplicates": counters.duplicates, "failed": counters.failed,
                          "requests": counters.requests, "seconds": round(seconds, 3),
                          "images_per_second": round(counters.labeled / seconds, 3) if seconds > 0 else 0.0}
    if pushed:
        summary["pushed"] = list(pushed)
    return summary


def summary_lines(summary: dict, out_dir: Path) -> list[str]:
    lines = []
    run = summary.get("run")
    if run:
        lines.append(f"labeled {run['labeled']} images ({run['skipped']} already done, {run['duplicates']} duplicates), "
                     f"{run['failed']} failed, in {run['seconds']:.1f} s ({run['images_per_second']:.2f} images/s)")
        if run["failed"]:
            lines.append(f"failures: see {Path(out_dir) / FAILURES_LOG}")
    dataset = summary["dataset"]
    per_class = ", ".join(f"{name} {count}" for name, count in dataset["objects_per_class"].items())
    lines.append(f"dataset: {dataset['images']} images, {dataset['objects']} objects ({per_class})")
    if summary["manifest"].get("failures"):
        lines.append(f"not yet labeled: {summary['manifest']['failures']} failed images (rerun to retry them)")
    lines.extend(f"wrote {path}" for path in summary["files"])
    lines.extend(summary.get("pushed", ()))
    return lines


def write_summary(summary: dict, out_dir: Path) -> Path:
    path = Path(out_dir) / SUMMARY_NAME
    path.write_text(json.dumps(summary, indent=2) + "\n")
    return path
