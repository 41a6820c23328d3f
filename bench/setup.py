"""What the benchmark runs on: the models (files the benchmark writes itself) and the sizes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from labelgate.bench.random_models import (
    ensure_edgetam,
    ensure_edgetam_demo,
    ensure_grounding_dino_demo_spread,
    ensure_grounding_dino_tiny,
    ensure_sam3,
    ensure_sam3_demo,
)
from labelgate.models.demo import SAM2_DEMO_CONFIG, SAM2_DEMO_OVERRIDES

SAM2_NAME, GDINO_NAME, EDGETAM_NAME, SAM3_NAME = "sam2", "gdino", "edgetam", "sam3"  # names when served by --model
EDGETAM_CACHE_SHARE = 0.1  # EdgeTAM's features are only used by one row: SAM 2 keeps most of the cache
SAM2_TINY_CONFIG = "configs/sam2.1/sam2.1_hiera_t.yaml"
SAM2_TINY_RANDOM_FILENAME = "sam2.1_hiera_tiny_random.pt"


@dataclass(frozen=True)
class Models:
    """One SAM 2 checkpoint (config + overrides) and one Grounding DINO directory (the default pair), and
    EdgeTAM's directory (served next to them by one server, for the EdgeTAM row)."""

    description: str
    sam2_config: str
    sam2_checkpoint: Path
    sam2_overrides: tuple[str, ...]
    gdino_dir: Path
    edgetam_dir: Path

    def serve_flags(self) -> list[str]:
        flags = ["--sam2-config", self.sam2_config, "--sam2-checkpoint", str(self.sam2_checkpoint)]
        for override in self.sam2_overrides:
            flags += ["--sam2-override", override]
        return flags + ["--gdino-model", str(self.gdino_dir)]

    def model_flags(self, *extra_specs: str) -> list[str]:
        """The pair as `--model` specs (defaults, being first of their kinds), then `extra_specs`: a
        server given any --model serves only the models so given."""
        sam2 = f"{SAM2_NAME}=sam2:{self.sam2_checkpoint},config={self.sam2_config}"
        if self.sam2_overrides:
            sam2 += ",overrides=" + ";".join(self.sam2_overrides)
        specs = [sam2, f"{GDINO_NAME}=grounding_dino:{self.gdino_dir}", *extra_specs]
        return [flag for spec in specs for flag in ("--model", spec)]

    def with_edgetam_flags(self) -> list[str]:
        return self.model_flags(f"{EDGETAM_NAME}=edgetam:{self.edgetam_dir},cache_share={EDGETAM_CACHE_SHARE}")


@dataclass(frozen=True)
class ConceptModels:
    """The concept section's server: the default pair (SAM 2 + Grounding DINO) and a SAM 3."""

    description: str
    pair: Models
    sam3_dir: Path

    def serve_flags(self) -> list[str]:
        return self.pair.model_flags(f"{SAM3_NAME}=sam3:{self.sam3_dir}")


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
    concept_rounds: int  # rounds of the concept section (each embeds a new image in SAM 3)


FULL = Plan(image_size=(1920, 1080), rounds=7, repeats_per_round=4, concurrency=(1, 4, 8, 16),
            throughput_rounds=3, encoder_rounds=1, cached_images=2, concept_rounds=3)
QUICK = Plan(image_size=(640, 480), rounds=3, repeats_per_round=2, concurrency=(1, 4, 8, 16),
             throughput_rounds=1, encoder_rounds=1, cached_images=2, concept_rounds=3)


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
    """Full: hiera-tiny 1024 px, the demo Grounding DINO, EdgeTAM 1024 px. Quick: the demo models."""
    from labelgate.models.demo import ensure_demo_weights

    demo_sam2, demo_gdino = ensure_demo_weights(work / "demo")
    if quick:
        return Models("SAM 2.1 hiera (demo, 256 px), Grounding DINO (demo), EdgeTAM (demo, 256 px)", SAM2_DEMO_CONFIG,
                      demo_sam2, SAM2_DEMO_OVERRIDES, demo_gdino, ensure_edgetam_demo(work))
    checkpoint = ensure_tiny_random_checkpoint(work)
    return Models("SAM 2.1 hiera-tiny (1024 px, random weights), Grounding DINO (demo), EdgeTAM (1024 px, random weights)",
                  SAM2_TINY_CONFIG, checkpoint, (), demo_gdino, ensure_edgetam(work))


def prepare_concept_models(work: Path, quick: bool, models: Models) -> ConceptModels:
    """Full: SAM 3 of the default config (1008 px) against Grounding DINO tiny (800x1333) + `models`'
    SAM 2, all random weights of the real architectures. Quick: the demo models."""
    from dataclasses import replace

    if quick:
        pair = replace(models, gdino_dir=ensure_grounding_dino_demo_spread(work, models.gdino_dir))
        return ConceptModels("SAM 3 (demo, 224 px) against Grounding DINO (demo) + SAM 2.1 hiera (demo, 256 px)",
                             pair, ensure_sam3_demo(work))
    pair = replace(models, gdino_dir=ensure_grounding_dino_tiny(work, models.gdino_dir))
    return ConceptModels("SAM 3 (default config, 1008 px) against Grounding DINO tiny (800x1333) + SAM 2.1 hiera-tiny "
                         "(1024 px), random weights", pair, ensure_sam3(work))
