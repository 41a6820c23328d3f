"""The tracking backend against sam2's own `SAM2VideoPredictor` on the same weights, frames and prompts:
same code path, so bit-identical masks (not close: equal)."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from labelgate.models.demo import SAM2_DEMO_CONFIG, SAM2_DEMO_OVERRIDES, demo_paths
from labelgate.models.video_tracking import TrackPrompt
from video_clip import ArrayFrames, disc_centre, moving_shapes, square_box, write_jpeg_folder

NUM_FRAMES = 6  # small: the whole clip is tracked several times, twice each


@pytest.fixture(scope="module")
def backend(demo_weights):
    from labelgate.models.sam2.video_backend import Sam2TrackingTorchBackend

    return Sam2TrackingTorchBackend.from_checkpoint(SAM2_DEMO_CONFIG, demo_paths(demo_weights)[0], "cpu", SAM2_DEMO_OVERRIDES)


@pytest.fixture(scope="module")
def upstream(demo_weights):
    from sam2.build_sam import build_sam2_video_predictor

    return build_sam2_video_predictor(SAM2_DEMO_CONFIG, str(demo_paths(demo_weights)[0]), device="cpu",
                                      hydra_overrides_extra=list(SAM2_DEMO_OVERRIDES))


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clip")
    return folder, write_jpeg_folder(moving_shapes(NUM_FRAMES), folder)


def prompts():
    """Three objects: a box on frame 0, clicks on frame 0, a box on frame 3 (prompted mid-clip)."""
    return [
        TrackPrompt(0, 1, np.zeros((0, 2), np.float32), np.zeros((0,), np.int32), np.array(square_box(0), np.float32)),
        TrackPrompt(0, 2, np.array([disc_centre(0), (10.0, 50.0)], np.float32), np.array([1, 0], np.int32)),
        TrackPrompt(3, 3, np.zeros((0, 2), np.float32), np.zeros((0,), np.int32), np.array(square_box(3), np.float32)),
    ]


def upstream_add(predictor, state, prompt: TrackPrompt, context):
    points = prompt.points if len(prompt.points) else None
    labels = prompt.labels if len(prompt.points) else None
    with context():
        return predictor.add_new_points_or_box(state, prompt.frame_index, prompt.object_id, points=points, labels=labels,
                                               box=prompt.box)


def assert_same_frame(ours, frame_index, obj_ids, logits):
    assert ours.frame_index == frame_index
    assert [o.object_id for o in ours.objects] == list(obj_ids)
    expected = (logits[:, 0] > 0.0).cpu().numpy()
    for obj, mask in zip(ours.objects, expected):
        np.testing.assert_array_equal(obj.mask, mask)


def run_both(backend, upstream, clip, window, passes):
    """Each pass: (prompts to add or correct, start frame, reverse); compares every returned frame.

    Upstream runs under bf16 autocast, as its README runs the video predictor (in fp32 its bf16
    memories fail a matmul), with the attention kernel the backend picks for this CPU."""
    context = backend.tracking_autocast
    folder, pixels = clip
    session = backend.open_video(ArrayFrames(pixels), window)
    with context():  # as upstream's README: init_state computes frame 0's features
        state = upstream.init_state(str(folder))
    compared = 0
    for added, start, reverse in passes:
        for prompt in added:
            assert_same_frame(session.add_prompt(prompt), *upstream_add(upstream, state, prompt, context))
        ours = list(session.propagate(start, reverse, 0))
        with context():
            theirs = list(upstream.propagate_in_video(state, start_frame_idx=start, reverse=reverse))
        assert len(ours) == len(theirs) > 0
        for frame, (frame_index, obj_ids, logits) in zip(ours, theirs):
            assert_same_frame(frame, frame_index, obj_ids, logits)
            compared += 1
    return session, compared


@pytest.mark.fidelity
def test_several_objects_forward_backward_and_a_correction_equal_upstream(backend, upstream, clip):
    correction = TrackPrompt(4, 1, np.array([(square_box(4)[0] + 8, 28.0), (80.0, 8.0)], np.float32), np.array([1, 0], np.int32))
    session, compared = run_both(backend, upstream, clip, window=NUM_FRAMES, passes=[
        (prompts(), 0, False),
        ([], NUM_FRAMES - 1, True),
        ([correction], 4, False),  # a correction mid-clip re-propagates from its frame on
    ])
    assert compared == NUM_FRAMES + NUM_FRAMES + (NUM_FRAMES - 4)
    assert session.prompted_frames == [0, 3, 4]


@pytest.mark.fidelity
def test_a_window_as_long_as_what_propagation_reads_keeps_it_identical(backend, upstream, clip, monkeypatch):
    from labelgate.models.sam2.video_session import reads_back

    assert reads_back(backend.predictor) == 16  # SAM 2.1's 16 object pointers (7 memories): the default window
    # A clip longer than that is slow here; the same model made to read 3 frames back shows the
    # claim on a short one: a window of 3 drops frames, and propagation still equals upstream.
    for predictor in (backend.predictor, upstream):
        monkeypatch.setattr(predictor, "num_maskmem", 3)
        monkeypatch.setattr(predictor, "max_obj_ptrs_in_encoder", 3)
    assert reads_back(backend.predictor) == 3
    session, _ = run_both(backend, upstream, clip, window=3, passes=[(prompts()[:2], 0, False)])
    assert max(len(out["non_cond_frame_outputs"]) for out in session.state["output_dict_per_obj"].values()) < NUM_FRAMES - 1


def test_memory_is_bounded_by_the_window(backend, clip):
    _, pixels = clip
    frames = ArrayFrames(pixels)
    session = backend.open_video(frames, window=2)
    for prompt in prompts()[:2]:
        session.add_prompt(prompt)
    sizes = []
    for frame in session.propagate(0, False, 0):
        sizes.append(session.nbytes)
        for outputs in session.state["output_dict_per_obj"].values():
            assert all(abs(index - frame.frame_index) < 2 for index in outputs["non_cond_frame_outputs"])
    assert sizes[-1] == sizes[2]  # steady once the window is full
    assert sorted(set(frames.reads)) == list(range(NUM_FRAMES))  # read on demand, never all at open


def test_max_frames_and_scores(backend, clip):
    _, pixels = clip
    session = backend.open_video(ArrayFrames(pixels), window=4)
    session.add_prompt(prompts()[0])
    frames = list(session.propagate(2, False, 3))
    assert [f.frame_index for f in frames] == [2, 3, 4]
    assert all(0.0 <= o.score <= 1.0 for f in frames for o in f.objects)


class KeyedFrames(ArrayFrames):
    """Frames that say which are equal: sessions on them share the image encoder's outputs."""

    def content_key(self, index):
        return hashlib.blake2b(self.frames[index].tobytes(), digest_size=16).digest()


def interleaved(backend, frames_type, pixels):
    """Two sessions on the same frames (a box, a click) stepped in turn, as a CVAT tracker's one
    session per shape does; returns each session's masks and how often the image encoder ran."""
    calls = []
    hook = backend.predictor.image_encoder.register_forward_hook(lambda *_: calls.append(1))
    try:
        sessions = [backend.open_video(frames_type(pixels), NUM_FRAMES) for _ in range(2)]
        first = [sessions[0].add_prompt(prompts()[0]), sessions[1].add_prompt(prompts()[1])]
        masks = [[f.objects[0].mask for f in first[i:i + 1]] for i in range(2)]
        for steps in zip(*(session.propagate(0, False, 0) for session in sessions)):
            for i, frame in enumerate(steps):
                masks[i].append(frame.objects[0].mask)
        held = len(backend.shared_frames)
        for session in sessions:
            session.close()
        assert len(backend.shared_frames) == 0  # held only while a session holds the frame: no memory of its own
    finally:
        hook.remove()
    return masks, len(calls), held


def test_sessions_on_equal_frames_run_the_encoder_once_per_frame_with_the_same_masks(backend, clip):
    _, pixels = clip
    alone, alone_calls, _ = interleaved(backend, ArrayFrames, pixels)  # no content keys: nothing shared
    shared, shared_calls, held = interleaved(backend, KeyedFrames, pixels)
    assert alone_calls == 2 * NUM_FRAMES and shared_calls == NUM_FRAMES
    assert held == 1  # both sessions' last frame, one copy
    for ours, theirs in zip(shared, alone):
        assert len(ours) == len(theirs) == NUM_FRAMES + 1
        for a, b in zip(ours, theirs):
            np.testing.assert_array_equal(a, b)
