"""Video boxes: Label Studio's videorectangle regions (1-based frames, percent coordinates) tracked
through a scripted `Client.track`, and the regions that go back (old keyframes kept, new ones added,
an object that leaves the clip ended)."""

import pytest
from labelgate.client import Mask
from labelgate.client.tracking import OpenedVideo, TrackedFrame

from scripted_labelgate import Fetcher, ScriptedClient
from labelgate.label_studio.metrics import BackendMetrics
from labelgate.label_studio.predictor import PredictError, Predictor, PredictorOptions
from labelgate.label_studio.prompts import PromptError
from labelgate.label_studio.task_images import TaskImages
from labelgate.label_studio.task_videos import TaskVideos

WIDTH, HEIGHT, FRAMES = 200, 100, 8
STEP = 4  # pixels each tracked box moves right per frame
CONFIG = """<View><Video name="video" value="$video" framerate="10"/>
  <VideoRectangle name="box" toName="video"/>
  <Labels name="videoLabels" toName="video"><Label value="car"/><Label value="person"/></Labels></View>"""


class TrackingClient(ScriptedClient):
    """`track` as labelgate answers it: each prompted box moves STEP pixels right per frame; an object
    in `vanish` has an empty mask from that frame (labelgate's index) on."""

    def __init__(self, vanish=None):
        super().__init__()
        self.vanish = vanish or {}
        self.sessions = []  # (video, prompts, options, frames streamed)

    def track(self, video, prompts, **options):
        prompts = prompts(OpenedVideo(FRAMES, WIDTH, HEIGHT, tuple(i / 10 for i in range(FRAMES))))
        session = (video, prompts, options, [])
        self.sessions.append(session)
        start, limit = options["start_frame"], options["max_frames"]
        for index in range(start, min(FRAMES, start + limit) if limit else FRAMES):
            session[3].append(index)
            yield TrackedFrame(index, index / 10 + 0.05, {p.object_id: self._mask(p, index) for p in prompts})

    def _mask(self, prompt, index) -> Mask:
        gone = index >= self.vanish.get(prompt.box[0], FRAMES)  # objects are known by their box's x_min
        x0, y0, x1, y1 = prompt.box
        shift = STEP * (index - prompt.frame)
        box = None if gone else (x0 + shift, y0, x1 + shift, y1)
        return Mask(score=0.0 if gone else 0.9, bbox=box, area=0, rle=None, polygons=[], png=None, shape=(HEIGHT, WIDTH))


def keyframe(frame, x, y, width=10.0, height=20.0, enabled=True):
    return {"frame": frame, "x": x, "y": y, "width": width, "height": height, "enabled": enabled, "rotation": 0,
            "time": frame / 10}


def region(region_id, *sequence, label="car"):
    return {"id": region_id, "type": "videorectangle", "from_name": "box", "to_name": "video", "origin": "manual",
            "value": {"sequence": list(sequence), "framesCount": FRAMES, "duration": FRAMES / 10, "labels": [label]}}


def task(video="/data/upload/1/clip.mp4"):
    return {"id": 7, "data": {"video": video}}


@pytest.fixture
def make_predictor():
    made = []

    def make(vanish=None, video_frames=0):
        client = TrackingClient(vanish)
        predictor = Predictor(client, TaskImages(Fetcher()), PredictorOptions(video_frames=video_frames, sam2_model="sam2"),
                              BackendMetrics())
        made.append(predictor)
        return predictor, client

    yield make
    for predictor in made:
        predictor.close()


def test_each_object_is_tracked_from_its_last_keyframe_and_keeps_its_old_keyframes(make_predictor):
    predictor, client = make_predictor()
    car = region("car1", keyframe(1, 5.0, 10.0), keyframe(3, 10.0, 20.0))  # last keyframe: frame 3, x 20 px
    person = region("p1", keyframe(3, 50.0, 40.0, width=5.0), label="person")
    (prediction,) = predictor.predict([task()], CONFIG, {"result": [car, person]})

    ((video, prompts, options, streamed),) = client.sessions  # one session: both start on frame 3
    assert video == b"png bytes of /data/upload/1/clip.mp4"
    assert options == {"start_frame": 2, "max_frames": 0, "model": "sam2"}
    assert [(p.object_id, p.frame, p.box) for p in prompts] == [(0, 2, (20.0, 20.0, 40.0, 40.0)),
                                                                (1, 2, (100.0, 40.0, 110.0, 60.0))]
    assert streamed == list(range(2, FRAMES))
    results = prediction["result"]
    assert [(r["id"], r["type"], r["from_name"], r["to_name"], r["value"]["labels"]) for r in results] == [
        ("car1", "videorectangle", "box", "video", ["car"]), ("p1", "videorectangle", "box", "video", ["person"])]
    car_sequence = results[0]["value"]["sequence"]
    assert car_sequence[:2] == car["value"]["sequence"]
    assert [entry["frame"] for entry in car_sequence] == [1, 3, 4, 5, 6, 7, 8]  # 1-based, to the end of the clip
    fourth = car_sequence[2]  # labelgate's frame 3: the box moved STEP px right of its keyframe
    assert fourth == {"frame": 4, "x": (20.0 + STEP) * 100 / WIDTH, "y": 20.0, "width": 10.0, "height": 20.0,
                      "rotation": 0, "enabled": True, "time": 3 / 10 + 0.05}
    assert results[1]["value"]["sequence"][-1]["x"] == (100.0 + STEP * 5) * 100 / WIDTH
    assert results[0]["value"]["framesCount"] == FRAMES and results[0]["value"]["duration"] == FRAMES / 10
    assert prediction["score"] == pytest.approx(0.9)


def test_objects_starting_on_different_frames_get_a_session_each_cut_to_the_configured_frames(make_predictor):
    predictor, client = make_predictor(video_frames=2)
    (prediction,) = predictor.predict([task()], CONFIG, {"result": [region("a", keyframe(5, 10.0, 10.0)),
                                                                    region("b", keyframe(2, 30.0, 10.0))]})
    assert [(options["start_frame"], options["max_frames"], streamed) for _, _, options, streamed in client.sessions] == [
        (1, 3, [1, 2, 3]), (4, 3, [4, 5, 6])]
    by_id = {r["id"]: [entry["frame"] for entry in r["value"]["sequence"]] for r in prediction["result"]}
    assert by_id == {"a": [5, 6, 7], "b": [2, 3, 4]}


def test_an_object_that_leaves_ends_on_its_last_visible_frame_and_the_others_go_on(make_predictor):
    predictor, client = make_predictor(vanish={20.0: 5})  # the first object's mask is empty from frame 6 (index 5)
    (prediction,) = predictor.predict([task()], CONFIG, {"result": [region("a", keyframe(3, 10.0, 10.0)),
                                                                    region("b", keyframe(3, 50.0, 10.0))]})
    first, second = (r["value"]["sequence"] for r in prediction["result"])
    assert [(entry["frame"], entry["enabled"]) for entry in first] == [(3, True), (4, True), (5, False)]
    assert [entry["frame"] for entry in second] == [3, 4, 5, 6, 7, 8]


def test_an_object_gone_right_after_its_keyframe_has_that_keyframe_ended_and_tracking_stops(make_predictor):
    predictor, client = make_predictor(vanish={20.0: 3})
    (prediction,) = predictor.predict([task()], CONFIG, {"result": [region("a", keyframe(1, 0.0, 0.0),
                                                                           keyframe(3, 10.0, 10.0))]})
    (result,) = prediction["result"]
    assert [(entry["frame"], entry["enabled"]) for entry in result["value"]["sequence"]] == [(1, True), (3, False)]
    assert client.sessions[0][3] == [2, 3]  # the stream was closed once every object was gone
    assert result["score"] == 0.0


def test_an_object_the_labeler_ended_is_not_tracked(make_predictor):
    predictor, client = make_predictor()
    (prediction,) = predictor.predict([task()], CONFIG, {"result": [region("a", keyframe(3, 10.0, 10.0, enabled=False)),
                                                                    region("b", keyframe(2, 50.0, 10.0))]})
    assert [r["id"] for r in prediction["result"]] == ["b"]
    with pytest.raises(PredictError, match="nothing to track"):
        predictor.predict([task()], CONFIG, {"result": [region("a", keyframe(3, 10.0, 10.0, enabled=False))]})


def test_without_a_context_there_is_nothing_to_predict(make_predictor):
    predictor, client = make_predictor()
    assert predictor.predict([task(), task()], CONFIG, None) == []
    assert client.sessions == [] and client.calls == []


@pytest.mark.parametrize("sequence, message", [
    ([], "malformed"),
    ([{"frame": 2, "x": 1.0}], "malformed"),
    ([keyframe(0, 1.0, 1.0)], "frames count from 1"),
])
def test_malformed_regions_say_which(make_predictor, sequence, message):
    predictor, _ = make_predictor()
    with pytest.raises(PromptError, match=message):
        predictor.predict([task()], CONFIG, {"result": [region("a", *sequence)]})


def test_a_keyframe_past_the_decoded_clip_is_refused_with_what_to_change(make_predictor):
    predictor, _ = make_predictor()
    with pytest.raises(PromptError, match=f"frame {FRAMES + 1} but the video decodes to {FRAMES} frames.*framerate"):
        predictor.predict([task()], CONFIG, {"result": [region("a", keyframe(FRAMES + 1, 1.0, 1.0))]})


def test_a_task_without_the_video_field_names_it(make_predictor):
    predictor, _ = make_predictor()
    with pytest.raises(PredictError, match=r'no \'video\' in its data .*<Video value="\$video">'):
        predictor.predict([{"id": 1, "data": {}}], CONFIG, {"result": [region("a", keyframe(1, 1.0, 1.0))]})


class CountingFetcher(Fetcher):
    def __init__(self):
        self.fetched = []

    def fetch(self, reference, task_id=None):
        self.fetched.append(reference)
        return super().fetch(reference, task_id)


def test_a_second_tracking_request_on_the_same_video_does_not_download_it_again():
    fetcher = CountingFetcher()
    client = TrackingClient()
    predictor = Predictor(client, TaskImages(fetcher), PredictorOptions(sam2_model="sam2"), BackendMetrics())
    try:
        for x in (10.0, 30.0):
            predictor.predict([task()], CONFIG, {"result": [region("a", keyframe(1, x, 10.0))]})
        predictor.predict([task("/data/upload/1/other.mp4")], CONFIG, {"result": [region("b", keyframe(1, 5.0, 10.0))]})
    finally:
        predictor.close()
    assert fetcher.fetched == ["/data/upload/1/clip.mp4", "/data/upload/1/other.mp4"]
    assert [session[0] for session in client.sessions] == [b"png bytes of /data/upload/1/clip.mp4"] * 2 + [
        b"png bytes of /data/upload/1/other.mp4"]


def test_the_video_cache_keeps_within_its_budget():
    fetcher = CountingFetcher()
    videos = TaskVideos(fetcher, budget_bytes=len(fetcher.fetch("/v/aaaa.mp4")) * 2)
    fetcher.fetched.clear()
    for reference in ("/v/aaaa.mp4", "/v/bbbb.mp4", "/v/aaaa.mp4", "/v/cccc.mp4", "/v/bbbb.mp4"):
        videos.get(reference, 1)
    assert fetcher.fetched == ["/v/aaaa.mp4", "/v/bbbb.mp4", "/v/cccc.mp4", "/v/bbbb.mp4"]  # b was least recent
    assert videos.nbytes <= videos.budget_bytes
    small = TaskVideos(fetcher, budget_bytes=5)
    assert small.get("/v/too-large.mp4", 1) == b"png bytes of /v/too-large.mp4" and small.nbytes == 0  # not kept
