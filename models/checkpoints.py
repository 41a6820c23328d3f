"""The official checkpoints labelgate knows how to fetch, by name (`labelgate weights list`).

SAM 2.1 checkpoints are the `{'model': state_dict}` .pt files of facebookresearch/sam2
(`checkpoints/download_ckpts.sh`), each paired with the config bundled in the `sam2` package.
Grounding DINO, SAM 3 and EdgeTAM are transformers `save_pretrained` repositories on the Hugging Face
Hub (IDEA-Research/grounding-dino-*, facebook/sam3, which is gated, and yonigozlan/EdgeTAM-hf).

Nothing here touches the network or imports torch; `labelgate.models.weights` does the fetching.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Union

SAM2_BASE_URL = "https://dl.fbaipublicfiles.com/segment_anything_2/092824"
HF_ENDPOINT = "https://huggingface.co"  # the default; huggingface_hub honours $HF_ENDPOINT at fetch time


@dataclass(frozen=True)
class Sam2Spec:
    """A SAM 2 checkpoint: one .pt file, built with a config bundled in the `sam2` package."""

    name: str
    url: str
    filename: str
    config: str  # e.g. "configs/sam2.1/sam2.1_hiera_t.yaml", resolved by sam2's hydra search path
    overrides: tuple[str, ...] = ()  # hydra overrides; empty for the official checkpoints
    description: str = ""

    kind = "sam2"

    @property
    def source(self) -> str:
        return self.url

    def local_path(self, weights_dir: Path | str) -> Path:
        """Where `fetch` puts this checkpoint: `<weights_dir>/<filename>`."""
        return Path(weights_dir) / self.filename


@dataclass(frozen=True)
class HubSpec:
    """A Hugging Face Hub repository in transformers `save_pretrained` format: Grounding DINO, SAM 3
    or EdgeTAM (`kind`; `labelgate.models.weights.HUB_LAYOUTS` says what each must hold)."""

    name: str
    repo_id: str
    kind: str  # grounding-dino, sam3, edgetam
    revision: str | None = None  # None: the repository's default branch
    gated: bool = False  # the Hub serves it only to accounts that accepted its license, with a token
    description: str = ""

    @property
    def source(self) -> str:
        return f"{HF_ENDPOINT}/{self.repo_id}"

    def local_path(self, weights_dir: Path | str) -> Path:
        """Where `fetch` puts this model: the directory `<weights_dir>/<name>`."""
        return Path(weights_dir) / self.name


Spec = Union[Sam2Spec, HubSpec]


def _sam2(size: str, short: str, description: str) -> Sam2Spec:
    filename = f"sam2.1_hiera_{size}.pt"
    return Sam2Spec(
        name=f"sam2.1-hiera-{size.replace('_', '-')}",
        url=f"{SAM2_BASE_URL}/{filename}",
        filename=filename,
        config=f"configs/sam2.1/sam2.1_hiera_{short}.yaml",
        description=description,
    )


SAM2_SPECS: tuple[Sam2Spec, ...] = (
    _sam2("tiny", "t", "SAM 2.1 Hiera-T, 39M params, ~150 MB"),
    _sam2("small", "s", "SAM 2.1 Hiera-S, 46M params, ~180 MB"),
    _sam2("base_plus", "b+", "SAM 2.1 Hiera-B+, 81M params, ~310 MB"),
    _sam2("large", "l", "SAM 2.1 Hiera-L, 224M params, ~860 MB"),
)

def _grounding_dino(size: str, description: str) -> HubSpec:
    return HubSpec(f"grounding-dino-{size}", f"IDEA-Research/grounding-dino-{size}", "grounding-dino", description=description)


GROUNDING_DINO_SPECS: tuple[HubSpec, ...] = (
    _grounding_dino("tiny", "Swin-T backbone, ~690 MB"),
    _grounding_dino("base", "Swin-B backbone, ~930 MB"),
)

SAM3_SPEC = HubSpec("sam3", "facebook/sam3", "sam3", gated=True,
                    description="SAM 3: concepts and clicks, ~3.4 GB (gated: accept its license, set HF_TOKEN)")
EDGETAM_SPEC = HubSpec("edgetam", "yonigozlan/EdgeTAM-hf", "edgetam", description="EdgeTAM: clicks, RepViT-M1 encoder for CPUs")

SPECS: dict[str, Spec] = {spec.name: spec for spec in (*SAM2_SPECS, *GROUNDING_DINO_SPECS, SAM3_SPEC, EDGETAM_SPEC)}

DEFAULT_SAM2 = "sam2.1-hiera-tiny"
DEFAULT_GROUNDING_DINO = "grounding-dino-tiny"


def names() -> list[str]:
    return list(SPECS)


def get(name: str) -> Spec:
    """The spec of a known checkpoint; KeyError naming the known ones otherwise."""
    try:
        return SPECS[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; known: {', '.join(SPECS)}") from None
