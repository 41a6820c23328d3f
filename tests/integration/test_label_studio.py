"""End to end against a real Label Studio: a project with BrushLabels + KeyPointLabels +
RectangleLabels + TextArea, an uploaded image and a Local Storage image, the labelgate ML backend
connected through Label Studio's API, and predictions triggered through Label Studio's API (the
calls its UI makes). The masks Label Studio returns or stores, decoded with its own brush codec,
must equal what labelgate gives for the same prompts through the SDK. The labelgate server also
serves a tiny random-weight SAM 3 ("concepts"), which a second backend uses for text prompts,
exemplar boxes and batches, on a second project. A third project labels a generated clip with
VideoRectangle boxes, which the backend tracks (Client.track) to the end of the clip.

Slow (Label Studio takes ~40 s to start), so it runs last (`runs_last`, see tests/conftest.py).
"""

from __future__ import annotations

import re
import time

import numpy as np
import pytest

from label_studio_process import ApiError, decode_brushes, start_backend, start_label_studio
from labelgate.client import Client
from labelgate.models.sam3.demo import write_sam3_demo_model
from reference import encode, random_image
from server_process import start_server
from video_clip import HEIGHT, WIDTH, moving_shapes, square_box, video_bytes

pytestmark = pytest.mark.runs_last

LABELS = ("cat", "dog")
CAPTION = "cat . dog"
CONFIG = f"""<View>
  <Image name="image" value="$image"/>
  <BrushLabels name="mask" toName="image">{''.join(f'<Label value="{l}"/>' for l in LABELS)}</BrushLabels>
  <KeyPointLabels name="click" toName="image" smart="true">{''.join(f'<Label value="{l}"/>' for l in LABELS)}</KeyPointLabels>
  <RectangleLabels name="box" toName="image" smart="true">{''.join(f'<Label value="{l}"/>' for l in LABELS)}</RectangleLabels>
  <TextArea name="prompt" toName="image" editable="true" rows="1"/>
</View>"""
UPLOADED = encode(random_image(21, 240, 320))  # the demo detector finds "cat . dog" in this one
LOCAL = encode(random_image(22, 333, 500))
EXEMPLAR_LABEL = "more like cat"  # a RectangleLabels label the concept backend takes boxes of as exemplars
CONCEPT_CONFIG = CONFIG.replace('<Label value="dog"/></RectangleLabels>',
                                f'<Label value="dog"/><Label value="{EXEMPLAR_LABEL}"/></RectangleLabels>')
# The demo SAM 3's random weights score every instance low: keep them all, up to a cap.
CONCEPT_SETTINGS = {"box_threshold": 0.001, "max_instances": 5}


@pytest.fixture(scope="module")
def server(demo_weights, tmp_path_factory):
    """This module's labelgate server: the demo pair plus a demo SAM 3 named "concepts"."""
    sam3 = write_sam3_demo_model(tmp_path_factory.mktemp("sam3") / "sam3-demo")
    running = start_server(tmp_path_factory.mktemp("server"), demo_weights, "--model", f"concepts=sam3:{sam3}")
    yield running
    assert running.stop() == 0, running.log()


@pytest.fixture(scope="module")
def local_files(tmp_path_factory):
    """Label Studio's LOCAL_FILES_DOCUMENT_ROOT, with photos/local.png in it."""
    root = tmp_path_factory.mktemp("local-files")
    (root / "photos").mkdir()
    (root / "photos" / "local.png").write_bytes(LOCAL)
    return root


@pytest.fixture(scope="module")
def label_studio_started(tmp_path_factory, local_files):
    """Started before the labelgate server so the two boot side by side."""
    label_studio = start_label_studio(tmp_path_factory.mktemp("label-studio"), local_files)
    yield label_studio
    label_studio.stop()


@pytest.fixture(scope="module")
def label_studio(label_studio_started, server):
    label_studio_started.wait_healthy()
    return label_studio_started


@pytest.fixture(scope="module")
def personal_access_token(label_studio) -> str:
    """A JWT personal access token, the kind Label Studio hands out by default now."""
    return label_studio.api("POST", "/api/token/")["token"]


@pytest.fixture(scope="module")
def backend(label_studio, server, personal_access_token, tmp_path_factory):
    running = start_backend(tmp_path_factory.mktemp("backend"), server.address, label_studio.url, personal_access_token)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def project(label_studio, backend, local_files):
    """Connects the backend first, so Label Studio's TASKS_CREATED webhook reaches it on import."""
    project = label_studio.api("POST", "/api/projects", {"title": "labelgate e2e", "label_config": CONFIG})
    ml = label_studio.api("POST", "/api/ml", {"url": backend.url, "project": project["id"], "is_interactive": True,
                                              "title": "labelgate"})
    assert ml["readable_state"] == "Connected", ml
    label_studio.api("POST", f"/api/projects/{project['id']}/import", files={"uploaded.png": UPLOADED})
    label_studio.api("POST", "/api/storages/localfiles", {"project": project["id"], "title": "photos",
                                                          "path": str(local_files / "photos")})
    label_studio.api("POST", f"/api/projects/{project['id']}/import",
                     [{"image": "/data/local-files/?d=photos/local.png"}])
    tasks = label_studio.api("GET", "/api/tasks", params={"project": project["id"]})["tasks"]
    by_kind = {("upload" if "/data/upload/" in t["data"]["image"] else "local"): t["id"] for t in tasks}
    assert set(by_kind) == {"upload", "local"}, tasks
    return {"id": project["id"], "ml": ml["id"], "tasks": by_kind, "images": {"upload": UPLOADED, "local": LOCAL}}


@pytest.fixture(scope="module")
def concept_backend(label_studio, server, personal_access_token, tmp_path_factory):
    running = start_backend(tmp_path_factory.mktemp("concept-backend"), server.address, label_studio.url,
                            personal_access_token, "--concept-model", "concepts", "--exemplar-labels", EXEMPLAR_LABEL,
                            "--concept-threshold", str(CONCEPT_SETTINGS["box_threshold"]),
                            "--max-instances", str(CONCEPT_SETTINGS["max_instances"]))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def concept_project(label_studio, concept_backend):
    project = label_studio.api("POST", "/api/projects", {"title": "labelgate concepts", "label_config": CONCEPT_CONFIG})
    ml = label_studio.api("POST", "/api/ml", {"url": concept_backend.url, "project": project["id"],
                                              "is_interactive": True, "title": "labelgate concepts"})
    assert ml["readable_state"] == "Connected", ml
    label_studio.api("POST", f"/api/projects/{project['id']}/import", files={"uploaded.png": UPLOADED})
    (task,) = label_studio.api("GET", "/api/tasks", params={"project": project["id"]})["tasks"]
    return {"id": project["id"], "ml": ml["id"], "tasks": {"upload": task["id"]}}


@pytest.fixture(scope="module")
def client(server):
    with Client(server.address) as client:
        yield client


def interactive(label_studio, project, task_kind: str, *results: dict) -> list[dict]:
    """What the labeling UI gets back for a smart-tool interaction."""
    answer = label_studio.api("POST", f"/api/ml/{project['ml']}/interactive-annotating",
                              {"task": project["tasks"][task_kind], "context": {"result": list(results)}})
    assert "data" in answer, answer
    return answer["data"]["result"]


def context_item(kind: str, value: dict, width: int, height: int, **extra) -> dict:
    return {"id": kind[:4], "type": kind, "from_name": {"keypointlabels": "click", "rectanglelabels": "box",
                                                        "textarea": "prompt"}[kind],
            "to_name": "image", "original_width": width, "original_height": height, "image_rotation": 0,
            "value": value, **extra}


def of_type(regions: list[dict], kind: str) -> list[dict]:
    return [region for region in regions if region["type"] == kind]


def test_backend_health_and_setup_follow_the_ml_backend_protocol(backend, project, label_studio):
    assert '"status":"UP"' in backend.get_text("/health").replace(" ", "")
    ml = label_studio.api("GET", f"/api/ml/{project['ml']}")
    assert ml["model_version"].startswith("labelgate:sam2_demo@"), ml


def test_label_studio_refuses_to_connect_a_config_without_a_mask_or_box_control_and_says_why(label_studio, backend):
    config = '<View><Image name="image" value="$image"/><KeyPointLabels name="k" toName="image"/></View>'
    project = label_studio.api("POST", "/api/projects", {"title": "no outputs", "label_config": config})
    with pytest.raises(ApiError, match="no <BrushLabels>, <RectangleLabels> or <PolygonLabels>"):
        label_studio.api("POST", "/api/ml", {"url": backend.url, "project": project["id"], "title": "labelgate"})


def test_imported_tasks_are_embedded_in_the_background(backend, project):
    deadline = time.monotonic() + 120
    while pre_embedded(backend) < len(project["tasks"]):
        assert time.monotonic() < deadline, backend.get_text("/metrics")
        time.sleep(0.5)
    assert "pre-embedding failed" not in backend.log()


def test_a_click_gives_the_mask_labelgate_gives_for_that_pixel(label_studio, project, client):
    width, height = 320, 240
    click = context_item("keypointlabels", {"x": 33.3, "y": 61.7, "width": 0.5, "keypointlabels": ["dog"]},
                         width, height, is_positive=True)
    regions = interactive(label_studio, project, "upload", click)

    (brush,) = of_type(regions, "brushlabels")
    assert (brush["from_name"], brush["to_name"], brush["value"]["brushlabels"]) == ("mask", "image", ["dog"])
    assert (brush["original_width"], brush["original_height"]) == (width, height)
    expected = client.segment(UPLOADED, points=[(33.3 * width / 100, 61.7 * height / 100)], multimask=True)
    expected = expected.objects[0].best
    (mask,) = decode_brushes([brush])
    assert mask.any()
    np.testing.assert_array_equal(mask, expected.to_numpy())
    assert brush["score"] == expected.score  # the same decode of the same cached features, carried in JSON


def test_clicks_and_a_box_on_a_local_storage_image_make_one_mask(label_studio, project, client):
    width, height = 500, 333
    results = [
        context_item("keypointlabels", {"x": 40.0, "y": 50.0, "width": 0.5, "keypointlabels": ["cat"]},
                     width, height, is_positive=True),
        context_item("keypointlabels", {"x": 12.5, "y": 80.2, "width": 0.5, "keypointlabels": ["cat"]},
                     width, height, is_positive=False),
        context_item("rectanglelabels", {"x": 10.0, "y": 25.0, "width": 50.0, "height": 50.0, "rotation": 0,
                                         "rectanglelabels": ["cat"]}, width, height),
    ]
    regions = interactive(label_studio, project, "local", *results)

    (brush,) = of_type(regions, "brushlabels")
    assert brush["value"]["brushlabels"] == ["cat"]
    pixels = lambda percent, size: percent * size / 100  # noqa: E731
    expected = client.segment(
        LOCAL, points=[(pixels(40.0, width), pixels(50.0, height), False), (pixels(12.5, width), pixels(80.2, height), True)],
        boxes=[(pixels(10.0, width), pixels(25.0, height), pixels(60.0, width), pixels(75.0, height))],
    ).objects[0].best
    np.testing.assert_array_equal(decode_brushes([brush])[0], expected.to_numpy())


def test_boxes_alone_make_one_mask_each_with_their_own_labels(label_studio, project, client):
    width, height = 320, 240
    boxes = [(5.0, 10.0, 40.0, 30.0, "cat"), (50.0, 40.0, 45.0, 55.0, "dog")]  # x, y, width, height in %
    regions = interactive(label_studio, project, "upload", *[
        context_item("rectanglelabels", {"x": x, "y": y, "width": w, "height": h, "rotation": 0,
                                         "rectanglelabels": [label]}, width, height)
        for x, y, w, h, label in boxes])

    assert of_type(regions, "rectanglelabels") == []  # the labeler's boxes are already there
    brushes = of_type(regions, "brushlabels")
    assert [brush["value"]["brushlabels"] for brush in brushes] == [["cat"], ["dog"]]
    expected = client.segment(UPLOADED, boxes=[(x * width / 100, y * height / 100, (x + w) * width / 100,
                                                (y + h) * height / 100) for x, y, w, h, _ in boxes])
    for mask, obj in zip(decode_brushes(brushes), expected.objects, strict=True):
        np.testing.assert_array_equal(mask, obj.best.to_numpy())


def test_a_text_prompt_gives_labelled_boxes_and_their_masks(label_studio, project, client):
    prompt = context_item("textarea", {"text": [CAPTION]}, 320, 240)
    regions = interactive(label_studio, project, "upload", prompt)

    expected = client.segment(UPLOADED, text=CAPTION)
    assert expected.objects, "the demo detector should find something in this image"
    check_detections(regions, expected)


def test_retrieve_predictions_stores_detections_and_masks_for_every_task(label_studio, project, client):
    answer = label_studio.api("POST", "/api/dm/actions", {"selectedItems": {"all": True, "excluded": []}},
                              params={"id": "retrieve_tasks_predictions", "project": project["id"]})
    assert answer["processed_items"] == 2, answer

    stored = label_studio.api("GET", "/api/predictions", params={"project": project["id"]})
    by_task = {prediction["task"]: prediction for prediction in stored}
    assert set(by_task) == set(project["tasks"].values())
    for kind, task_id in project["tasks"].items():
        prediction = by_task[task_id]
        assert prediction["model_version"].startswith("labelgate:"), prediction
        check_detections(prediction["result"], client.segment(project["images"][kind], text=CAPTION))


def test_further_clicks_refine_the_previous_mask(label_studio, project, client, backend):
    """Label Studio sends every click of the label so far; the second refines the first one's mask."""
    width, height = 320, 240
    clicks = [context_item("keypointlabels", {"x": x, "y": y, "width": 0.5, "keypointlabels": ["cat"]}, width, height,
                           is_positive=positive, id=region_id)
              for x, y, positive, region_id in ((71.0, 22.5, True, "k1"), (40.0, 70.0, False, "k2"))]
    refinements = metric(backend, "labelgate_ls_refinements_total", 'outcome="refined"')
    interactive(label_studio, project, "upload", clicks[0])
    (brush,) = of_type(interactive(label_studio, project, "upload", *clicks), "brushlabels")

    points = [(71.0 * width / 100, 22.5 * height / 100, False), (40.0 * width / 100, 70.0 * height / 100, True)]
    first = client.segment(UPLOADED, points=points[:1], multimask=True).objects[0].best
    refined = client.segment(UPLOADED, points=points, refine=first).objects[0].best
    afresh = client.segment(UPLOADED, points=points).objects[0].best
    assert not np.array_equal(refined.to_numpy(), afresh.to_numpy())  # else this test could not tell them apart
    np.testing.assert_array_equal(decode_brushes([brush])[0], refined.to_numpy())
    assert metric(backend, "labelgate_ls_refinements_total", 'outcome="refined"') == refinements + 1


def test_a_text_prompt_on_a_concept_model_gives_every_instance(label_studio, concept_project, client):
    regions = interactive(label_studio, concept_project, "upload", context_item("textarea", {"text": [CAPTION]}, 320, 240))

    expected = client.segment(UPLOADED, text=CAPTION, model="concepts", **CONCEPT_SETTINGS)
    assert 0 < len(expected.objects) <= CONCEPT_SETTINGS["max_instances"]
    check_detections(regions, expected)


def test_an_exemplar_box_gives_every_similar_object_as_masks(label_studio, concept_project, client):
    width, height = 320, 240
    box = {"x": 10.0, "y": 20.0, "width": 30.0, "height": 40.0, "rotation": 0, "rectanglelabels": [EXEMPLAR_LABEL]}
    regions = interactive(label_studio, concept_project, "upload", context_item("rectanglelabels", box, width, height))

    assert of_type(regions, "rectanglelabels") == []
    brushes = of_type(regions, "brushlabels")
    assert [brush["value"]["brushlabels"] for brush in brushes] == [["cat"]] * len(brushes)  # "more like cat" -> cat
    exemplar = (10.0 * width / 100, 20.0 * height / 100, 40.0 * width / 100, 60.0 * height / 100)
    expected = client.segment(UPLOADED, exemplars=[exemplar], model="concepts", **CONCEPT_SETTINGS)
    assert expected.objects
    for mask, obj in zip(decode_brushes(brushes), expected.objects, strict=True):
        np.testing.assert_array_equal(mask, obj.best.to_numpy())


def test_retrieve_predictions_with_a_concept_model(label_studio, concept_project, client):
    answer = label_studio.api("POST", "/api/dm/actions", {"selectedItems": {"all": True, "excluded": []}},
                              params={"id": "retrieve_tasks_predictions", "project": concept_project["id"]})
    assert answer["processed_items"] == 1, answer

    (prediction,) = label_studio.api("GET", "/api/predictions", params={"project": concept_project["id"]})
    assert re.fullmatch(r"labelgate:sam2_demo@\w+\+concepts@\w+", prediction["model_version"]), prediction
    # The exemplar label is no class to look for: the caption is the other labels.
    check_detections(prediction["result"], client.segment(UPLOADED, text=CAPTION, model="concepts", **CONCEPT_SETTINGS))


def check_detections(regions: list[dict], expected) -> None:
    """One rectangle and one brush per detected object, in labelgate's order, equal to its boxes and masks."""
    rectangles, brushes = of_type(regions, "rectanglelabels"), of_type(regions, "brushlabels")
    assert len(rectangles) == len(brushes) == len(expected.objects)
    for rectangle, brush, mask, obj in zip(rectangles, brushes, decode_brushes(brushes), expected.objects):
        x_min, y_min, x_max, y_max = obj.prompt_box
        value = rectangle["value"]
        # The same detections (one image per Grounding DINO pass on both sides), the same float64
        # arithmetic as the backend's, carried exactly in JSON: equal, no tolerance.
        assert value["x"] == 100 * x_min / expected.width
        assert value["y"] == 100 * y_min / expected.height
        assert value["width"] == 100 * (x_max - x_min) / expected.width
        assert value["height"] == 100 * (y_max - y_min) / expected.height
        assert rectangle["score"] == obj.detection_score
        label = rectangle["value"]["rectanglelabels"][0]
        assert label in LABELS and (label == obj.label or obj.label not in LABELS)
        assert brush["value"]["brushlabels"] == [label]
        np.testing.assert_array_equal(mask, obj.best.to_numpy())


def pre_embedded(backend) -> float:
    return metric(backend, "labelgate_ls_pre_embedded_images_total", 'outcome="ok"')


def metric(backend, name: str, labels: str) -> float:
    match = re.search(rf"^{name}\{{{labels}\}} (\S+)$", backend.get_text("/metrics"), re.MULTILINE)
    return float(match.group(1)) if match else 0.0


# --- video ------------------------------------------------------------------------------------------

VIDEO_CONFIG = """<View>
  <Video name="video" value="$video" framerate="10"/>
  <VideoRectangle name="box" toName="video"/>
  <Labels name="videoLabels" toName="video"><Label value="square"/><Label value="disc"/></Labels>
</View>"""
CLIP_FRAMES = 6
DISC_BOX = (62.0, 4.0, 79.0, 21.0)  # video_clip's disc on its first frame (radius 8 about (70, 12)), max exclusive


@pytest.fixture(scope="module")
def video_project(label_studio, backend):
    clip = video_bytes(moving_shapes(CLIP_FRAMES), fps=10)
    project = label_studio.api("POST", "/api/projects", {"title": "labelgate video", "label_config": VIDEO_CONFIG})
    ml = label_studio.api("POST", "/api/ml", {"url": backend.url, "project": project["id"], "is_interactive": True,
                                              "title": "labelgate"})
    assert ml["readable_state"] == "Connected", ml
    label_studio.api("POST", f"/api/projects/{project['id']}/import", files={"clip.mp4": clip})
    (task,) = label_studio.api("GET", "/api/tasks", params={"project": project["id"]})["tasks"]
    assert task["data"]["video"].startswith("/data/upload/"), task
    return {"id": project["id"], "ml": ml["id"], "tasks": {"clip": task["id"]}, "clip": clip}


def video_box(region_id: str, box: tuple[float, float, float, float], label: str, frame: int) -> dict:
    """A box drawn on `frame` (from 1), as Label Studio sends it: percent of the frame."""
    x0, y0, x1, y1 = box
    keyframe = {"frame": frame, "x": 100 * x0 / WIDTH, "y": 100 * y0 / HEIGHT, "width": 100 * (x1 - x0) / WIDTH,
                "height": 100 * (y1 - y0) / HEIGHT, "enabled": True, "rotation": 0, "time": (frame - 1) / 10}
    return {"id": region_id, "type": "videorectangle", "from_name": "box", "to_name": "video", "origin": "manual",
            "value": {"sequence": [keyframe], "framesCount": CLIP_FRAMES, "duration": CLIP_FRAMES / 10,
                      "labels": [label]}}


def expected_sequence(keyframe: dict, frames, object_id: int) -> list[dict]:
    """What the backend should add after `keyframe`, from the SDK's own track() of the same prompts:
    one enabled keyframe per frame until the mask is empty, and that one ends the lifespan."""
    sequence = [dict(keyframe)]
    for frame in frames[1:]:
        mask = frame.masks[object_id]
        if mask.bbox is None:
            sequence[-1]["enabled"] = False
            break
        x0, y0, x1, y1 = mask.bbox
        sequence.append({"frame": frame.frame_index + 1, "x": x0 * 100.0 / WIDTH, "y": y0 * 100.0 / HEIGHT,
                         "width": (x1 - x0) * 100.0 / WIDTH, "height": (y1 - y0) * 100.0 / HEIGHT, "rotation": 0,
                         "enabled": True, "time": frame.timestamp})
    return sequence


def test_video_boxes_are_tracked_to_the_end_of_the_clip_and_label_studio_stores_the_tracks(label_studio, video_project,
                                                                                             client):
    from labelgate.client.tracking import ObjectPrompt

    drawn = [video_box("sq", square_box(1), "square", frame=2), video_box("dc", DISC_BOX, "disc", frame=2)]
    results = interactive(label_studio, video_project, "clip", *drawn)

    # The same boxes, in pixels as the backend reads them back from percent, tracked by the SDK.
    pixels = []
    for region in drawn:
        key = region["value"]["sequence"][0]
        left, top = key["x"] * WIDTH / 100.0, key["y"] * HEIGHT / 100.0
        pixels.append((left, top, left + key["width"] * WIDTH / 100.0, top + key["height"] * HEIGHT / 100.0))
    frames = list(client.track(video_project["clip"], [ObjectPrompt(i, 1, box=box) for i, box in enumerate(pixels)],
                               start_frame=1))
    assert [frame.frame_index for frame in frames] == list(range(1, CLIP_FRAMES))

    assert [(r["id"], r["type"], r["from_name"], r["to_name"], r["value"]["labels"]) for r in results] == [
        ("sq", "videorectangle", "box", "video", ["square"]), ("dc", "videorectangle", "box", "video", ["disc"])]
    for object_id, (region, result) in enumerate(zip(drawn, results, strict=True)):
        sequence = result["value"]["sequence"]
        assert sequence == expected_sequence(region["value"]["sequence"][0], frames, object_id)
        assert [entry["frame"] for entry in sequence] == list(range(2, 2 + len(sequence)))  # from 1, as drawn
        assert (result["value"]["framesCount"], result["value"]["duration"]) == (CLIP_FRAMES, CLIP_FRAMES / 10)
    assert len(results[0]["value"]["sequence"]) > 1, "the demo tracker lost the square at once: nothing was checked"

    # Label Studio takes the tracks as an annotation and as a prediction, and gives them back unchanged.
    task = video_project["tasks"]["clip"]
    annotation = label_studio.api("POST", f"/api/tasks/{task}/annotations", {"result": results})
    stored = label_studio.api("GET", f"/api/annotations/{annotation['id']}")["result"]
    assert [r["value"]["sequence"] for r in stored] == [r["value"]["sequence"] for r in results]
    prediction = label_studio.api("POST", "/api/predictions", {"task": task, "result": results, "score": 0.5,
                                                               "model_version": "labelgate-video-test"})
    stored = label_studio.api("GET", f"/api/predictions/{prediction['id']}")["result"]
    assert [r["value"]["sequence"] for r in stored] == [r["value"]["sequence"] for r in results]
