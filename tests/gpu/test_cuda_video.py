"""SAM 2 video tracking on CUDA against the CPU on the generated clip (tests/video_clip.py), for each
--dtype the sam2 kind takes (skipped on machines without CUDA).

Tracking runs under bf16 autocast whatever --dtype (models/sam2/video_backend.py: upstream stores its
memories in bf16), so:

- the frames it reads are equal bit for bit: PIL resizes and divides by 255 on the CPU on both
  sides, and the normalisation on the device is one IEEE subtraction and division per value;
- on CUDA, --dtype fp32, bf16 and fp16 run the same kernels on the same inputs: equal masks and
  scores (tests/tolerances.py: no reordering, so exact);
- against the CPU the masks are NOT compared pixel by pixel. In the model of tests/tolerances.py a
  bf16 path of depth d moves a logit by up to LAMBDA * sqrt(2) * 2**-8 * sqrt(d) of its magnitude,
  more than the magnitude itself once d > 500, and SAM 2's image path alone is ~32,000
  (SAM2_DEMO_DEPTH): no pixel would be decided, so such a check would assert nothing. What is
  compared is what rounding cannot change: the frames returned, their order, the objects, the
  mask shapes, scores being probabilities.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]

from labelgate.models.video_tracking import TrackPrompt  # noqa: E402
from video_clip import HEIGHT, WIDTH, ArrayFrames, disc_centre, moving_shapes, square_box  # noqa: E402

NUM_FRAMES = 6
DTYPES = ("fp32", "bf16", "fp16")


def _backend(demo_weights, device: str, dtype: str = "fp32"):
    from labelgate.models.demo import SAM2_DEMO_CONFIG, SAM2_DEMO_OVERRIDES, demo_paths
    from labelgate.models.sam2.video_backend import Sam2TrackingTorchBackend

    return Sam2TrackingTorchBackend.from_checkpoint(SAM2_DEMO_CONFIG, demo_paths(demo_weights)[0], device, SAM2_DEMO_OVERRIDES,
                                                    dtype=dtype)


def _track(backend) -> list:
    """A box on the square and clicks on the disc on frame 0, then forward through the clip, then a
    box on frame 3 and backward from it: every frame returned, as (index, [(object, mask, score)])."""
    session = backend.open_video(ArrayFrames(moving_shapes(NUM_FRAMES)), window=16)
    none = np.zeros((0, 2), np.float32), np.zeros((0,), np.int32)
    frames = [session.add_prompt(TrackPrompt(0, 1, *none, np.array(square_box(0), np.float32))),
              session.add_prompt(TrackPrompt(0, 2, np.array([disc_centre(0), (10.0, 50.0)], np.float32), np.array([1, 0], np.int32)))]
    frames += list(session.propagate(0, False, 0))
    frames.append(session.add_prompt(TrackPrompt(3, 1, *none, np.array(square_box(3), np.float32))))
    frames += list(session.propagate(3, True, 0))
    session.close()
    return [(f.frame_index, [(o.object_id, o.mask, o.score) for o in f.objects]) for f in frames]


@pytest.fixture(scope="module")
def cpu_tracks(demo_weights):
    return _track(_backend(demo_weights, "cpu"))


@pytest.fixture(scope="module")
def cuda_tracks(demo_weights):
    return {dtype: _track(_backend(demo_weights, "cuda", dtype)) for dtype in DTYPES}


def test_frames_read_on_cuda_equal_the_cpu_ones(demo_weights):
    from labelgate.models.sam2.video_session import LazyFrames

    source = ArrayFrames(moving_shapes(2))
    size = _backend(demo_weights, "cpu").predictor.image_size
    cpu, gpu = LazyFrames(source, size, torch.device("cpu")), LazyFrames(source, size, torch.device("cuda"))
    for index in range(source.num_frames):
        assert gpu[index].is_cuda and gpu[index].dtype == torch.float32
        assert torch.equal(gpu[index].cpu(), cpu[index])


@pytest.mark.parametrize("dtype", DTYPES)
def test_cuda_tracking_returns_what_the_cpu_does(cpu_tracks, cuda_tracks, dtype):
    got = cuda_tracks[dtype]
    assert [(index, [obj for obj, _, _ in objects]) for index, objects in got] == \
        [(index, [obj for obj, _, _ in objects]) for index, objects in cpu_tracks]
    for _, objects in got:
        for _, mask, score in objects:
            assert mask.dtype == bool and mask.shape == (HEIGHT, WIDTH)
            assert 0.0 <= score <= 1.0


@pytest.mark.parametrize("dtype", DTYPES[1:])
def test_cuda_tracking_is_the_same_in_every_dtype(cuda_tracks, dtype):
    for (index, objects), (expected_index, expected) in zip(cuda_tracks[dtype], cuda_tracks["fp32"], strict=True):
        assert index == expected_index
        for (obj, mask, score), (expected_obj, expected_mask, expected_score) in zip(objects, expected, strict=True):
            assert obj == expected_obj and score == expected_score
            np.testing.assert_array_equal(mask, expected_mask)
