"""The models `labelgate serve` runs when no --model or --models-file is given: one SAM 2 and,
unless --gdino-model is '', one Grounding DINO, from the classic flags or the demo weights; with
--demo-weights also a demo SAM 3 and EdgeTAM (`demo_extra_specs`), the defaults only of what the pair
cannot do (concepts)."""

from __future__ import annotations

from pathlib import Path

from labelgate.models.demo import SAM2_DEMO_CONFIG, SAM2_DEMO_OVERRIDES, ensure_demo_weights, extra_demo_paths
from labelgate.models.spec import ModelSpec

SAM2_DEMO_NAME = "sam2_demo"
DEFAULT_SAM2_CONFIG = "configs/sam2.1/sam2.1_hiera_t.yaml"
DEFAULT_SAM2_CHECKPOINT = "weights/sam2.1_hiera_tiny.pt"
DEFAULT_GDINO_MODEL = "weights/grounding-dino-tiny"
# The demo SAM 3 and EdgeTAM take this fraction of --cache-bytes each, so that the demo SAM 2 keeps
# most of it (their features are under 2 MiB an image).
DEMO_EXTRA_CACHE_SHARE = "0.05"


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


def demo_extra_specs(settings, taken: set[str] = frozenset()) -> list[ModelSpec]:
    """With --demo-weights DIR: the demo SAM 3 and EdgeTAM, named by their kinds (`sam3`, `edgetam`),
    except where a model of that name is `taken` (given with --model), and only where those kinds run
    (in process, fp32: not with --backend triton or --dtype fp16/bf16). `labelgate serve` lists them
    after every other model, so that they are the default of no capability another model has.
    `default_specs` has written them."""
    if not settings.demo_weights or settings.backend != "torch" or settings.dtype != "fp32":
        return []
    return [ModelSpec(kind, kind, str(path), {"cache_share": DEMO_EXTRA_CACHE_SHARE})
            for kind, path in extra_demo_paths(settings.demo_weights).items() if kind not in taken]
