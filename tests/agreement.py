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
    UNIT_ROUNDOFF_FP16,
    rounded_inputs_tolerance,
    reordering_tolerance,
    through_sigmoid,
)

Box = Sequence[float]


def fidelity_first(values: Sequence) -> list:
    """Parameters with the first one marked `fidelity`: `make test` reruns that case under another
    kernel set (ATEN_CPU_CAPABILITY=default), the others only once."""
    return [pytest.param(value, marks=pytest.mark.fidelity) if index == 0 else value for index, value in enumerate(values)]


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
    assert mask.shape == logits.shape
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


def sam2_score_tolerance_from_fp16_features(score: float) -> float:
    """A mask score decoded from features stored as float16 against the same decoder on the fp32 ones."""
    return through_sigmoid(rounded_inputs_tolerance(max(1.0, abs(float(_logit(score)))), UNIT_ROUNDOFF_FP16))


# --- Grounding DINO ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Proposals:
    """One image's encoder proposal logits (the max over tokens), descending: query q of the decoder is
    proposal q of this order (transformers takes the top num_queries)."""

    logits: np.ndarray
    num_queries: int

    @classmethod
    def of(cls, enc_outputs_class, num_queries: int) -> "Proposals":
        """From one image's `enc_outputs_class` (proposals x tokens)."""
        return cls(np.sort(enc_outputs_class.max(-1)[0].double().numpy())[::-1], num_queries)

    @cached_property
    def tolerance(self) -> float:
        return reordering_tolerance(float(np.abs(self.logits).max()), GDINO_DEMO_PROPOSAL_DEPTH)

    def swappable(self, a: int, b: int) -> bool:
        """Whether queries a and b may come out in either order: each proposal logit may move by the tolerance."""
        return abs(self.logits[a] - self.logits[b]) <= 2 * self.tolerance

    def skip_unless_determined(self) -> None:
        """Skips the test when the last proposal taken and the first left out are within tolerance:
        another evaluation may then take another query, which changes every query through the
        decoder's self-attention, and there is nothing to compare."""
        gap = self.logits[self.num_queries - 1] - self.logits[self.num_queries]
        if gap <= 2 * self.tolerance:
            pytest.skip(f"the reference's query choice is tied within tolerance (proposal gap {gap:.3g} <= 2 x "
                        f"{self.tolerance:.3g}): nothing to compare; pick another image")


def box_coordinate_tolerance(pred_boxes: np.ndarray) -> float:
    """Normalised (cx, cy, w, h) = sigmoid(z): a quarter of z's move, from the largest |z| of the boxes."""
    return through_sigmoid(reordering_tolerance(float(np.abs(_logit(pred_boxes)).max()), GDINO_DEMO_DEPTH))


def match_queries(proposals: Proposals, expected_boxes: np.ndarray, got_boxes: np.ndarray, tolerance: float) -> list[int]:
    """For each expected query, the got query that is the same one: itself, or one it may have swapped
    places with (Proposals.swappable), whichever box is nearest; asserts that box is within tolerance."""
    taken: set[int] = set()
    order = []
    for q, box in enumerate(expected_boxes):
        candidates = [r for r in range(len(got_boxes)) if r not in taken and (r == q or proposals.swappable(q, r))]
        r = min(candidates, key=lambda r: np.abs(got_boxes[r] - box).max())
        distance = float(np.abs(got_boxes[r] - box).max())
        assert distance <= tolerance, f"query {q}: no box within {tolerance:.3g} (nearest {distance:.3g})"
        taken.add(r)
        order.append(r)
    return order


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
    def proposals(self) -> Proposals:
        return Proposals.of(self.outputs.enc_outputs_class[0], self.outputs.logits.shape[1])

    @cached_property
    def token_probs(self) -> np.ndarray:
        return 1 / (1 + np.exp(-self.outputs.logits[0].double().numpy()))

    @cached_property
    def score_tolerance(self) -> float:
        logits = self.outputs.logits.numpy()
        return through_sigmoid(reordering_tolerance(float(np.abs(logits[np.isfinite(logits)]).max()), GDINO_DEMO_DEPTH))

    @cached_property
    def box_tolerance(self) -> float:
        """Pixels: a corner cx -/+ w/2 moves by at most 1.5 coordinates' moves, times the image side."""
        return 1.5 * box_coordinate_tolerance(self.outputs.pred_boxes.numpy()) * max(self.image_hw)


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

    Skips the test when the reference's choice of queries is itself within tolerance
    (Proposals.skip_unless_determined).
    """
    run.proposals.skip_unless_determined()
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
            assert a < b or run.proposals.swappable(a, b), f"queries {a} and {b} out of order"
