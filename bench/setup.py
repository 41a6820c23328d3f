"""What the benchmark runs on: the models (files the benchmark writes itself) and the sizes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from labelgate.models.demo import SAM2_DEMO_CONFIG, SAM2_DEMO_OVERRIDES

SAM2_TINY_CONFIG = "configs/sam2.1/sam2.1_hiera_t.yaml"
SAM2_TINY_RANDOM_FILENAME = "sam2.1_hiera_tiny_random.pt"


@dataclass(frozen=True)
class Models:
    """One SAM 2 checkpoint (config + overrides) and one Grounding DINO directory."""

    description: str
    sam2_config: str
    sam2_checkpoint: Path
    sam2_overrides: tuple[str, ...]
    gdino_dir: Path

    def serve_flags(self) -> list[str]:
        flags = ["--sam2-config", self.sam2_config, "--sam2-checkpoint", str(self.sam2_checkpoint)]
        for override in self.sam2_overrides:
            flags += ["--sam2-override", override]
        return flags + ["--gdino-model", str(self.gdino_dir)]


@dataclass(frozen=True)
class Plan:
    """How much to measure. `quick` is the tiniest configuration, for the test suite."""

    image_size: tuple[int, int]  # width, height of the photos sent
    rounds: int  # interleaved rounds for the latency rows
    repeats_per_round: int  # repeat clicks per cold click
    concurrency: tuple[int, ...]
    throughput_rounds: int  # rounds per concurrency level, decoder-bound
    encoder_rounds: int  # rounds per concurrency level, encoder-bound (each request is a new image)
    cached_images: int  # images clicked on in the decoder-bound throughput runs


FULL = Plan(image_size=(1920, 1080), rounds=7, repeats_per_round=4, concurrency=(1, 4, 8, 16),
            throughput_rounds=3, encoder_rounds=1, cached_images=2)
QUICK = Plan(image_size=(640, 480), rounds=3, repeats_per_round=2, concurrency=(1, 4, 8, 16),
             throughput_rounds=1, encoder_rounds=1, cached_images=2)


def ensure_tiny_random_checkpoint(work: Path) -> Path:
    """SAM 2.1 hiera-tiny at 1024 px with random weights of the real architecture, as the official
    `{'model': state_dict}` file (speed does not depend on the weight values). Written once."""
    path = work / SAM2_TINY_RANDOM_FILENAME
    if path.is_file():
        return path
    import torch
    from sam2.build_sam import build_sam2

    torch.manual_seed(0)
    model = build_sam2(SAM2_TINY_CONFIG, None, device="cpu")
    work.mkdir(parents=True, exist_ok=True)
    part = path.with_name(path.name + ".part")
    torch.save({"model": model.state_dict()}, part)
    part.replace(path)
    return path


def prepare_models(work: Path, quick: bool) -> Models:
    """Full: hiera-tiny 1024 px + the demo Grounding DINO. Quick: both demo models."""
    from labelgate.models.demo import ensure_demo_weights

    demo_sam2, demo_gdino = ensure_demo_weights(work / "demo")
    if quick:
        return Models("SAM 2.1 hiera (demo, 256 px), Grounding DINO (demo)", SAM2_DEMO_CONFIG, demo_sam2,
                      SAM2_DEMO_OVERRIDES, demo_gdino)
    checkpoint = ensure_tiny_random_checkpoint(work)
    return Models("SAM 2.1 hiera-tiny (1024 px, random weights), Grounding DINO (demo)", SAM2_TINY_CONFIG, checkpoint,
                  (), demo_gdino)
