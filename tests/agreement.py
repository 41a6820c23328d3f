"""Comparisons of a result against its upstream reference that hold on any CPU: within the tolerances
of tests/tolerances.py, and robust where those tolerances straddle a threshold (a mask pixel whose
logit is within tolerance of 0, a detection whose score is within tolerance of the box threshold)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Sequence

import numpy as np
import pytest

from tolerances import (
    GDINO_DEMO_DEPTH,
    GDINO_DEMO_PROPOSAL_DEPTH,
    reordering_tolerance,
    through_sigmoid,
)

Box = Sequence[float]


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, np.float64), 1e-7, 1 - 1e-7)
    return np.log(p / (1 - p))


# --- SAM 2 ---------------------------------------------------------------------------------------


def mask_logit_tolerance(logits: np.ndarray, depth: float) -> float:
    """How far a mask logit may move between two evaluations, from the largest |logit| of the mask."""
    return reordering_tolerance(float(np.abs(logits).max()), depth)


def assert_mask_agrees(mask: np.ndarray, logits: np.ndarray, depth: float) -> None:
    """`mask` equals `logits > 0` (SAM 2's mask threshold) on every pixel whose reference logit is
    farther from 0 than the tolerance; pixels closer to 0 may go either way."""
    tolerance = mask_logit_tolerance(logits, depth)
    decided = np.abs(logits) > tolerance
    wrong = int((mask[decided] != (logits[decided] > 0)).sum())
    assert wrong == 0, f"{wrong} pixels differ whose |logit| > {tolerance:.3g} (undecided: {int((~decided).sum())})"


def sam2_score_tolerance(score: float, depth: float) -> float:
    """SAM 2.1's mask scores are sigmoid(IoU head): the head's output moves by reordering_tolerance of
    its magnitude (at least 1: the LayerNorm-ed activations feeding it), the score by a quarter of that."""
    return through_sigmoid(reordering_tolerance(max(1.0, abs(float(_logit(score)))), depth))


def assert_score_agrees(score: float, expected: float, depth: float) -> None:
    assert score == pytest.approx(float(expected), abs=sam2_score_tolerance(float(expected), depth))


# --- Grounding DINO ------------------------------------------------------------------------------


@dataclass(frozen=True)
class GroundingRun:
    """One image and caption through transformers' GroundingDinoForObjectDetection: every query before
    thresholds, and how far each value may move under other kernels."""

    processor: object
    outputs: object
    input_ids: object
    image_hw: tuple[int, int]

    def every_query(self, text_threshold: float) -> dict:
        """The processor's post-processing with no box threshold: scores, boxes, text_labels per query."""
        return self.processor.post_process_grounded_object_detection(
            self.outputs, self.input_ids, threshold=-1.0, text_threshold=text_threshold, target_sizes=[self.image_hw]
        )[0]

    @cached_property
    def token_probs(self) -> np.ndarray:
        return 1 / (1 + np.exp(-self.outputs.logits[0].double().numpy()))

    @cached_property
    def proposal_logits(self) -> np.ndarray:
        """The encoder's proposal logits, descending: query q is proposal q of this order (top-k)."""
        return np.sort(self.outputs.enc_outputs_class[0].max(-1)[0].double().numpy())[::-1]

    @cached_property
    def score_tolerance(self) -> float:
        logits = self.outputs.logits.numpy()
        return through_sigmoid(reordering_tolerance(float(np.abs(logits[np.isfinite(logits)]).max()), GDINO_DEMO_DEPTH))

    @cached_property
    def box_tolerance(self) -> float:
        """Pixels. Boxes are sigmoid(z) of (cx, cy, w, h); a corner cx -/+ w/2 moves by at most 1.5 times
        one coordinate's move, times the image side."""
        z = float(np.abs(_logit(self.outputs.pred_boxes.numpy())).max())
        return 1.5 * through_sigmoid(reordering_tolerance(z, GDINO_DEMO_DEPTH)) * max(self.image_hw)

    @cached_property
    def proposal_tolerance(self) -> float:
        return reordering_tolerance(float(np.abs(self.proposal_logits).max()), GDINO_DEMO_PROPOSAL_DEPTH)

    def swappable(self, a: int, b: int) -> bool:
        """Whether queries a and b may come out in either order: their proposal logits are within
        tolerance of each other (each may move by proposal_tolerance)."""
        return abs(self.proposal_logits[a] - self.proposal_logits[b]) <= 2 * self.proposal_tolerance

    @property
    def queries_are_determined(self) -> bool:
        """False when the last query's proposal and the first left out are within tolerance: then
        another evaluation may pick another query, which changes every query through self-attention."""
        queries = self.outputs.logits.shape[1]
        return bool(self.proposal_logits[queries - 1] - self.proposal_logits[queries] > 2 * self.proposal_tolerance)


def grounding_run(processor, model, image: np.ndarray, caption: str, size: tuple[int, int] | None = None) -> GroundingRun:
    """`image` with `caption` through transformers alone; `size` (height, width) resizes exactly (what a
    fixed-size exported graph takes), otherwise the processor's own rule."""
    import torch

    kwargs = {"size": {"height": size[0], "width": size[1]}} if size else {}
    inputs = processor(images=image, text=caption, return_tensors="pt", **kwargs)
    with torch.inference_mode():
        outputs = model(**inputs)
    return GroundingRun(processor, outputs, inputs["input_ids"], tuple(image.shape[:2]))


def assert_detections_agree(got: Sequence[tuple[Box, float, str]], run: GroundingRun, box_threshold: float,
                            text_threshold: float) -> None:
    """`got` (box in pixels, score, label per detection, in the order given) is what transformers'
    post-processing keeps of `run` at these thresholds, within tolerance:

    - every query scoring above box_threshold + tolerance is there, and nothing scoring below
      box_threshold - tolerance; queries in between may be either;
    - boxes and scores within tolerance; labels equal unless one of the query's token probabilities
      is within tolerance of text_threshold;
    - in query order, except queries whose proposals are within tolerance of each other.

    Skips the test when the reference's choice of queries is itself within tolerance (see
    GroundingRun.queries_are_determined): then there is nothing to compare.
    """
    if not run.queries_are_determined:
        queries = run.outputs.logits.shape[1]
        gap = run.proposal_logits[queries - 1] - run.proposal_logits[queries]
        pytest.skip(f"the reference's query choice is tied within tolerance (proposal gap {gap:.3g} <= 2 x "
                    f"{run.proposal_tolerance:.3g}): nothing to compare; pick another image")
    every = run.every_query(text_threshold)
    scores, boxes, labels = every["scores"].double().numpy(), every["boxes"].double().numpy(), list(every["text_labels"])
    score_tol, box_tol = run.score_tolerance, run.box_tolerance
    candidates = [q for q in range(len(scores)) if scores[q] > box_threshold - score_tol]
    required = {q for q in candidates if scores[q] > box_threshold + score_tol}

    matched: list[int] = []
    for box, score, label in got:
        near = [q for q in candidates if q not in matched and np.abs(boxes[q] - np.asarray(box, np.float64)).max() <= box_tol]
        assert near, f"detection {label!r} {score:.6f} {list(box)} is none of the reference's (box tolerance {box_tol:.3g} px)"
        query = min(near, key=lambda q: np.abs(boxes[q] - np.asarray(box, np.float64)).max())
        assert score == pytest.approx(scores[query], abs=score_tol), f"query {query}"
        label_decided = np.all(np.abs(run.token_probs[query] - text_threshold) > score_tol)
        if label_decided:
            assert label == labels[query], f"query {query}"
        matched.append(query)
    missing = sorted(required - set(matched))
    assert not missing, f"queries {missing} (scores {[round(float(scores[q]), 6) for q in missing]}) are missing"
    for i, a in enumerate(matched):
        for b in matched[i + 1:]:
            assert a < b or run.swappable(a, b), f"queries {a} and {b} out of order"
