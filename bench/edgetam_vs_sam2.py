"""Is EdgeTAM the quick click on a CPU? A cold click (a new image: image encoder + one-point decode) on
EdgeTAM against SAM 2.1 hiera-tiny, in process, side by side (interleaved rounds), both with random
weights of the real architectures at their 1024 px input.

    .venv/bin/python -m labelgate.bench.edgetam_vs_sam2 [--rounds 5] [--size 1024] [--threads N] [--json]

On a shared machine, `--threads 1` keeps the other tenants' load from swamping both sides' thread pools.

Prints one benchmark row: median EdgeTAM cold click / median SAM 2.1 hiera-tiny cold click.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys

import numpy as np

from labelgate.bench.images import click_point, scene
from labelgate.bench.rows import Row
from labelgate.bench.setup import SAM2_TINY_CONFIG
from labelgate.bench.timing import interleaved, median
from labelgate.models.backend import DecodeItem, SamPrompt

TARGET = ("<=", 0.3)  # also the target of the main table's EdgeTAM row (bench/scenarios.py)


def sam2_tiny():
    from labelgate.models.sam2.torch_backend import Sam2TorchBackend, load_sam2

    return Sam2TorchBackend(load_sam2(SAM2_TINY_CONFIG, None, "cpu"), name="sam2.1-hiera-tiny", version="random")


def edgetam():
    from transformers import EdgeTamModel, Sam2ImageProcessor, Sam2Processor

    from labelgate.models.edgetam.config import edgetam_config
    from labelgate.models.edgetam.torch_backend import EdgeTamTorchBackend

    processor = Sam2Processor(image_processor=Sam2ImageProcessor())  # 1024 px, as the official model
    return EdgeTamTorchBackend(EdgeTamModel(edgetam_config()), processor, name="edgetam", version="random")


def cold_click(backend, images, size: int):
    """A click on a new image each call: encode it, then decode one positive point."""

    def call():
        index, image = next(images)
        [features] = backend.encode([image])
        point = np.array([click_point(index, size, size)], np.float32)
        prompt = SamPrompt(point, np.ones(1, np.int32), np.zeros((0, 4), np.float32), multimask_output=True)
        [decoded] = backend.decode([DecodeItem(features, prompt)])
        if isinstance(decoded, Exception):
            raise decoded

    return call


def measure(rounds: int, size: int) -> Row:
    import torch

    torch.manual_seed(0)
    backends = {"edgetam": edgetam(), "sam2.1_hiera_tiny": sam2_tiny()}
    images = ((seed, scene(seed, size, size)) for seed in itertools.count(1))
    calls = {name: cold_click(backend, images, size) for name, backend in backends.items()}
    for call in calls.values():  # untimed: first calls allocate and pick kernels
        call()
    samples = interleaved(calls, rounds)
    parts = {name: median(values) for name, values in samples.items()}
    return Row(
        key="edgetam_cold_click",
        title="EdgeTAM cold click (CPU)",
        measure=f"p50 EdgeTAM / p50 SAM 2.1 hiera-tiny cold click, {size} px, random weights",
        ratio=parts["edgetam"] / parts["sam2.1_hiera_tiny"],
        target=TARGET,
        parts=parts,
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--size", type=int, default=1024, help="image side in pixels (both models resize to 1024)")
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (default: torch's choice)")
    parser.add_argument("--json", action="store_true", help="print the row as JSON")
    args = parser.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    row = measure(args.rounds, args.size)
    if args.json:
        print(json.dumps(row.as_json()))
    else:
        sides = ", ".join(f"{name} {seconds * 1000:.0f} ms" for name, seconds in row.parts.items())
        verdict = "met" if row.met else "NOT met"
        print(f"{row.title}: {row.ratio:.3f} ({row.measure}; target {row.target_text}: {verdict}); {sides}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
