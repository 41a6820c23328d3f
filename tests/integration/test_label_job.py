"""`labelgate label` against a real server with the demo models, on a generated folder (nested, with
a duplicate, a same-named file in another folder, and broken files): resume after an interruption
and after a kill skips finished images, a changed ontology redoes only what changed, failures are
counted and logged, and shards merged equal one unsharded run. Work is counted from the job's
summary (prompt calls) and the manifest, never from timings."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from labelgate.client.labeling.assemble import labeled_images
from labelgate.client.labeling.commands import _stored, add_labeling_commands
from labelgate.client.labeling.exporting import available_exporters
from labelgate.client.labeling.manifest import Manifest
from labelgate.client.labeling.plan import prompt_tasks
from reference import encode, random_image

LOW = {"box_threshold": 0.05, "text_threshold": 0.05}  # random weights score low: keep what they find
ONTOLOGY = {"classes": {"cat": {"prompts": ["a cat"], **LOW}, "dog": {"prompts": ["a dog", "a puppy"], **LOW}},
            "nms": {"iou": 0.5}}
PROMPTS = 3
GOOD = ["a/0001.png", "b/0001.png", "b/deep/er/0002.jpg", "c.png"]  # shards 0/2 and 1/2 both get some
DUPLICATE = "b/deep/copy_of_c.png"
BROKEN = ["broken/not_an_image.jpg", "broken/truncated.png"]
UNIQUE = len(GOOD)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("dataset")
    for seed, key in enumerate(GOOD):
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(encode(random_image(seed, 48 + 8 * seed, 64), "JPEG" if key.endswith(".jpg") else "PNG"))
    shutil.copy(root / "c.png", root / DUPLICATE)
    (root / BROKEN[0]).parent.mkdir()
    (root / BROKEN[0]).write_bytes(b"this is not an image")
    (root / BROKEN[1]).write_bytes((root / "a/0001.png").read_bytes()[:60])
    (root / "notes.txt").write_text("not an image suffix: never listed")
    return root


def _write_ontology(path: Path, data: dict) -> Path:
    path.write_text(json.dumps(data))
    return path


def _label(server, *argv: str) -> tuple[int, dict]:
    parser = argparse.ArgumentParser()
    add_labeling_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["label", *argv, "--server", server.address, "--no-progress"])
    code = args.func(args)
    summary = json.loads((args.out / "summary.json").read_text()) if (args.out / "summary.json").exists() else {}
    return code, summary


def _images(out: Path) -> list:
    with Manifest.in_dir(out) as manifest:
        ontology, models = _stored(manifest, None)
        return list(labeled_images(manifest, ontology, prompt_tasks(ontology, models), 0.1))


def test_resume_duplicates_and_failures(server, dataset, tmp_path):
    ontology = _write_ontology(tmp_path / "ontology.json", ONTOLOGY)
    out = tmp_path / "out"
    code, first = _label(server, str(dataset), "--ontology", str(ontology), "--out", str(out), "--limit", "2",
                         "--format", "")
    assert code == 0 and first["run"]["labeled"] == 2 and first["run"]["requests"] == 2 * PROMPTS
    assert first["dataset"]["images"] == 2

    code, second = _label(server, str(dataset), "--ontology", str(ontology), "--out", str(out), "--format", "")
    run = second["run"]
    assert code == 0
    assert run["seen"] == len(GOOD) + 1 + len(BROKEN)
    assert run["labeled"] == UNIQUE - 2 and run["requests"] == (UNIQUE - 2) * PROMPTS  # the first two skipped
    assert run["failed"] == len(BROKEN)
    images = _images(out)
    assert sorted(image.key for image in images) == sorted(GOOD + [DUPLICATE])  # the copy labeled once, listed
    copy, original = (next(i for i in images if i.key == key) for key in (DUPLICATE, "c.png"))
    assert copy.objects == original.objects and copy.content_hash == original.content_hash
    assert {image.split for image in images} <= {"train", "val"}
    with Manifest.in_dir(out) as manifest:
        assert manifest.counts()["contents"] == UNIQUE and manifest.counts()["results"] == UNIQUE * PROMPTS
        assert [row[0] for row in manifest.failures()] == BROKEN
    log = (out / "failures.log").read_text().splitlines()
    assert sorted(line.split("\t")[1] for line in log) == BROKEN and all("INVALID_ARGUMENT" in line for line in log)

    code, third = _label(server, str(dataset), "--ontology", str(ontology), "--out", str(out), "--format", "")
    assert third["run"]["labeled"] == 0 and third["run"]["requests"] == 0 and third["run"]["failed"] == len(BROKEN)

    code, _ = _label(server, str(dataset), "--ontology", str(ontology), "--out", str(out), "--max-failures", "1")
    assert code == 1  # the second broken file is one too many


def test_a_changed_ontology_redoes_only_the_changed_prompts(server, dataset, tmp_path):
    out = tmp_path / "out"
    before = _write_ontology(tmp_path / "before.json", ONTOLOGY)
    assert _label(server, str(dataset), "--ontology", str(before), "--out", str(out), "--glob", "[ab]/*")[0] == 0
    changed = json.loads(json.dumps(ONTOLOGY))
    changed["classes"]["dog"]["prompts"] = ["a dog", "a hound"]  # one new prompt
    changed["classes"]["cat"]["min_area"] = 10  # assembly only: no server call
    changed["classes"]["bird"] = {"prompts": ["a bird"], **LOW}  # a new class
    after = _write_ontology(tmp_path / "after.json", changed)
    code, summary = _label(server, str(dataset), "--ontology", str(after), "--out", str(out), "--glob", "[ab]/*")
    in_ab = [key for key in GOOD + [DUPLICATE] if key[0] in "ab"]  # the copy of c.png is unique here
    assert code == 0 and summary["run"]["labeled"] == len(in_ab) and summary["run"]["requests"] == 2 * len(in_ab)
    assert set(summary["dataset"]["objects_per_class"]) == {"cat", "dog", "bird"}
    assert summary["dataset"]["images"] == len(in_ab)


def test_a_killed_job_resumes_where_it_stopped(server, dataset, tmp_path):
    ontology = _write_ontology(tmp_path / "ontology.json", ONTOLOGY)
    out = tmp_path / "out"
    command = [sys.executable, "-m", "labelgate.cli", "label", str(dataset), "--ontology", str(ontology), "--out",
               str(out), "--server", server.address, "--concurrency", "1", "--no-progress", "--format", ""]
    job = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                           env={**os.environ, "HF_HUB_OFFLINE": "1"})
    try:
        deadline = time.monotonic() + 120
        while _contents(out) < 1 and job.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        job.send_signal(signal.SIGKILL)
        job.wait()
    done = _contents(out)
    assert done >= 1
    code, summary = _label(server, str(dataset), "--ontology", str(ontology), "--out", str(out), "--format", "")
    assert code == 0 and summary["run"]["labeled"] == UNIQUE - done
    assert summary["run"]["requests"] == (UNIQUE - done) * PROMPTS
    assert summary["dataset"]["images"] == len(GOOD) + 1


def _contents(out: Path) -> int:
    path = out / "manifest.sqlite"
    if not path.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            return db.execute("SELECT COUNT(*) FROM contents").fetchone()[0]
    except sqlite3.OperationalError:  # not created yet
        return 0


def test_shards_merged_equal_one_unsharded_run(server, dataset, tmp_path):
    ontology = _write_ontology(tmp_path / "ontology.json", ONTOLOGY)
    formats = ",".join(sorted(available_exporters()))
    common = ["--ontology", str(ontology), "--val-fraction", "0.5"]
    code, whole = _label(server, str(dataset), *common, "--out", str(tmp_path / "all"), "--format", formats)
    assert code == 0 and whole["run"]["labeled"] == UNIQUE and whole["run"]["duplicates"] == 1  # copy and original in flight together
    assert whole["run"]["requests"] == UNIQUE * PROMPTS
    for index in range(2):
        code, summary = _label(server, str(dataset), *common, "--out", str(tmp_path / f"shard{index}"),
                               "--shard", f"{index}/2", "--no-export")
        assert code == 0 and 0 < summary["run"]["seen"] < len(GOOD) + 1 + len(BROKEN)
    code, merged = _label(server, "merge", str(tmp_path / "shard0"), str(tmp_path / "shard1"),
                          "--out", str(tmp_path / "merged"), "--format", formats)
    assert code == 0
    assert _images(tmp_path / "merged") == _images(tmp_path / "all")
    assert merged["dataset"] == json.loads((tmp_path / "all" / "summary.json").read_text())["dataset"]
    for name in sorted(available_exporters()):
        for path in sorted((tmp_path / "all" / name).rglob("*")):
            if path.is_file() and path.suffix in {".json", ".txt", ".yaml"}:
                twin = tmp_path / "merged" / name / path.relative_to(tmp_path / "all" / name)
                assert _comparable(twin, tmp_path / "merged") == _comparable(path, tmp_path / "all"), path


def _comparable(path: Path, out: Path):
    """The file's content but for where and when it was written."""
    text = path.read_text().replace(str(out), "OUT")
    if path.suffix != ".json":
        return text
    data = json.loads(text)
    if isinstance(data, dict):
        data.get("info", {}).pop("date_created", None)
    return data


def test_embed_warms_the_cache_for_every_readable_image(server, dataset, capsys):
    parser = argparse.ArgumentParser()
    add_labeling_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["embed", str(dataset), "--server", server.address, "--no-progress"])
    for _ in range(2):
        assert args.func(args) == 0
    first, second = capsys.readouterr().out.strip().splitlines()
    images = len(GOOD) + 1
    assert first.startswith(f"embedded {images} images") and first.endswith(f"{len(BROKEN)} failed")
    assert second == f"embedded {images} images ({images} were already cached), {len(BROKEN)} failed"
