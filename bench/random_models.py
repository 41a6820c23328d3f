"""Model directories the benchmark writes itself, offline: the real architectures at their default
(official) sizes with random weights, as transformers `save_pretrained` directories loading through
the code that loads the official weights (speed does not depend on the weight values).

The tokenizers are borrowed from the demo models (`labelgate.models.*.demo`), which build them in
memory: their ids are valid ids of the full-size text encoders, and the phrases the bench sends are
words of their vocabularies."""

from __future__ import annotations

from pathlib import Path

from labelgate.models.edgetam.demo import write_edgetam_demo_model
from labelgate.models.sam3.demo import write_sam3_demo_model

DONE_MARKER = "labelgate-bench.json"  # written last: a directory without it is a write that did not finish


def _ensure(directory: Path, write) -> Path:
    import json
    import shutil

    if (directory / DONE_MARKER).is_file():
        return directory
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    write(directory)
    (directory / DONE_MARKER).write_text(json.dumps({"random_weights": True, "seed": 0}))
    return directory


def ensure_edgetam(work: Path) -> Path:
    """EdgeTAM (RepViT-M1 + SAM 2 decoder) at 1024 px, with the Sam2Processor transformers pairs it with."""

    def write(directory: Path) -> None:
        import torch
        from transformers import EdgeTamModel, Sam2ImageProcessor, Sam2Processor

        from labelgate.models.edgetam.config import edgetam_config

        torch.manual_seed(0)
        EdgeTamModel(edgetam_config()).save_pretrained(directory)
        Sam2Processor(image_processor=Sam2ImageProcessor()).save_pretrained(directory)  # 1024 px

    return _ensure(work / "edgetam-random", write)


def ensure_sam3(work: Path) -> Path:
    """SAM 3 of the default `Sam3Config()` (the official sizes: 1008 px ViT, 200 queries), with the
    demo SAM 3's in-memory CLIP tokenizer."""

    def write(directory: Path) -> None:
        import torch
        from transformers import Sam3Config, Sam3ImageProcessor, Sam3Model, Sam3Processor

        tokenizer = Sam3Processor.from_pretrained(ensure_sam3_demo(work)).tokenizer
        torch.manual_seed(0)
        Sam3Model(Sam3Config()).save_pretrained(directory)
        Sam3Processor(image_processor=Sam3ImageProcessor(), tokenizer=tokenizer).save_pretrained(directory)

    return _ensure(work / "sam3-random", write)


def spread_detector_scores(model) -> None:
    """Random weights give Grounding DINO logits of about sqrt(d_model) standard deviation: nearly every
    one of its boxes scores 1.0, and no threshold picks a few. Scaling the decoder's output LayerNorm
    (which feeds only the class and box heads) by 1/sqrt(d_model) spreads the scores below 1, as
    trained weights' are, so that a threshold keeps a chosen number of boxes. Values change, not the
    computation."""
    import torch

    norm = model.model.decoder.layer_norm
    with torch.no_grad():
        for parameter in (norm.weight, norm.bias):
            parameter.mul_(model.config.d_model ** -0.5)


def ensure_grounding_dino_tiny(work: Path, demo_gdino: Path) -> Path:
    """Grounding DINO tiny (`GroundingDinoConfig()`: Swin-T, BERT-base, 900 queries) at the default
    800x1333 processing size, with the demo Grounding DINO's tokenizer; scores spread out."""

    def write(directory: Path) -> None:
        import torch
        from transformers import (
            GroundingDinoConfig,
            GroundingDinoForObjectDetection,
            GroundingDinoImageProcessor,
            GroundingDinoProcessor,
        )

        tokenizer = GroundingDinoProcessor.from_pretrained(demo_gdino).tokenizer
        torch.manual_seed(0)
        model = GroundingDinoForObjectDetection(GroundingDinoConfig())
        spread_detector_scores(model)
        model.save_pretrained(directory)
        GroundingDinoProcessor(image_processor=GroundingDinoImageProcessor(), tokenizer=tokenizer).save_pretrained(directory)

    return _ensure(work / "grounding-dino-tiny-random", write)


def ensure_grounding_dino_demo_spread(work: Path, demo_gdino: Path) -> Path:
    """The demo Grounding DINO with its scores spread out (see `spread_detector_scores`)."""

    def write(directory: Path) -> None:
        from transformers import GroundingDinoForObjectDetection, GroundingDinoProcessor

        model = GroundingDinoForObjectDetection.from_pretrained(demo_gdino)
        spread_detector_scores(model)
        model.save_pretrained(directory)
        GroundingDinoProcessor.from_pretrained(demo_gdino).save_pretrained(directory)

    return _ensure(work / "grounding-dino-demo-spread", write)


def ensure_edgetam_demo(work: Path) -> Path:
    return _ensure(work / "edgetam-demo", write_edgetam_demo_model)


def ensure_sam3_demo(work: Path) -> Path:
    return _ensure(work / "sam3-demo-model", write_sam3_demo_model)
