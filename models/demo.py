"""Small random-weight checkpoints in the official formats, for offline demos and tests.

The architectures are the real ones (sam2's Hiera SAM 2, transformers' Grounding DINO, SAM 3 and
EdgeTAM), just shrunk; the files load through exactly the code that loads official weights. Masks
and boxes from them are meaningless.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Callable

SAM2_DEMO_CONFIG = "configs/sam2.1/sam2.1_hiera_t.yaml"
# The smallest SAM 2 seen to work: 256 px input, one block per Hiera stage.
SAM2_DEMO_OVERRIDES = (
    "++model.image_size=256",
    "++model.image_encoder.trunk.stages=[1,1,1,1]",
    "++model.memory_attention.num_layers=1",
)

SAM2_DEMO_FILENAME = "sam2_demo.pt"
GROUNDING_DINO_DEMO_DIRNAME = "grounding_dino_demo"
# Served next to the default pair (by kind: sam3, edgetam); models/sam3/demo.py and models/edgetam/demo.py.
SAM3_DEMO_DIRNAME = "sam3_demo"
EDGETAM_DEMO_DIRNAME = "edgetam_demo"

# Token ids Grounding DINO hard-codes: [CLS] 101, [SEP] 102, "." 1012, "?" 1029.
_SPECIAL_IDS = {0: "[PAD]", 100: "[UNK]", 101: "[CLS]", 102: "[SEP]", 103: "[MASK]", 1012: ".", 1029: "?"}
DEMO_WORDS = (
    "a an the cat dog car person bird tree sky road house window door chair table cup bottle "
    "phone book bag shoe hat ball box light sign wall floor red green blue black white big small sun grass"
).split()


def write_sam2_demo_checkpoint(path: Path, seed: int = 0, config: str = SAM2_DEMO_CONFIG,
                               overrides: tuple[str, ...] = SAM2_DEMO_OVERRIDES) -> Path:
    """A random-weight SAM 2.1 hiera (shrunk; or any bundled `config`) as `{'model': state_dict}`."""
    import torch
    from sam2.build_sam import build_sam2

    torch.manual_seed(seed)
    model = build_sam2(config, None, device="cpu", hydra_overrides_extra=list(overrides))
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": model.state_dict()}, path)
    return path


def _demo_vocab() -> dict[str, int]:
    vocab = [f"[unused{i}]" for i in range(1100)]
    for index, token in _SPECIAL_IDS.items():
        vocab[index] = token
    free = [i for i in range(1, 1100) if i not in _SPECIAL_IDS]
    for index, word in zip(free, DEMO_WORDS):
        vocab[index] = word
    return {token: index for index, token in enumerate(vocab)}


def write_grounding_dino_demo_model(directory: Path, seed: int = 0) -> Path:
    """A random-weight Grounding DINO (tiny Swin + 1-layer BERT) as a `save_pretrained` directory."""
    import torch
    from transformers import (
        BertConfig,
        BertTokenizer,
        GroundingDinoConfig,
        GroundingDinoForObjectDetection,
        GroundingDinoImageProcessor,
        GroundingDinoProcessor,
        SwinConfig,
    )

    torch.manual_seed(seed)
    directory.mkdir(parents=True, exist_ok=True)
    backbone = SwinConfig(
        embed_dim=32, depths=[1, 1, 1, 1], num_heads=[1, 2, 4, 8], out_features=["stage2", "stage3", "stage4"]
    )
    text = BertConfig(hidden_size=64, num_hidden_layers=1, num_attention_heads=2, intermediate_size=128, vocab_size=1100)
    config = GroundingDinoConfig(
        backbone_config=backbone,
        text_config=text,
        d_model=64,
        encoder_layers=1,
        decoder_layers=2,
        num_queries=30,
        encoder_ffn_dim=128,
        decoder_ffn_dim=128,
    )
    model = GroundingDinoForObjectDetection(config)
    model.save_pretrained(directory)
    tokenizer = BertTokenizer(vocab=_demo_vocab(), do_lower_case=True)
    image_processor = GroundingDinoImageProcessor(size={"shortest_edge": 320, "longest_edge": 480})
    GroundingDinoProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(directory)
    (directory / "labelgate-demo.json").write_text(json.dumps({"random_weights": True, "seed": seed}))
    return directory


def demo_paths(directory: Path | str) -> tuple[Path, Path]:
    """(SAM 2 checkpoint, Grounding DINO directory) of the demo weights in `directory`: the default pair."""
    directory = Path(directory)
    return directory / SAM2_DEMO_FILENAME, directory / GROUNDING_DINO_DEMO_DIRNAME


def extra_demo_paths(directory: Path | str) -> dict[str, Path]:
    """The demo models served next to the default pair, by kind: SAM 3 and EdgeTAM directories."""
    directory = Path(directory)
    return {"sam3": directory / SAM3_DEMO_DIRNAME, "edgetam": directory / EDGETAM_DEMO_DIRNAME}


def demo_present(directory: Path | str) -> dict[Path, bool]:
    """Whether each demo model (the pair, then the extras) is complete in `directory`."""
    sam2, gdino = demo_paths(directory)
    present = {sam2: sam2.is_file()}
    for path in (gdino, *extra_demo_paths(directory).values()):
        present[path] = (path / "config.json").is_file() and (path / "model.safetensors").is_file()
    sam3 = extra_demo_paths(directory)["sam3"]
    if present[sam3]:  # one written before the demo had SAM 3's tracker takes no clicks: write it again
        from labelgate.models.sam3.tracker import has_tracker

        try:
            present[sam3] = has_tracker(sam3)
        except ValueError:  # a config.json cut short
            present[sam3] = False
    return present


def _model_writers(seed: int) -> dict[str, Callable[[Path], Path]]:
    from labelgate.models.edgetam.demo import write_edgetam_demo_model
    from labelgate.models.sam3.demo import write_sam3_demo_model

    return {
        GROUNDING_DINO_DEMO_DIRNAME: lambda path: write_grounding_dino_demo_model(path, seed=seed),
        SAM3_DEMO_DIRNAME: lambda path: write_sam3_demo_model(path, seed=seed),
        EDGETAM_DEMO_DIRNAME: lambda path: write_edgetam_demo_model(path, seed=seed),
    }


def ensure_demo_weights(directory: Path | str, seed: int = 0) -> tuple[Path, Path]:
    """Write the random-weight demo models (the pair and the extras) into `directory` unless already
    there; return `demo_paths(directory)`. Each is written under a temporary name and renamed into
    place, so an interrupted run never leaves a half-written model that looks present."""
    directory = Path(directory)
    present = demo_present(directory)
    sam2, gdino = demo_paths(directory)
    directory.mkdir(parents=True, exist_ok=True)
    suffix = f".part-{os.getpid()}"
    if not present[sam2]:
        part = sam2.with_name(sam2.name + suffix)
        try:
            write_sam2_demo_checkpoint(part, seed=seed)
            os.replace(part, sam2)
        finally:
            part.unlink(missing_ok=True)
    missing = [path for path, ok in present.items() if not ok and path != sam2]
    writers = _model_writers(seed) if missing else {}
    for path in missing:
        part = path.with_name(path.name + suffix)
        try:
            writers[path.name](part)
            _install_directory(part, path)
        finally:
            shutil.rmtree(part, ignore_errors=True)
    return sam2, gdino


def _install_directory(part: Path, path: Path) -> None:
    """Rename a complete `part` into place, over an incomplete earlier attempt. Where another
    process installed its copy first (servers started together), that copy is kept."""
    if path.exists() and not demo_present(path.parent)[path]:
        shutil.rmtree(path, ignore_errors=True)
    try:
        os.replace(part, path)
    except OSError:
        if not demo_present(path.parent)[path]:
            raise
