"""The labeling section (`labelgate bench --sections labeling`): `labelgate label` jobs against a
server, each in a process of its own (`labeling_job`), on folders of generated images.

- Throughput: the job's images/s against the same models called in a plain in-process loop (the
  autodistill way: for each image, one after another, the detector and SAM 2 called directly), on
  the same images; each round labels a new folder (the server's caches would remember the last).
- Resume: a job stopped half way (`--limit`) and run again: the rerun's time / a full run's, measured
  right before it on another new folder.
- Memory: the job process's peak RSS (the whole command, COCO export included) on a large folder /
  on a small one."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from labelgate.bench.images import jpeg, scene
from labelgate.bench.rows import Row
from labelgate.bench.setup import Models
from labelgate.bench.timing import median, timed
from labelgate.client.labeling.manifest import MANIFEST_NAME, Manifest
from labelgate.server.launcher import ServerProcess
from PIL import Image

PROMPTS = ("car", "dog")  # words of the demo Grounding DINO's tokenizer
# Low enough that the random demo Grounding DINO finds a few boxes in every bench image (as the main section's).
BOX_THRESHOLD = TEXT_THRESHOLD = 0.2
JOB_TIMEOUT_S = 1800
FIRST_SEED = 200_000  # images no other section sends


@dataclass(frozen=True)
class LabelingPlan:
    images: int  # images per throughput round and in the resume folder
    rounds: int  # throughput rounds (each a new folder for both sides)
    rss_images: tuple[int, int]  # the small and the large folder of the memory row
    image_size: tuple[int, int]  # width, height


LABELING_FULL = LabelingPlan(images=40, rounds=3, rss_images=(20, 200), image_size=(320, 240))
LABELING_QUICK = LabelingPlan(images=4, rounds=1, rss_images=(2, 6), image_size=(160, 120))


class PlainLoop:
    """The models in this process, called the way a script (autodistill's GroundedSAM) calls them: for
    each image, decode it, embed it once, then for each prompt detect boxes and mask them."""

    def __init__(self, models: Models, device: str):
        from labelgate.models.grounding_dino.torch_backend import GroundingDinoBackend
        from labelgate.models.sam2.torch_backend import Sam2TorchBackend

        self.detector = GroundingDinoBackend.from_pretrained(models.gdino_dir, device)
        self.segmenter = Sam2TorchBackend.from_checkpoint(models.sam2_config, models.sam2_checkpoint, device,
                                                          models.sam2_overrides)

    def label(self, path: Path) -> list:
        from labelgate.models.backend import DecodeItem, DetectItem, SamPrompt

        pixels = np.array(Image.open(path).convert("RGB"))
        features = _one(self.segmenter.encode([pixels]))
        objects = []
        for prompt in PROMPTS:
            found = _one(self.detector.detect([DetectItem(pixels, f"{prompt} .", BOX_THRESHOLD, TEXT_THRESHOLD)]))
            if not found:
                continue
            boxes = np.array([d.box for d in found], np.float32)
            masks = _one(self.segmenter.decode([DecodeItem(features, SamPrompt(
                np.zeros((0, 2), np.float32), np.zeros((0,), np.int32), boxes, multimask_output=False))]))
            objects += list(masks.masks[:, 0])
        return objects

    def run(self, paths: list[Path]) -> tuple[float, int]:
        """Seconds for every image, and the objects found."""
        seconds, found = timed(lambda: [len(self.label(path)) for path in paths])
        return seconds, sum(found)


def _one(results: list):
    if isinstance(results[0], Exception):
        raise results[0]
    return results[0]


class LabelingScenarios:
    def __init__(self, plan: LabelingPlan, models: Models, server: ServerProcess, work: Path, device: str):
        self.plan, self.server, self.work = plan, server, work
        self._seeds = itertools.count(FIRST_SEED)
        self._folders = itertools.count()
        self.ontology = work / "ontology.json"
        work.mkdir(parents=True, exist_ok=True)
        classes = {p: {"prompts": [p], "box_threshold": BOX_THRESHOLD, "text_threshold": TEXT_THRESHOLD} for p in PROMPTS}
        self.ontology.write_text(json.dumps({"classes": classes}))
        self.plain = PlainLoop(models, device)
        self.samples: dict[str, list[float]] = {}

    def _folder(self, count: int) -> tuple[Path, list[Path]]:
        """A new folder of `count` new images (in two subfolders, as a dataset often is)."""
        folder = self.work / f"images-{next(self._folders)}"
        width, height = self.plan.image_size
        paths = []
        for index in range(count):
            path = folder / f"part-{index % 2}" / f"{index:05d}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(jpeg(scene(next(self._seeds), width, height)))
            paths.append(path)
        return folder, paths

    def _job(self, folder: Path, out: Path, *flags: str) -> dict:
        """One `labelgate label` process: its seconds (from inside) and peak RSS."""
        command = [sys.executable, "-m", "labelgate.bench.labeling_job", "label", str(folder), "--ontology",
                   str(self.ontology), "--out", str(out), "--server", self.server.address, "--no-progress", *flags]
        completed = subprocess.run(command, capture_output=True, text=True, timeout=JOB_TIMEOUT_S, check=False)
        lines = completed.stdout.strip().splitlines()
        report = json.loads(lines[-1]) if lines and lines[-1].startswith("{") else None
        if completed.returncode != 0 or report is None:
            raise RuntimeError(f"the labeling job failed ({completed.returncode}):\n{completed.stdout[-2000:]}"
                               f"{completed.stderr[-3000:]}")
        return report

    def _labeled(self, out: Path, images: int) -> None:
        """Every image has a result for every prompt (a job that labeled less would time less work)."""
        with Manifest(out / MANIFEST_NAME) as manifest:
            results = manifest.counts()["results"]
        if results != images * len(PROMPTS):
            raise RuntimeError(f"{out}: {results} results for {images} images x {len(PROMPTS)} prompts")

    def _keep(self, name: str, value: float) -> None:
        self.samples.setdefault(name, []).append(value)

    def _warm_up(self) -> None:
        folder, paths = self._folder(2)
        self._job(folder, self.work / "out-warm-up", "--no-export")
        self.plain.run(paths)

    def _timed_job(self, folder: Path, out: Path, count: int) -> None:
        self._keep("labeling job", self._job(folder, out, "--no-export")["seconds"])
        self._labeled(out, count)

    def _timed_plain(self, paths: list[Path]) -> int:
        """Objects found."""
        seconds, found = self.plain.run(paths)
        self._keep("plain loop", seconds)
        return found

    def throughput(self) -> Row:
        self._warm_up()
        count, objects = self.plan.images, []
        for round_index in range(self.plan.rounds):
            folder, paths = self._folder(count)
            out = self.work / f"out-throughput-{round_index}"
            for side in ("plain", "job") if round_index % 2 else ("job", "plain"):
                if side == "job":
                    self._timed_job(folder, out, count)
                else:
                    objects.append(self._timed_plain(paths) / count)
        job_rate, plain_rate = count / median(self.samples["labeling job"]), count / median(self.samples["plain loop"])
        return Row("labeling_throughput", "Labeling job throughput",
                   f"images/s of a `labelgate label` job (text -> masks, {len(PROMPTS)} prompts, {count} images) / images/s "
                   f"of the same models in a plain in-process loop on the same images ({median(objects):.1f} objects "
                   "an image)", job_rate / plain_rate, (">=", 0.9), {"labeling job": job_rate, "plain loop": plain_rate},
                   unit="images/s")

    def resume(self) -> Row:
        """A full run on one new folder, then, right after it, a job stopped half way and its rerun on
        another (next to each other, so that the machine's other load moves both alike)."""
        count = self.plan.images
        full_folder, _ = self._folder(count)
        full = self._job(full_folder, self.work / "out-resume-full", "--no-export")["seconds"]
        folder, _ = self._folder(count)
        out = self.work / "out-resume"
        first = self._job(folder, out, "--no-export", "--limit", str(count // 2))["seconds"]
        rerun = self._job(folder, out, "--no-export")["seconds"]
        self._labeled(out, count)
        for name, seconds in (("full run", full), ("first half", first), ("rerun", rerun)):
            self._keep(f"labeling job, {name}", seconds)
        return Row("labeling_resume", "Labeling job resume",
                   f"a rerun's time after a job stopped at 50 % (--limit {count // 2} of {count}) / a full run's time "
                   f"(the first half took {first / full:.2f} of it)", rerun / full, ("<=", 0.55),
                   {"rerun": rerun, "full run": full})

    def memory(self) -> Row:
        small, large = self.plan.rss_images
        peaks = {}
        for count in (small, large):
            folder, _ = self._folder(count)
            out = self.work / f"out-rss-{count}"
            peaks[count] = float(self._job(folder, out, "--format", "coco")["peak_rss"])
            self._labeled(out, count)
        return Row("labeling_rss", "Labeling job memory",
                   f"peak RSS of the job process (labeling and COCO export) on {large} images / on {small} images",
                   peaks[large] / peaks[small], ("<=", 1.2), {f"{large} images": peaks[large], f"{small} images": peaks[small]},
                   unit="bytes")
