"""The concept section (`labelgate bench --sections concepts`): SAM 3 against Grounding DINO + SAM 2,
through one server that serves all three, on the same images.

Each round sends a new image. SAM 3 gets a first phrase on it (the vision backbone runs), a second
phrase on the embedded image, then all the phrases in one call; Grounding DINO + SAM 2 get the image
embedded (untimed), then the same phrases in one call, with the box threshold that keeps as many boxes
as SAM 3 found instances in the warm-up round. The two groups take turns going first."""

from __future__ import annotations

import itertools
import statistics
import time

import numpy as np

from labelgate.bench.images import jpeg, scene
from labelgate.bench.rows import Row
from labelgate.bench.setup import SAM3_NAME, Plan
from labelgate.bench.timing import SETTLE_S, median, timed
from labelgate.v1 import labelgate_pb2 as pb

FIRST_PHRASE, SECOND_PHRASE = "cat", "dog"
PHRASES = ("cat", "dog", "car")  # words of both demo tokenizers the bench's models use
TEXT = " . ".join(PHRASES) + " ."
SAMPLE_NAMES = ("SAM 3 first phrase, new image", "SAM 3 second phrase, embedded image", "SAM 3 phrases in one call",
                "Grounding DINO + SAM 2 phrases in one call")
# Random-weight SAM 3 (default config) scores every query about 0.22-0.28: this keeps a few per phrase.
# The demo SAM 3 scores lower still; its tests keep every instance with 0.001.
SAM3_THRESHOLD_FULL, SAM3_THRESHOLD_QUICK = 0.265, 0.001
DETECTOR_PROBE_THRESHOLD = 0.01  # low enough to see many of Grounding DINO's boxes (and to keep every box's label)
CALL_TIMEOUT_S = 900  # SAM 3's vision backbone takes about 40 s on 2 cores at its real size
FIRST_SEED = 100_000  # images no other section sends


class ConceptScenarios:
    def __init__(self, plan: Plan, stub, quick: bool):
        self.plan, self.stub = plan, stub
        self.width, self.height = plan.image_size
        self.sam3_threshold = SAM3_THRESHOLD_QUICK if quick else SAM3_THRESHOLD_FULL
        self.wanted = 1  # boxes Grounding DINO is to keep on each image; the warm-up round sets it
        self._seeds = itertools.count(FIRST_SEED)
        self.samples: dict[str, list[float]] = {}
        self.objects: dict[str, list[int]] = {}  # objects per call, by side

    def _new_image(self) -> bytes:
        return jpeg(scene(next(self._seeds), self.width, self.height))

    def _segment(self, image: pb.Image, text: str, **fields) -> pb.SegmentResponse:
        return self.stub.Segment(pb.SegmentRequest(image=image, text=text, **fields), timeout=CALL_TIMEOUT_S)

    def _sam3(self, image: pb.Image, text: str) -> pb.SegmentResponse:
        return self._segment(image, text, model=SAM3_NAME, box_threshold=self.sam3_threshold)

    def _detector_threshold(self, image: pb.Image) -> float:
        """Untimed: the box threshold at which Grounding DINO keeps `self.wanted` boxes on `image` (as
        many objects as SAM 3 gives; random weights' scores shift from image to image)."""
        probe = pb.DetectRequest(image=image, text=TEXT, box_threshold=DETECTOR_PROBE_THRESHOLD,
                                 text_threshold=DETECTOR_PROBE_THRESHOLD)
        scores = sorted((d.score for d in self.stub.Detect(probe, timeout=CALL_TIMEOUT_S).detections), reverse=True)
        if not scores:
            raise RuntimeError(f"Grounding DINO found nothing for {TEXT!r}: the concept rows would measure nothing")
        # Just below the wanted box's score, as a float32 like the request's: the detector keeps scores above it.
        return float(np.nextafter(np.float32(scores[min(self.wanted, len(scores)) - 1]), np.float32(0)))

    def _timed(self, name: str, call) -> pb.SegmentResponse:
        time.sleep(SETTLE_S)
        seconds, response = timed(call)
        self.samples.setdefault(name, []).append(seconds)
        self.objects.setdefault(name, []).append(len(response.objects))
        return response

    def _sam3_group(self, data: bytes) -> None:
        first_name, second_name, all_name, _ = SAMPLE_NAMES
        first = self._timed(first_name, lambda: self._sam3(pb.Image(data=data), FIRST_PHRASE))
        embedded = pb.Image(image_id=first.image_id)
        self._timed(second_name, lambda: self._sam3(embedded, SECOND_PHRASE))
        self._timed(all_name, lambda: self._sam3(embedded, TEXT))

    def _detector_group(self, data: bytes) -> None:
        image = pb.Image(image_id=self.stub.Embed(pb.EmbedRequest(image=pb.Image(data=data)), timeout=CALL_TIMEOUT_S).image_id)
        threshold = self._detector_threshold(image)
        self._timed(SAMPLE_NAMES[3], lambda: self._segment(image, TEXT, box_threshold=threshold,
                                                           text_threshold=DETECTOR_PROBE_THRESHOLD))

    def _warm_up(self, data: bytes) -> None:
        """Untimed first calls (they allocate), which also set how many boxes Grounding DINO is to keep:
        as many as SAM 3 gives instances for the phrases, so that both sides encode as many masks."""
        response = self._sam3(pb.Image(data=data), FIRST_PHRASE)
        self.wanted = max(1, len(self._sam3(pb.Image(image_id=response.image_id), TEXT).objects))
        self._detector_group(data)
        self.samples.clear()
        self.objects.clear()

    def concept_rows(self) -> list[Row]:
        self._warm_up(self._new_image())
        for round_index in range(self.plan.concept_rounds):
            data = self._new_image()
            groups = [self._sam3_group, self._detector_group]
            for group in reversed(groups) if round_index % 2 else groups:
                group(data)
        first, second, sam3_all, detector_all = (median(self.samples[name]) for name in SAMPLE_NAMES)
        sam3_objects, detector_objects = (statistics.median(self.objects[name]) for name in SAMPLE_NAMES[2:])
        return [
            Row("concepts_vs_detector", "Concepts in one call (SAM 3)",
                f"p50 SAM 3 Segment(text, {len(PHRASES)} phrases) / p50 Grounding DINO + SAM 2 Segment(text), the same "
                f"phrases, on an embedded image ({sam3_objects:g} / {detector_objects:g} objects)",
                sam3_all / detector_all, None, {"SAM 3": sam3_all, "Grounding DINO + SAM 2": detector_all}),
            Row("concept_second_phrase", "Second concept (SAM 3)",
                "p50 SAM 3 Segment(text, one phrase) on an embedded image / p50 the first phrase on a new image "
                "(vision features reused)", second / first, None,
                {"second phrase, embedded image": second, "first phrase, new image": first}),
        ]
