"""The models `labelgate serve` runs when no --model or --models-file is given: one SAM 2 and,
unless --gdino-model is '', one Grounding DINO, from the classic flags or the demo weights."""

from __future__ import annotations

from pathlib import Path

from labelgate.models.demo import SAM2_DEMO_CONFIG, SAM2_DEMO_OVERRIDES, ensure_demo_weights
from labelgate.models.spec import ModelSpec

SAM2_DEMO_NAME = "sam2_demo"
DEFAULT_SAM2_CONFIG = "configs/sam2.1/sam2.1_hiera_t.yaml"
DEFAULT_SAM2_CHECKPOINT = "weights/sam2.1_hiera_tiny.pt"
DEFAULT_GDINO_MODEL = "weights/grounding-dino-tiny"


def default_specs(settings) -> list[ModelSpec]:
    """Specs from --sam2-config/--sam2-checkpoint/--sam2-override/--sam2-name/--gdino-model, or from
    --demo-weights DIR (written there if missing), which replaces them."""
    config, checkpoint, overrides, gdino = (
        settings.sam2_config, settings.sam2_checkpoint, tuple(settings.sam2_override), settings.gdino_model
    )
    name = settings.sam2_name
    if settings.demo_weights:
        demo_checkpoint, demo_gdino = ensure_demo_weights(Path(settings.demo_weights))
        config, checkpoint, overrides, gdino = SAM2_DEMO_CONFIG, str(demo_checkpoint), SAM2_DEMO_OVERRIDES + overrides, str(demo_gdino)
        name = name or SAM2_DEMO_NAME
    sam2_options = {"config": config}
    if overrides:
        sam2_options["overrides"] = ";".join(overrides)
    specs = [ModelSpec(name or Path(config).stem, "sam2", checkpoint, sam2_options)]
    if gdino:
        specs.append(ModelSpec(Path(gdino).resolve().name, "grounding_dino", gdino))
    return specs
