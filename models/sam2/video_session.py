"""One clip tracked by sam2's own `SAM2VideoPredictor` code, with bounded memory.

Upstream's `init_state` loads every frame up front and `propagate_in_video` keeps every frame's
memory forever (sam2#196). Here the predictor runs unchanged on an inference state whose frames
are read on demand from a `FrameSource`, and after each tracked frame the per-frame outputs farther
than `window` frames from it are dropped. Propagation only ever reads the last `num_maskmem - 1`
frames' memories and the last `max_obj_ptrs_in_encoder - 1` frames' object pointers (16 and 7 for
SAM 2.1), so with `window >= max(num_maskmem, max_obj_ptrs_in_encoder)` the streamed masks are
those of `propagate_in_video` bit for bit, at any clip length. What the window changes is in
docs/video.md.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from typing import Callable, Iterator

import numpy as np
import torch
from PIL import Image

import sam2.sam2_video_predictor as upstream
from labelgate.models.sam2.frame_features import FrameFeatures, SharedFrameFeatures
from labelgate.models.video_tracking import FrameSource, TrackedFrame, TrackedObject, TrackingSession, TrackPrompt

# sam2's loaders normalise with these (sam2.utils.misc.load_video_frames).
_MEAN = torch.tensor((0.485, 0.456, 0.406), dtype=torch.float32)[:, None, None]
_STD = torch.tensor((0.229, 0.224, 0.225), dtype=torch.float32)[:, None, None]

# propagate_in_video wraps its frames in a tqdm progress bar: one stderr line per frame in a server's log.
upstream.tqdm = lambda iterable, **_: iterable


def reads_back(predictor) -> int:
    """How many frames back propagation reads: the smallest window that keeps it bit-identical."""
    return max(predictor.num_maskmem * predictor.memory_temporal_stride_for_eval, predictor.max_obj_ptrs_in_encoder)


class LazyFrames:
    """What the predictor reads as `inference_state["images"]`: frame `i` resized and normalised
    exactly as sam2's JPEG-folder loader does it, computed when asked for, not kept."""

    def __init__(self, source: FrameSource, image_size: int, device: torch.device):
        self.source, self.image_size, self.device = source, image_size, device

    def __len__(self) -> int:
        return self.source.num_frames

    def __getitem__(self, index: int) -> torch.Tensor:
        pixels = self.source.frame(index)
        # sam2.utils.misc._load_img_as_tensor: PIL resize to a square, / 255 in float64, then float32.
        resized = np.array(Image.fromarray(pixels).convert("RGB").resize((self.image_size, self.image_size)))
        image = torch.from_numpy(resized / 255.0).permute(2, 0, 1).to(torch.float32).to(self.device)
        image -= _MEAN.to(self.device)
        image /= _STD.to(self.device)
        return image


def new_inference_state(predictor, frames: LazyFrames, height: int, width: int) -> dict:
    """The dict `SAM2VideoPredictor.init_state` builds (sam2 1.1.0), with lazy frames and without
    its warm-up of frame 0 (a cache of the same features, computed when first needed instead)."""
    device = predictor.device
    return {
        "images": frames,
        "num_frames": len(frames),
        "offload_video_to_cpu": False,
        "offload_state_to_cpu": False,
        "video_height": height,
        "video_width": width,
        "device": device,
        "storage_device": device,
        "point_inputs_per_obj": {},
        "mask_inputs_per_obj": {},
        "cached_features": {},
        "constants": {},
        "obj_id_to_idx": OrderedDict(),
        "obj_idx_to_id": OrderedDict(),
        "obj_ids": [],
        "output_dict_per_obj": {},
        "temp_output_dict_per_obj": {},
        "frames_tracked_per_obj": {},
    }


class Sam2TrackingSession(TrackingSession):
    def __init__(self, predictor, frames: FrameSource, window: int, autocast: Callable[[], contextlib.AbstractContextManager],
                 long_clip: bool = False, shared: SharedFrameFeatures | None = None):
        """`shared`: the encoder outputs of frames other sessions of this predictor tracked last."""
        if window < 1:
            raise ValueError(f"window must be >= 1 frame, got {window}")
        self.predictor, self.frames, self.window, self._autocast = predictor, frames, window, autocast
        self._shared = shared
        self._held: FrameFeatures | None = None  # the cached frame's features, as others may share them
        self._last_key: tuple[int, bytes | None] = (-1, None)  # a step looks its frame's key up twice
        # The clip length SAM 2 is told is only used to cap its object pointers at min(length, this):
        # at or past it, a clip's length changes nothing, so a growing clip is told at least this.
        self._least_length = predictor.max_obj_ptrs_in_encoder if long_clip else 0
        lazy = LazyFrames(frames, predictor.image_size, predictor.device)
        self.state = new_inference_state(predictor, lazy, frames.height, frames.width)

    @property
    def object_ids(self) -> list[int]:
        return list(self.state["obj_ids"])

    @property
    def prompted_frames(self) -> list[int]:
        frames = set()
        for per_object in (self.state["point_inputs_per_obj"], self.state["mask_inputs_per_obj"]):
            for inputs in per_object.values():
                frames.update(inputs)
        return sorted(frames)

    @property
    def nbytes(self) -> int:
        seen: set[int] = set()
        keys = ("output_dict_per_obj", "temp_output_dict_per_obj", "cached_features", "constants",
                "point_inputs_per_obj", "mask_inputs_per_obj")
        return sum(_tensor_bytes(self.state[key], seen) for key in keys) + self.frames.nbytes

    def add_prompt(self, prompt: TrackPrompt) -> TrackedFrame:
        self._count_frames()
        self._reuse_features(prompt.frame_index)
        with torch.inference_mode(), self._autocast():
            if prompt.mask is not None:
                frame_index, obj_ids, logits = self.predictor.add_new_mask(
                    self.state, prompt.frame_index, prompt.object_id, torch.from_numpy(np.asarray(prompt.mask, dtype=bool)))
            else:
                has_points = len(prompt.points) > 0
                frame_index, obj_ids, logits = self.predictor.add_new_points_or_box(
                    self.state, prompt.frame_index, prompt.object_id,
                    points=prompt.points if has_points else None, labels=prompt.labels if has_points else None,
                    box=prompt.box)
        self.frames_tracked += 1
        self._share_features(frame_index)
        return self._tracked(frame_index, obj_ids, logits)

    def propagate(self, start_frame: int, reverse: bool, max_frames: int) -> Iterator[TrackedFrame]:
        self._count_frames()
        # Frames after start_frame to track; given, since upstream bounds a pass by the length it is told.
        limit = start_frame if reverse else self.frames.num_frames - 1 - start_frame
        if max_frames > 0:
            limit = min(limit, max_frames - 1)
        steps = self.predictor.propagate_in_video(self.state, start_frame_idx=start_frame, max_frame_num_to_track=limit,
                                                  reverse=reverse)
        upcoming = start_frame  # upstream's passes go frame by frame from the start
        try:
            while True:
                self._reuse_features(upcoming)
                with torch.inference_mode(), self._autocast():
                    step = next(steps, None)
                if step is None:
                    return
                frame_index, obj_ids, logits = step
                upcoming = frame_index - 1 if reverse else frame_index + 1
                self._share_features(frame_index)
                self.frames_tracked += 1
                self._forget_outside_window(frame_index)
                yield self._tracked(frame_index, obj_ids, logits)
        finally:
            steps.close()

    def close(self) -> None:
        self.state.clear()
        self._held = None

    def _count_frames(self) -> None:
        """Frames appended since the last call: upstream reads the clip's length from the state."""
        self.state["num_frames"] = max(self.frames.num_frames, self._least_length)

    def _reuse_features(self, index: int) -> None:
        """Frame `index`'s encoder output from another session, where one has it: upstream's
        `_get_image_feature` reads its one-frame cache before running the encoder."""
        if index in self.state["cached_features"]:
            return
        key = self._content_key(index)
        if key is None:
            return
        held = self._shared.get(key)
        if held is not None:
            self.state["cached_features"] = {index: held.value}
            self._held = held

    def _share_features(self, index: int) -> None:
        key = self._content_key(index)
        value = self.state["cached_features"].get(index)
        if key is None or value is None:
            return
        if self._held is None or self._held.value is not value:
            self._held = FrameFeatures(value)
        self._shared.put(key, self._held)

    def _content_key(self, index: int) -> bytes | None:
        if self._shared is None or not 0 <= index < self.frames.num_frames:
            return None
        if self._last_key[0] != index:
            self._last_key = (index, self.frames.content_key(index))
        return self._last_key[1]

    def _forget_outside_window(self, current: int) -> None:
        """Drops the non-conditioning outputs `window` or more frames away from `current` (the prompted
        frames' outputs stay); the frame features upstream caches are one frame's already."""
        for outputs in self.state["output_dict_per_obj"].values():
            non_cond = outputs["non_cond_frame_outputs"]
            for index in [index for index in non_cond if abs(index - current) >= self.window]:
                del non_cond[index]

    def _tracked(self, frame_index: int, obj_ids, logits: torch.Tensor) -> TrackedFrame:
        masks = (logits[:, 0] > 0.0).cpu().numpy()
        objects = [TrackedObject(int(obj_id), masks[index], self._visible(index, frame_index))
                   for index, obj_id in enumerate(obj_ids)]
        return TrackedFrame(frame_index, objects)

    def _visible(self, obj_idx: int, frame_index: int) -> float:
        """sigmoid(object_score_logits) of the object's output on the frame (0 where it has none)."""
        for key in ("temp_output_dict_per_obj", "output_dict_per_obj"):
            outputs = self.state[key].get(obj_idx, {})
            for storage in ("cond_frame_outputs", "non_cond_frame_outputs"):
                out = outputs.get(storage, {}).get(frame_index)
                if out is not None and out.get("object_score_logits") is not None:
                    return float(torch.sigmoid(out["object_score_logits"].float()).reshape(-1)[0])
        return 0.0


def _tensor_bytes(value, seen: set[int]) -> int:
    """Bytes of the distinct tensor storages in a nest of dicts, lists and tuples."""
    if isinstance(value, torch.Tensor):
        storage = value.untyped_storage()
        if storage.data_ptr() in seen:
            return 0
        seen.add(storage.data_ptr())
        return storage.nbytes()
    if isinstance(value, dict):
        return sum(_tensor_bytes(item, seen) for item in value.values())
    if isinstance(value, (list, tuple)):
        return sum(_tensor_bytes(item, seen) for item in value)
    return 0
