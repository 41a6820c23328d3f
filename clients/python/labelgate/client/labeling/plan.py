"""What a job asks the server for each image: the models it resolved from ListModels, and one
PromptTask per distinct (prompt, settings) of the ontology, each with the key of its stored result."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from labelgate.client.labeling.keys import prompt_key
from labelgate.client.labeling.ontology import Ontology
from labelgate.client.results import ModelInfo

PROMPT_SEGMENT, DETECT, SEGMENT_CONCEPTS = "segment_prompts", "detect", "segment_concepts"


@dataclass(frozen=True)
class ModelChoice:
    """segmenter: the SAM 2 (or SAM 3) model; detector: Grounding DINO ("" with SAM 3);
    versions: name -> weights version, for provenance and keys."""

    segmenter: str
    detector: str
    concepts: bool
    versions: dict


@dataclass(frozen=True)
class PromptTask:
    key: str
    text: str  # a Grounding DINO / SAM 3 phrase ending in " ."
    call: str  # "segment" or "detect"
    box_threshold: float
    text_threshold: float
    model: str
    detector_model: str


def choose_models(models: Sequence[ModelInfo], model: str = "", detector: str = "") -> ModelChoice:
    """`model` names a SAM 3 (concepts) or SAM 2 model, `detector` a Grounding DINO; unnamed ones
    are the server's defaults, GD + SAM 2 preferred when the server has both."""
    by_name = {m.name: m for m in models}
    for name in (model, detector):
        if name and name not in by_name:
            raise ValueError(f"the server has no model {name!r}; it serves {sorted(by_name)} (see `labelgate models`)")

    def default(capability: str) -> ModelInfo | None:
        able = [m for m in models if capability in m.capabilities]
        return next((m for m in able if m.is_default), able[0] if able else None)

    chosen = by_name[model] if model else default(PROMPT_SEGMENT) or default(SEGMENT_CONCEPTS)
    if chosen is None:
        raise ValueError("the server serves no segmentation model (if it is still loading its models, try again once it is ready)")
    if SEGMENT_CONCEPTS in chosen.capabilities:
        return ModelChoice(chosen.name, "", True, {chosen.name: chosen.version})
    if PROMPT_SEGMENT not in chosen.capabilities:
        raise ValueError(f"model {chosen.name!r} cannot segment ({chosen.kind}); name a SAM 2 or SAM 3 model")
    finder = by_name[detector] if detector else default(DETECT)
    if finder is None or DETECT not in finder.capabilities:
        raise ValueError("text prompts with SAM 2 need a Grounding DINO model; the server serves none"
                         if finder is None else f"model {finder.name!r} is not a detector ({finder.kind})")
    return ModelChoice(chosen.name, finder.name, False, {chosen.name: chosen.version, finder.name: finder.version})


def prompt_tasks(ontology: Ontology, models: ModelChoice) -> dict[tuple[str, str], PromptTask]:
    """(class name, prompt) -> its task. Boxes-only classes with GD + SAM 2 only run the detector."""
    tasks = {}
    for cls in ontology.classes:
        call = "detect" if cls.output == "boxes" and not models.concepts else "segment"
        model = models.detector if call == "detect" else models.segmenter
        detector = models.detector if call == "segment" else ""
        for prompt in cls.prompts:
            request = {"text": f"{prompt} .", "call": call, "box_threshold": cls.box_threshold,
                       "text_threshold": cls.text_threshold,
                       "model": f"{model}@{models.versions[model]}",
                       "detector_model": f"{detector}@{models.versions[detector]}" if detector else ""}
            tasks[(cls.name, prompt)] = PromptTask(prompt_key(request), request["text"], call, cls.box_threshold,
                                                   cls.text_threshold, model, detector)
    return tasks
