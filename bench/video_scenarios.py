"""The video section (`labelgate bench --sections video`): SAM 2 tracking through a server (the SDK's
`Client.track`) against the bare `SAM2VideoPredictor` loop in process, on the same generated clip
(JPEG frames), with the same weights and prompts (a box and a click on frame 0).

- Throughput: frames/s through the service / frames/s of the upstream loop (each side's whole call:
  opening the clip, the prompts, the propagation).
- Memory: RSS after the last frame of a long clip / after its first frames, read as those frames
  arrive: the server's (window on, its default), and upstream's in a process of its own.
- Correction: AddPrompts on frame k then Propagate from k / Propagate over the whole clip again, in
  one session already propagated."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from labelgate.bench.clips import disc_centre, square_box, write_clip
from labelgate.bench.rows import Row
from labelgate.bench.rss import rss_bytes
from labelgate.bench.setup import Models
from labelgate.bench.timing import interleaved, median, timed
from labelgate.bench.video_upstream import UpstreamTracker
from labelgate.client import Client
from labelgate.client.tracking import (
    ObjectPrompt,
    add_prompts_requests,
    open_video_request,
    propagate_request,
)
from labelgate.server.launcher import ServerProcess
from labelgate.v1 import labelgate_pb2 as pb

CALL_TIMEOUT_S = 1800
UPSTREAM_TIMEOUT_S = 1800


@dataclass(frozen=True)
class VideoPlan:
    frames: int  # the clip of the throughput and correction rows
    rounds: int
    rss_frames: tuple[int, int]  # memory after this many frames, and after this many (the long clip's length)
    frame_size: tuple[int, int]  # width, height


VIDEO_FULL = VideoPlan(frames=30, rounds=3, rss_frames=(30, 300), frame_size=(320, 240))
VIDEO_QUICK = VideoPlan(frames=6, rounds=1, rss_frames=(3, 8), frame_size=(96, 64))


def prompts(width: int, height: int, frame: int = 0) -> list[ObjectPrompt]:
    return [ObjectPrompt(1, frame, box=square_box(frame, width, height)),
            ObjectPrompt(2, frame, points=[disc_centre(frame, width, height)])]


class VideoScenarios:
    def __init__(self, plan: VideoPlan, models: Models, server: ServerProcess, work: Path, device: str):
        self.plan, self.models, self.server, self.work, self.device = plan, models, server, work, device
        self.width, self.height = plan.frame_size
        self.folder = work / "clip"
        self.paths = write_clip(self.folder, plan.frames, self.width, self.height)
        self.client = Client(server.address, timeout=CALL_TIMEOUT_S)
        self.stub = server.stub()
        self.upstream = UpstreamTracker(models.sam2_config, models.sam2_checkpoint, device, models.sam2_overrides)
        self.samples: dict[str, list[float]] = {}

    def _service(self, paths: list[Path], on_frame=lambda index: None) -> int:
        frames = 0
        for tracked in self.client.track(paths, prompts(self.width, self.height)):
            frames += 1
            on_frame(tracked.frame_index)
        return frames

    def _checked(self, name: str, frames: int) -> None:
        if frames != self.plan.frames:
            raise RuntimeError(f"{name} tracked {frames} frames of {self.plan.frames}")

    def throughput(self) -> Row:
        # Untimed first runs over the whole clip: a process's first pass meets every shape of the memory
        # attention (one more memory each frame up to the window) and runs several times slower.
        self._service(self.paths)
        self.upstream.track(self.folder, self.width, self.height)
        samples: dict[str, list[float]] = {"service (Client.track)": [], "upstream SAM2VideoPredictor": []}

        def side(name: str, call) -> None:
            seconds, frames = timed(call)
            self._checked(name, frames)
            samples[name].append(seconds)

        for round_index in range(self.plan.rounds):
            sides = [lambda: side("service (Client.track)", lambda: self._service(self.paths)),
                     lambda: side("upstream SAM2VideoPredictor",
                                  lambda: self.upstream.track(self.folder, self.width, self.height))]
            for call in reversed(sides) if round_index % 2 else sides:
                call()
        self.samples.update(samples)
        service, upstream = (self.plan.frames / median(values) for values in samples.values())
        return Row("video_throughput", "Video tracking throughput",
                   f"frames/s through the service (Client.track: open, prompts, propagate; {self.plan.frames} frames, "
                   "2 objects) / frames/s of the bare SAM2VideoPredictor loop in process, same frames and weights",
                   service / upstream, (">=", 0.9), {"service": service, "upstream": upstream}, unit="frames/s")

    def _long_clip(self) -> tuple[Path, list[Path]]:
        folder = self.work / "long-clip"
        return folder, write_clip(folder, self.plan.rss_frames[1], self.width, self.height)

    def memory(self) -> list[Row]:
        small, large = self.plan.rss_frames
        folder, paths = self._long_clip()
        service: dict[int, float] = {}

        def on_frame(index: int) -> None:
            if index + 1 in (small, large):
                service[index + 1] = float(rss_bytes(self.server.process.pid))

        self._service(paths, on_frame)
        # Upstream's growth shows between clips, not within one: init_state loads every frame up front.
        short_folder = self.work / "short-clip"
        write_clip(short_folder, small, self.width, self.height)
        upstream = {small: self._upstream_rss(short_folder, small), large: self._upstream_rss(folder, large)}
        return [
            Row("video_rss", "Video tracking memory (service)",
                f"server RSS after frame {large} / after frame {small} of one {large}-frame clip, window on (the default)",
                service[large] / service[small], ("<=", 1.5), {f"after {large}": service[large], f"after {small}": service[small]},
                unit="bytes"),
            Row("video_rss_upstream", "Video tracking memory (upstream)",
                f"RSS of a process running SAM2VideoPredictor over the {large}-frame clip / over its first {small} frames, "
                "each in a process of its own (init_state loads every frame; every frame's memory is kept)",
                upstream[large] / upstream[small], None,
                {f"{large} frames": upstream[large], f"{small} frames": upstream[small]}, unit="bytes"),
        ]

    def _upstream_rss(self, folder: Path, frames: int) -> float:
        """RSS of a fresh process after SAM2VideoPredictor has tracked all `frames` frames of `folder`."""
        command = [sys.executable, "-m", "labelgate.bench.video_upstream", self.models.sam2_config,
                   str(self.models.sam2_checkpoint), self.device, str(folder), str(frames), str(frames),
                   *self.models.sam2_overrides]
        completed = subprocess.run(command, capture_output=True, text=True, timeout=UPSTREAM_TIMEOUT_S, check=False)
        lines = completed.stdout.strip().splitlines()
        if completed.returncode != 0 or not lines:
            raise RuntimeError(f"the upstream tracker failed ({completed.returncode}):\n{completed.stderr[-3000:]}")
        return float(json.loads(lines[-1])["rss_after_frames"][str(frames)])

    def correction(self) -> Row:
        """One session, prompted on frame 0 and propagated once (untimed); then each round a correction
        on frame k (object 1's box there) propagated from k, and a propagation over the whole clip."""
        frames, k = self.plan.frames, self.plan.frames // 2
        opened = self.stub.OpenVideo(open_video_request(self.paths), timeout=CALL_TIMEOUT_S)
        session = opened.session_id
        try:
            for request in add_prompts_requests(session, prompts(self.width, self.height)):
                self.stub.AddPrompts(request, timeout=CALL_TIMEOUT_S)
            self._propagate(session, 0, frames)
            correction = add_prompts_requests(session, prompts(self.width, self.height, k)[:1])[0]

            def corrected() -> None:
                self.stub.AddPrompts(correction, timeout=CALL_TIMEOUT_S)
                self._propagate(session, k, frames - k)

            samples = interleaved({"correction on frame k, propagated from k": corrected,
                                   "whole clip propagated again": lambda: self._propagate(session, 0, frames)},
                                  self.plan.rounds)
        finally:
            self.stub.CloseVideo(pb.CloseVideoRequest(session_id=session), timeout=CALL_TIMEOUT_S)
        self.samples.update(samples)
        part, whole = (median(values) for values in samples.values())
        return Row("video_correction", "Video correction",
                   f"AddPrompts on frame k = {k} + Propagate from k / Propagate over the whole clip ({frames} frames; "
                   f"frames k.. are {(frames - k) / frames:.2f} of it)", part / whole, None,
                   {"correction": part, "whole clip": whole})

    def _propagate(self, session: str, start: int, expected: int) -> None:
        request = propagate_request(session, "forward", start, 0, ("coco_rle",))
        got = sum(1 for _ in self.stub.Propagate(request, timeout=CALL_TIMEOUT_S))
        if got != expected:
            raise RuntimeError(f"Propagate from frame {start} streamed {got} frames, not {expected}")

    def close(self) -> None:
        self.client.close()
