"""The measurements behind each table row, against servers that are already running.

Every row times two things side by side (interleaved round after round) and divides medians.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from labelgate.bench.baseline_server import BaselineProcess
from labelgate.bench.edgetam_vs_sam2 import TARGET as EDGETAM_TARGET
from labelgate.bench.images import click_point, jpeg, object_masks, scene
from labelgate.bench.rows import Row
from labelgate.bench.setup import EDGETAM_NAME, Models, Plan
from labelgate.bench.timing import interleaved, median, throughput
from labelgate.server.launcher import ServerProcess
from labelgate.server.masks import COCO_RLE, encode_mask
from labelgate.server.servicer import mask_to_pb
from labelgate.v1 import labelgate_pb2 as pb

CAPTION = "car . person . dog ."
# Low enough that the random demo Grounding DINO finds a few boxes in every bench image.
BOX_THRESHOLD, TEXT_THRESHOLD = 0.2, 0.2
GRPC_FRAME_BYTES = 5  # the length-prefix gRPC puts before each message
BATCHING_TARGET_CONCURRENCY = 8


@dataclass
class Servers:
    batched: ServerProcess  # labelgate with the default dynamic batching
    unbatched: ServerProcess  # the same with --max-batch-size 1
    equal_priority: ServerProcess  # the same with --heavy-stage-priority normal
    baseline: BaselineProcess


class Scenarios:
    def __init__(self, plan: Plan, models: Models, servers: Servers, workdir: Path, device: str):
        self.plan, self.models, self.servers, self.device = plan, models, servers, device
        self.width, self.height = plan.image_size
        self.stub = servers.batched.stub()
        self.unbatched_stub = servers.unbatched.stub()
        self.equal_priority_stub = servers.equal_priority.stub()
        self._seeds = itertools.count(1)
        self._clicks = itertools.count()
        self.samples: dict[str, list[float]] = {}  # latency samples (seconds), for the chart
        self.throughput: dict[str, dict[str, dict[int, list[float]]]] = {}  # kind -> on/off -> concurrency -> req/s
        self.warm_bytes = jpeg(scene(0, self.width, self.height))  # the image every repeat click is on
        self.warm_path = workdir / "warm.jpg"
        self.warm_path.write_bytes(self.warm_bytes)
        self.warm_id = self.stub.Embed(pb.EmbedRequest(image=pb.Image(data=self.warm_bytes))).image_id
        self._warm_up()

    # --- helpers ---------------------------------------------------------------------------

    def _warm_up(self) -> None:
        """Untimed calls on every server first, so the first timed rounds are not its first calls."""
        for stub in (self.stub, self.unbatched_stub, self.equal_priority_stub):
            self._click(stub, pb.Image(data=self._new_image()))
            for _ in range(3):
                self._click(stub, pb.Image(data=self.warm_bytes))
        self.servers.baseline.segment(self.warm_path, click_point(0, self.width, self.height))

    def _new_image(self) -> bytes:
        return jpeg(scene(next(self._seeds), self.width, self.height))

    def _click(self, stub, image: pb.Image, point: tuple[float, float] | None = None, model: str = "") -> pb.SegmentResponse:
        x, y = point or click_point(next(self._clicks), self.width, self.height)
        return stub.Segment(pb.SegmentRequest(image=image, points=[pb.Point(x=x, y=y)], model=model))

    def _repeat_click(self, stub=None) -> pb.SegmentResponse:
        return self._click(stub or self.stub, pb.Image(image_id=self.warm_id))

    def _keep(self, samples: dict[str, list[float]]) -> None:
        for name, values in samples.items():
            self.samples.setdefault(name, []).extend(values)

    # --- rows ------------------------------------------------------------------------------

    def repeat_click(self) -> Row:
        cold_images = iter([self._new_image() for _ in range(self.plan.rounds)])
        samples = interleaved(
            {
                "cold click": lambda: self._click(self.stub, pb.Image(data=next(cold_images))),
                "repeat click": self._repeat_click,
            },
            self.plan.rounds,
            repeats={"repeat click": self.plan.repeats_per_round},
        )
        self._keep(samples)
        repeat, cold = median(samples["repeat click"]), median(samples["cold click"])
        return Row("repeat_click", "Repeat click", "p50 click on an embedded image / p50 cold click", repeat / cold,
                   ("<=", 0.03), {"repeat click": repeat, "cold click": cold})

    def edgetam_cold_click(self) -> Row:
        """Cold clicks (a new image each: encoder + one-point decode) on EdgeTAM and on the default SAM 2,
        served by the same server; each side gets its own new images, so neither finds the other's
        decoded pixels in the image cache."""
        edgetam = self._click(self.stub, pb.Image(data=self._new_image()), model=EDGETAM_NAME)  # untimed first call
        if len(edgetam.objects) != 1:
            raise RuntimeError(f"an EdgeTAM click gave {len(edgetam.objects)} objects, not one")
        images = {side: iter([self._new_image() for _ in range(self.plan.rounds)]) for side in ("edgetam", "sam2")}
        samples = interleaved(
            {
                "EdgeTAM cold click": lambda: self._click(self.stub, pb.Image(data=next(images["edgetam"])),
                                                          model=EDGETAM_NAME),
                "SAM 2 cold click": lambda: self._click(self.stub, pb.Image(data=next(images["sam2"]))),
            },
            self.plan.rounds,
        )
        self._keep(samples)
        edgetam_p50, sam2_p50 = median(samples["EdgeTAM cold click"]), median(samples["SAM 2 cold click"])
        return Row("edgetam_cold_click", "EdgeTAM cold click",
                   "p50 EdgeTAM cold click / p50 SAM 2.1 cold click (new image each; through the same server)",
                   edgetam_p50 / sam2_p50, EDGETAM_TARGET, {"EdgeTAM cold click": edgetam_p50, "SAM 2 cold click": sam2_p50})

    def versus_baseline(self) -> Row:
        samples = interleaved(
            {
                "usual backend click": lambda: self.servers.baseline.segment(
                    self.warm_path, click_point(next(self._clicks), self.width, self.height)),
                "repeat click": self._repeat_click,
            },
            self.plan.rounds,
        )
        self._keep(samples)
        baseline, ours = median(samples["usual backend click"]), median(samples["repeat click"])
        return Row("versus_baseline", "Versus the usual backend",
                   "p50 usual backend click (HTTP+JSON, set_image + predict) / p50 labelgate repeat click",
                   baseline / ours, (">=", 20), {"usual backend click": baseline, "labelgate repeat click": ours})

    def service_overhead(self) -> Row:
        """A cached Segment through gRPC against the very decoder call the server makes for it,
        made here in-process on features of the same pixels, on one worker thread as the server's
        decoder batcher makes it: handing its OpenMP workers back after each call, with no other thread
        of this process holding any (see server/openmp_workers.py; else both sides run throttled)."""
        from labelgate.models.backend import DecodeItem, SamPrompt
        from labelgate.models.sam2.torch_backend import Sam2TorchBackend
        from labelgate.server.imaging import decode_image
        from labelgate.server.openmp_workers import release_openmp_workers, released_after

        backend = Sam2TorchBackend.from_checkpoint(self.models.sam2_config, self.models.sam2_checkpoint, self.device,
                                                   self.models.sam2_overrides)
        pixels = decode_image(self.warm_bytes, 10 ** 9).pixels
        point = click_point(0, self.width, self.height)
        with ThreadPoolExecutor(1) as worker:
            features = worker.submit(released_after, backend.encode, [pixels]).result()[0]
            release_openmp_workers()  # this thread's team, if loading made one
            item = DecodeItem(features, SamPrompt(np.array([point], np.float32), np.array([1], np.int32),
                                                  np.zeros((0, 4), np.float32), False))
            worker.submit(released_after, backend.decode, [item]).result()  # first-call warm-up, as the server's own
            samples = interleaved(
                {
                    "gRPC cached click": lambda: self._click(self.stub, pb.Image(image_id=self.warm_id), point),
                    "in-process decoder call": lambda: worker.submit(released_after, backend.decode, [item]).result(),
                },
                self.plan.rounds * 3,
            )
        self._keep(samples)
        grpc_p50, direct_p50 = median(samples["gRPC cached click"]), median(samples["in-process decoder call"])
        return Row("service_overhead", "Service overhead", "p50 cached Segment via gRPC / p50 same decoder call in-process",
                   grpc_p50 / direct_p50, ("<=", 1.15), {"gRPC cached click": grpc_p50, "in-process decoder call": direct_p50})

    def batching(self) -> list[Row]:
        rows = []
        uploads = [self.warm_bytes] + [self._new_image() for _ in range(self.plan.cached_images - 1)]
        for stub in (self.stub, self.unbatched_stub):
            cached = [stub.Embed(pb.EmbedRequest(image=pb.Image(data=data))).image_id for data in uploads]

        def click_cached(total: int):
            return lambda stub, i: self._click(stub, pb.Image(image_id=cached[i % len(cached)]))

        rows += self._batching_rows("decoder", self.plan.throughput_rounds, lambda c: 4 * c, click_cached)
        rows += self._batching_rows("encoder", self.plan.encoder_rounds, lambda c: max(c, 2), self._embed_new_images)
        return rows

    def _embed_new_images(self, total: int):
        """Every call embeds an image new to both servers."""
        images = [self._new_image() for _ in range(total)]
        return lambda stub, i: stub.Embed(pb.EmbedRequest(image=pb.Image(data=images[i])))

    def _batching_rows(self, kind: str, rounds: int, total_for, make_call) -> list[Row]:
        """Throughput with batching on and off at each concurrency, the two servers taking turns."""
        results: dict[str, dict[int, list[float]]] = {"on": {}, "off": {}}
        rows = []
        bound = "new images (encoder-bound)" if kind == "encoder" else "clicks on cached images (decoder-bound)"
        for concurrency in self.plan.concurrency:
            total = total_for(concurrency)
            for round_index in range(rounds):
                sides = [("on", self.stub), ("off", self.unbatched_stub)]
                if round_index % 2:
                    sides.reverse()
                for mode, stub in sides:
                    call = make_call(total)
                    rate = throughput(lambda i, call=call, stub=stub: call(stub, i), concurrency, total)
                    results[mode].setdefault(concurrency, []).append(rate)
            on, off = median(results["on"][concurrency]), median(results["off"][concurrency])
            print(f"    {kind}-bound, concurrency {concurrency}: batching on {on:.2f} req/s, off {off:.2f} req/s", flush=True)
            target = (">=", 2.0) if concurrency == BATCHING_TARGET_CONCURRENCY else None
            rows.append(Row(f"batching_{kind}_c{concurrency}", f"Batching, {kind}-bound, concurrency {concurrency}",
                            f"throughput with dynamic batching / without, {bound}", on / off, target,
                            {"batching on": on, "batching off": off}, unit="req/s"))
        self.throughput[kind] = results
        return rows

    def click_under_load(self) -> list[Row]:
        """Repeat clicks while another caller embeds new images back to back, against the same
        clicks on the idle server, round after round; on the default server (heavy stages at a
        lower CPU priority) and on one whose stages all share the same priority."""
        # (row key, suffix of the title and sample names, server, its heavy stages' priority)
        variants = [("click_under_load", "", self.stub, "lower CPU priority"),
                    ("click_under_load_equal_priority", ", equal priority", self.equal_priority_stub, "normal priority")]
        samples: dict[str, list[float]] = {}
        for round_index in range(self.plan.rounds):
            for _, suffix, stub, _ in (reversed(variants) if round_index % 2 else variants):
                samples.setdefault(f"click, idle{suffix}", []).extend(self._clicks_on(stub))
                with _embedding_in_background(stub, self._new_image):
                    samples.setdefault(f"click, encoding{suffix}", []).extend(self._clicks_on(stub))
        self._keep(samples)
        rows = []
        for key, suffix, _, priority in variants:
            idle, busy = median(samples[f"click, idle{suffix}"]), median(samples[f"click, encoding{suffix}"])
            rows.append(Row(key, f"Click under encoder load{suffix}",
                            f"p50 repeat click while another caller embeds new images / p50 repeat click on the idle "
                            f"server (encoder and detector at {priority})", busy / idle, None,
                            {"click while encoding": busy, "click, idle": idle}))
        return rows

    def _clicks_on(self, stub) -> list[float]:
        """Seconds per repeat click, a round's worth, timed as every other latency here."""
        return interleaved({"click": lambda: self._repeat_click(stub)}, self.plan.repeats_per_round)["click"]

    def payload(self) -> list[Row]:
        """Click responses as they come back, and the same responses carrying the mask of a real
        object instead. Random weights give speckled masks, which cost many more runs than an
        object's outline: the second row shows what the same encoding costs for object shapes."""
        raw = self.width * self.height
        responses = [self._repeat_click() for _ in range(max(3, self.plan.rounds))]
        wire = median([self._wire_bytes(response) for response in responses])
        shaped = median([self._wire_bytes(self._with_mask(responses[0], mask)) for mask in self._object_masks()])
        return [
            Row("payload", "Payload", "bytes on the wire per click response / bytes of the raw full-resolution mask",
                wire / raw, ("<=", 0.01), {"click response": wire, "raw mask (1 byte per pixel)": raw}, unit="bytes"),
            Row("payload_object_shape", "Payload, object-shaped masks",
                "bytes of a click response carrying the mask of an object in the image (median over the scene's "
                "shapes, encoded by the server's code) / bytes of the raw mask",
                shaped / raw, None, {"click response": shaped, "raw mask (1 byte per pixel)": raw}, unit="bytes"),
        ]

    def _object_masks(self) -> list[np.ndarray]:
        return object_masks(0, self.width, self.height)  # the shapes of the warm image, scene(0)

    @staticmethod
    def _wire_bytes(response: pb.SegmentResponse) -> int:
        return len(response.SerializeToString()) + GRPC_FRAME_BYTES

    @staticmethod
    def _with_mask(response: pb.SegmentResponse, mask: np.ndarray) -> pb.SegmentResponse:
        """`response` with its one mask replaced by `mask`, encoded as the server encodes a click's."""
        changed = pb.SegmentResponse()
        changed.CopyFrom(response)
        (obj,) = changed.objects
        (sent,) = obj.masks
        obj.masks[0].CopyFrom(mask_to_pb(encode_mask(mask, sent.score, {COCO_RLE})))
        return changed

    def text_to_masks(self) -> Row:
        image = pb.Image(image_id=self.warm_id)
        detect = pb.DetectRequest(image=image, text=CAPTION, box_threshold=BOX_THRESHOLD, text_threshold=TEXT_THRESHOLD)
        found = len(self.stub.Detect(detect).detections)
        if not found:
            raise RuntimeError(f"Grounding DINO found nothing for {CAPTION!r}: the text-to-masks row would measure nothing")

        def one_call():
            response = self.stub.Segment(pb.SegmentRequest(image=image, text=CAPTION, box_threshold=BOX_THRESHOLD,
                                                           text_threshold=TEXT_THRESHOLD))
            if len(response.objects) != found:
                raise RuntimeError(f"Segment(text) gave {len(response.objects)} objects, Detect found {found}")

        def separate_calls():
            detections = self.stub.Detect(detect).detections
            # Detect may return boxes reaching past the image, which Segment refuses: clip them.
            boxes = [pb.Box(x_min=max(d.box.x_min, 0), y_min=max(d.box.y_min, 0), x_max=min(d.box.x_max, self.width),
                            y_max=min(d.box.y_max, self.height)) for d in detections]
            self.stub.Segment(pb.SegmentRequest(image=image, boxes=boxes))

        samples = interleaved({"Segment(text)": one_call, "Detect + Segment(boxes)": separate_calls}, self.plan.rounds)
        self._keep(samples)
        one, two = median(samples["Segment(text)"]), median(samples["Detect + Segment(boxes)"])
        return Row("text_to_masks", "Text to masks",
                   f"p50 one Segment(text) / p50 Detect then Segment(boxes) ({found} objects)", one / two, None,
                   {"Segment(text)": one, "Detect + Segment(boxes)": two})


ENCODING_STARTED_S = 0.3  # the background caller's first image is uploaded, decoded and in the encoder by then


@contextlib.contextmanager
def _embedding_in_background(stub, new_image):
    """Another caller embedding new images back to back on `stub`, from a moment after entering
    until leaving (which waits for its image in flight)."""
    stop = threading.Event()
    failures: list[BaseException] = []

    def embed_until_stopped():
        try:
            while not stop.is_set():
                stub.Embed(pb.EmbedRequest(image=pb.Image(data=new_image())))
        except BaseException as error:  # a load that stopped would make the row measure an idle server
            failures.append(error)

    caller = threading.Thread(target=embed_until_stopped, name="bench-background-embeds")
    caller.start()
    time.sleep(ENCODING_STARTED_S)
    try:
        yield
    finally:
        stop.set()
        caller.join()
    if failures:
        raise RuntimeError("the background caller's Embed failed, so the clicks were not measured under load") from failures[0]
