"""From Label Studio tasks and prompts to Label Studio predictions, through labelgate.

- Interactive (`context.result` present, one task): clicks and/or boxes -> one SAM 2 call ->
  brush (and polygon) regions, a further click refining the previous mask (refinement.py); a
  TextArea prompt -> Grounding DINO + SAM 2 -> rectangles + masks; boxes with an exemplar label ->
  the concept model -> a mask for every similar object.
- Batch (no context, any number of tasks): every image is embedded first (concurrently, so
  labelgate batches the encoder), then Grounding DINO + SAM 2 run with the project's labels as
  the caption. One failed task never fails the others.
- With a concept model (kind sam3), text prompts and batches go to it instead: every instance of
  each label, with its box and mask.
- Video (a <Video> with <VideoRectangle>): the context's boxes are tracked forward from their last
  keyframes (video.py, video_tracker.py).
- Pre-embedding (`pre_embed_in_background`): images of tasks as they are imported, so later
  clicks and batch runs find their features cached in labelgate.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

import grpc
from labelgate.client import Client, LabelgateClientError

from labelgate.label_studio.label_config import BRUSH, POLYGON, RECTANGLE, LabelConfig, parse_label_config
from labelgate.label_studio.metrics import BackendMetrics
from labelgate.label_studio.prompts import InteractivePrompt, LabeledBox, prompt_from_context
from labelgate.label_studio.refinement import RefineMemory
from labelgate.label_studio.regions import brush_region, polygon_regions, rectangle_region
from labelgate.label_studio.task_images import TaskImages
from labelgate.label_studio.task_videos import DEFAULT_BUDGET_BYTES, TaskVideos
from labelgate.label_studio.video import video_tracks
from labelgate.label_studio.video_tracker import track_regions

log = logging.getLogger(__name__)

_MODEL_VERSION_TTL_S = 30.0


class PredictError(ValueError):
    """The request cannot be answered with this labeling config; the message says why."""


@dataclass(frozen=True)
class PredictorOptions:
    box_threshold: float = 0.0  # 0 = labelgate's default
    text_threshold: float = 0.0
    workers: int = 8  # concurrent labelgate calls in batch mode and for pre-embedding
    sam2_model: str = ""  # "" = labelgate's default model
    detector_model: str = ""
    concept_model: str = ""  # a labelgate model of kind sam3 for text, batches and exemplars; "" = none
    concept_threshold: float = 0.0  # its instance score threshold, 0 = labelgate's default
    max_instances: int = 0  # per concept request, 0 = labelgate's default
    exemplar_labels: tuple[str, ...] = ()  # RectangleLabels labels whose boxes are exemplars
    video_frames: int = 0  # frames a video box is tracked past its last keyframe, 0 = to the end
    video_cache_bytes: int = DEFAULT_BUDGET_BYTES  # task videos kept for the next tracking request


class Predictor:
    def __init__(self, client: Client, images: TaskImages, options: PredictorOptions, metrics: BackendMetrics):
        self.client = client
        self.images = images
        self.options = options
        self.metrics = metrics
        self._background = ThreadPoolExecutor(max_workers=options.workers, thread_name_prefix="pre-embed")
        self._version: tuple[float, str] | None = None
        self._version_lock = threading.Lock()
        self.refinements = RefineMemory()
        self.videos = TaskVideos(images.fetcher, options.video_cache_bytes)

    def close(self) -> None:
        self._background.shutdown(wait=False, cancel_futures=True)

    # --- model version --------------------------------------------------------------------------

    def model_version(self) -> str:
        """Names the labelgate models this backend uses and their weights, e.g.
        "labelgate:sam2.1_hiera_t@1a2b3c4d+grounding-dino-tiny@5e6f7a8b"; it changes when labelgate
        serves other weights, so Label Studio knows its stored predictions are from another model."""
        with self._version_lock:
            if self._version is None or time.monotonic() - self._version[0] > _MODEL_VERSION_TTL_S:
                models = self.client.list_models()
                chosen = []
                text_model = (("sam3", self.options.concept_model) if self.options.concept_model
                              else ("grounding_dino", self.options.detector_model))
                for kind, name in (("sam2", self.options.sam2_model), text_model):
                    # A named model may be of another kind (clicks on a sam3 or edgetam model).
                    chosen += [m for m in models if (m.name == name if name else m.kind == kind and m.is_default)
                               and m not in chosen][:1]
                self._version = (time.monotonic(), "labelgate:" + "+".join(f"{m.name}@{m.version[:8]}" for m in chosen))
            return self._version[1]

    # --- predictions ----------------------------------------------------------------------------

    def predict(self, tasks: Sequence[Mapping], label_config: str, context: Mapping | None) -> list[dict]:
        """One prediction per task, in order. Interactive mode answers for the first task only."""
        config = parse_label_config(label_config)
        if config.is_video:
            return self.predict_video(tasks, config, context)
        prompt = prompt_from_context(context)
        if prompt is None:
            return self.predict_batch(tasks, config)
        if not tasks:
            raise PredictError("an interactive request needs the task it is for")
        with self.metrics.time("interactive"):
            try:
                prediction = self._prediction(self._interactive_regions(tasks[0], config, prompt))
            except Exception:
                self.metrics.count_tasks("interactive", ok=0, failed=1)
                raise
        self.metrics.count_tasks("interactive", ok=1, failed=0)
        return [prediction]

    def predict_video(self, tasks: Sequence[Mapping], config: LabelConfig, context: Mapping | None) -> list[dict]:
        """The context's video boxes tracked through the first task's video; nothing without a context
        (there is nothing to track from)."""
        if not (context or {}).get("result"):
            return []
        tracks = video_tracks(context)
        if not tasks:
            raise PredictError("an interactive request needs the task it is for")
        if not tracks:
            raise PredictError("nothing to track: draw a box on a frame of the video (its last keyframe enabled)")
        reference, task_id = _image_reference(tasks[0], config)
        with self.metrics.time("video"):
            try:
                track_regions(self.client, self.videos.get(reference, task_id), tracks,
                              frames=self.options.video_frames, model=self.options.sam2_model)
            except Exception:
                self.metrics.count_tasks("video", ok=0, failed=1)
                raise
        self.metrics.count_tasks("video", ok=1, failed=0)
        return [self._prediction([track.result() for track in tracks])]

    def predict_batch(self, tasks: Sequence[Mapping], config: LabelConfig) -> list[dict]:
        # Exemplar labels name a tool, not a class.
        caption = " . ".join(label for label in config.caption_labels if label not in self.options.exemplar_labels)
        if not caption:
            raise PredictError("batch predictions need labels: add <Label value=...> to the BrushLabels, "
                               "RectangleLabels or PolygonLabels of the labeling config")
        with self.metrics.time("batch"), ThreadPoolExecutor(max_workers=self.options.workers) as pool:
            # Detect-only configs need no SAM 2 features, and a concept model encodes the images itself.
            embedded = (list(pool.map(lambda task: self._try(self._embed, task, config), tasks))
                        if config.wants_masks and not self.options.concept_model else [None] * len(tasks))
            outcomes = list(pool.map(
                lambda task, error: error or self._try(self._text_regions, task, config, caption), tasks, embedded))
        version = self.model_version()
        predictions = []
        for task, outcome in zip(tasks, outcomes):
            if isinstance(outcome, Exception):
                # Without a "result" Label Studio stores nothing for the task (and logs this dict),
                # so the next "Retrieve predictions" tries it again.
                log.error("task %s: no prediction: %s", task.get("id"), outcome)
                predictions.append({"error": f"task {task.get('id')}: {outcome}", "model_version": version})
            else:
                predictions.append(self._prediction(outcome, version))
        self.metrics.count_tasks("batch", ok=sum(1 for p in predictions if "result" in p),
                                 failed=sum(1 for p in predictions if "result" not in p))
        return predictions

    def pre_embed_in_background(self, tasks: Sequence[Mapping], label_config: str) -> int:
        """Queues the tasks' images for embedding; returns how many were queued (none when the
        config has no mask control: then SAM 2 never sees the images)."""
        config = parse_label_config(label_config)
        if not config.wants_masks:
            return 0
        for task in tasks:
            self._background.submit(self._pre_embed, task, config)
        return len(tasks)

    # --- the steps --------------------------------------------------------------------------------

    def _pre_embed(self, task: Mapping, config: LabelConfig) -> None:
        error = self._try(self._embed, task, config)
        if error is not None:
            log.warning("task %s: pre-embedding failed: %s", task.get("id"), error)
        self.metrics.pre_embedded.labels(outcome="error" if error else "ok").inc()

    def _embed(self, task: Mapping, config: LabelConfig) -> None:
        reference, task_id = _image_reference(task, config)
        self.images.call(reference, task_id, lambda image: self.client.embed(image, model=self.options.sam2_model))

    def _interactive_regions(self, task: Mapping, config: LabelConfig, prompt: InteractivePrompt) -> list[dict]:
        exemplars = [box for box in prompt.boxes if box.label in self.options.exemplar_labels]
        if exemplars:
            prompt = replace(prompt, boxes=tuple(box for box in prompt.boxes if box not in exemplars))
        regions = self._exemplar_regions(task, config, prompt, exemplars) if exemplars else []
        if prompt.has_geometry:
            return regions + self._geometry_regions(task, config, prompt)
        if prompt.text and not exemplars:
            return self._text_regions(task, config, prompt.text)
        return regions

    def _geometry_regions(self, task: Mapping, config: LabelConfig, prompt: InteractivePrompt) -> list[dict]:
        """Clicks (with the last box, if any) make one object; boxes alone make one object each."""
        _need_masks(config, "clicks and boxes")
        if prompt.points:
            box = prompt.boxes[-1] if prompt.boxes else None
            boxes = [box.box] if box else []
            labels = [prompt.label or (box.label if box else "")]
            # One click is ambiguous: let SAM 2 propose three masks and keep the best, as its authors advise.
            multimask = len(prompt.points) == 1 and box is None
        else:
            boxes, labels, multimask = [b.box for b in prompt.boxes], [b.label for b in prompt.boxes], False
        reference, task_id = _image_reference(task, config)
        session = (reference, self.options.sam2_model, tuple(boxes))
        clicks = tuple(zip(prompt.point_ids, prompt.points))
        refine = self.refinements.previous(session, clicks)
        outcome = ""

        def segment(image):
            nonlocal outcome
            ask = lambda refine: self.client.segment(  # noqa: E731
                image, points=prompt.points, boxes=boxes, multimask=multimask, formats=self._formats(config),
                model=self.options.sam2_model, refine=refine)
            if refine:
                try:
                    outcome, result = "refined", ask(refine)
                    return result
                except LabelgateClientError as error:
                    if error.code != grpc.StatusCode.NOT_FOUND:
                        raise
                    # The mask is evicted (or the image is: then TaskImages sends its bytes, and this tries again).
                    outcome = "expired"
            return ask(None)

        result = self.images.call(reference, task_id, segment)
        if outcome:
            self.metrics.refinements.labels(outcome=outcome).inc()
        _check_size(prompt, result, task_id)
        if len(result.objects) == 1 and result.objects[0].best is not None:
            self.refinements.remember(session, clicks, result.objects[0].best.mask_id)
        regions = []
        for obj, label in zip(result.objects, labels):
            regions += self._mask_regions(config, obj.best, label, result.width, result.height)
        return regions

    def _exemplar_regions(self, task: Mapping, config: LabelConfig, prompt: InteractivePrompt,
                          exemplars: list[LabeledBox]) -> list[dict]:
        """Every object like the exemplar boxes, one concept per exemplar label; the masks get the
        mask label that matches it ("car" or "example car" -> car)."""
        _need_masks(config, "exemplar boxes")
        reference, task_id = _image_reference(task, config)
        regions = []
        for label in dict.fromkeys(box.label for box in exemplars):
            boxes = [box.box for box in exemplars if box.label == label]
            result = self.images.call(reference, task_id, lambda image, boxes=boxes: self.client.segment(
                image, exemplars=boxes, **self._concept_arguments(config)))
            _check_size(prompt, result, task_id)
            for obj in result.objects:
                regions += self._mask_regions(config, obj.best, label, result.width, result.height)
        return regions

    def _text_regions(self, task: Mapping, config: LabelConfig, caption: str) -> list[dict]:
        """Boxes for `caption` as rectangles, and their masks if the config has somewhere to put
        them: from the concept model if there is one, else from Grounding DINO (+ SAM 2)."""
        reference, task_id = _image_reference(task, config)
        rectangles = config.control(RECTANGLE)
        thresholds = dict(box_threshold=self.options.box_threshold, text_threshold=self.options.text_threshold)
        regions = []
        if self.options.concept_model:
            rpc = lambda image: self.client.segment(image, text=caption, **self._concept_arguments(config))  # noqa: E731
        elif config.wants_masks:
            rpc = lambda image: self.client.segment(  # noqa: E731
                image, text=caption, formats=self._formats(config), model=self.options.sam2_model,
                detector_model=self.options.detector_model, **thresholds)
        else:
            found = self.images.call(reference, task_id, lambda image: self.client.detect(
                image, caption, model=self.options.detector_model, **thresholds))
            for detection in found.detections:
                regions.append(rectangle_region(rectangles, detection.box, found.width, found.height,
                                                rectangles.match_label(detection.label), detection.score))
            return regions
        result = self.images.call(reference, task_id, rpc)
        for obj in result.objects:
            if rectangles is not None and obj.prompt_box is not None:
                regions.append(rectangle_region(rectangles, obj.prompt_box, result.width, result.height,
                                                rectangles.match_label(obj.label), obj.detection_score))
            regions += self._mask_regions(config, obj.best, obj.label, result.width, result.height)
        return regions

    def _concept_arguments(self, config: LabelConfig) -> dict:
        return {"model": self.options.concept_model, "box_threshold": self.options.concept_threshold,
                "max_instances": self.options.max_instances, "formats": self._formats(config)}

    def _mask_regions(self, config: LabelConfig, mask, label: str, width: int, height: int) -> list[dict]:
        if mask is None:
            return []
        regions = []
        brush = config.control(BRUSH)
        if brush is not None:
            regions.append(brush_region(brush, mask.to_numpy(), brush.match_label(label), mask.score))
        polygon = config.control(POLYGON)
        if polygon is not None:
            regions += polygon_regions(polygon, mask.polygons, width, height, polygon.match_label(label), mask.score)
        return regions

    def _formats(self, config: LabelConfig) -> list[str]:
        return ["coco_rle"] + (["polygons"] if config.control(POLYGON) is not None else [])

    def _prediction(self, regions: list[dict], version: str | None = None) -> dict:
        scores = [region["score"] for region in regions]
        return {
            "result": regions,
            "score": sum(scores) / len(scores) if scores else 0.0,
            "model_version": version or self.model_version(),
        }

    @staticmethod
    def _try(step, *args):
        """The step's result, or its exception: one task's failure must not stop the others."""
        try:
            return step(*args)
        except Exception as error:  # noqa: BLE001 - reported per task by the caller
            return error


def _need_masks(config: LabelConfig, what: str) -> None:
    if not config.wants_masks:
        raise PredictError(f"{what} are turned into masks: add <BrushLabels> or <PolygonLabels> to the labeling config")


def _check_size(prompt: InteractivePrompt, result, task_id) -> None:
    if prompt.size is not None and prompt.size != (result.width, result.height):
        raise PredictError(
            f"Label Studio shows the image of task {task_id} as {prompt.size[0]} x {prompt.size[1]} pixels but "
            f"it decodes to {result.width} x {result.height}: the clicks would land in the wrong place")


def _image_reference(task: Mapping, config: LabelConfig) -> tuple[str, int | None]:
    data = task.get("data") or {}
    reference = data.get(config.image_key)
    if not reference:
        raise PredictError(f"task {task.get('id')} has no {config.image_key!r} in its data (the labeling config's "
                           f'<{"Video" if config.is_video else "Image"} value="${config.image_key}">)')
    return str(reference), task.get("id")
