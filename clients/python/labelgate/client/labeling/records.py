"""What a dataset labeling job produces for one image, as the job stores it in its manifest and the
exporters read it back (one image at a time: a dataset never has to fit in memory)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class LabeledObject:
    """One instance found on an image.

    class_name: the ontology class it was labeled as; box: x0, y0, x1, y1 in pixels;
    score: the detector's (or SAM 3's) score; prompt: the ontology prompt that found it;
    rle: the mask as COCO RLE {"size": [h, w], "counts": str}, None when the ontology asks for boxes only.
    """

    class_name: str
    box: tuple[float, float, float, float]
    score: float
    prompt: str
    rle: dict | None = None


@dataclass(frozen=True)
class LabeledImage:
    """key: the image's path relative to the dataset root (unique within a dataset; its file name in
    every output); source: where the job read it (absolute path, URL or a Label Studio / CVAT reference);
    content_hash: sha256 of the file's bytes; split: "train" or "val" (deterministic from the key)."""

    key: str
    source: str
    width: int
    height: int
    content_hash: str
    split: str
    objects: tuple[LabeledObject, ...] = ()


@dataclass(frozen=True)
class Provenance:
    """What produced a dataset, written into every output that has room for it.

    models: model name -> weights version, as the server's ListModels reports them;
    ontology_hash: sha256 of the normalised ontology; parameters: the job's other settings."""

    models: dict[str, str]
    ontology_hash: str
    parameters: dict = field(default_factory=dict)
    tool: str = "labelgate"
