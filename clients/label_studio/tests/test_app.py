"""The ML backend HTTP protocol: routes, basic auth, and errors Label Studio can show."""

import socket

import pytest
from labelgate.client import Client

from fake_label_studio import LEGACY_TOKEN
from labelgate.label_studio.app import create_app
from labelgate.label_studio.images import ImageFetcher
from labelgate.label_studio.metrics import BackendMetrics
from labelgate.label_studio.predictor import Predictor, PredictorOptions
from labelgate.label_studio.task_images import TaskImages

CONFIG = '<View><Image name="image" value="$image"/><BrushLabels name="m" toName="image"><Label value="cat"/></BrushLabels></View>'
CLICK = {"result": [{"type": "keypointlabels", "original_width": 10, "original_height": 10, "is_positive": True,
                     "value": {"x": 50, "y": 50, "keypointlabels": ["cat"]}}]}


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def make_app(fake_label_studio):
    """An app whose labelgate address has nothing listening."""
    made = []

    def make(basic_auth=None):
        client = Client(f"127.0.0.1:{closed_port()}", timeout=2)
        metrics = BackendMetrics()
        predictor = Predictor(client, TaskImages(ImageFetcher(fake_label_studio.url, LEGACY_TOKEN)),
                              PredictorOptions(workers=2), metrics)
        made.append((predictor, client))
        return create_app(predictor, metrics, basic_auth).test_client()

    yield make
    for predictor, client in made:
        predictor.close()
        client.close()


def test_health_answers_up(make_app):
    for path in ("/health", "/"):
        response = make_app().get(path)
        assert response.status_code == 200 and response.get_json()["status"] == "UP"


def test_metrics_are_prometheus_text(make_app):
    response = make_app().get("/metrics")
    assert response.status_code == 200 and response.mimetype == "text/plain"
    assert "labelgate_ls_predict_seconds" in response.get_data(as_text=True)


def test_basic_auth_is_required_when_set(make_app):
    app = make_app(basic_auth=("ls", "s3cret"))
    assert app.get("/health").status_code == 401
    assert app.get("/health", auth=("ls", "wrong")).status_code == 401
    assert app.get("/health", auth=("ls", "s3cret")).status_code == 200


def test_setup_rejects_a_config_it_cannot_use_with_the_reason_in_the_status_line(make_app):
    response = make_app().post("/setup", json={"project": "1.1", "schema": '<View><Image name="i" value="$i"/></View>'})
    assert response.status_code == 400
    assert "nowhere to put the masks" in response.status  # Label Studio shows only the status line
    assert "nowhere to put the masks" in response.get_json()["error"]


def test_setup_says_when_labelgate_is_unreachable(make_app):
    response = make_app().post("/setup", json={"project": "1.1", "schema": CONFIG})
    assert response.status_code == 503
    assert "labelgate ListModels failed: UNAVAILABLE" in response.get_json()["error"]


def test_predict_says_when_the_image_cannot_be_fetched(make_app):
    body = {"tasks": [{"id": 4, "data": {"image": "/data/upload/1/missing.png"}}], "label_config": CONFIG,
            "params": {"context": CLICK}}
    response = make_app().post("/predict", json=body)
    assert response.status_code == 502
    assert "cannot get the task image or video" in response.get_json()["error"] and "HTTP 404" in response.status


def test_predict_rejects_a_task_without_the_image_field(make_app):
    body = {"tasks": [{"id": 4, "data": {"photo": "x"}}], "label_config": CONFIG, "params": {"context": CLICK}}
    response = make_app().post("/predict", json=body)
    assert response.status_code == 400 and "task 4 has no 'image'" in response.get_json()["error"]


def test_predict_rejects_a_body_that_is_not_json(make_app):
    response = make_app().post("/predict", data=b"nope", content_type="application/json")
    assert response.status_code == 400


def test_webhook_ignores_training_events_and_queues_new_tasks(make_app):
    app = make_app()
    assert app.post("/webhook", json={"action": "ANNOTATION_CREATED", "project": {}}).get_json() == {"status": "ignored"}
    answer = app.post("/webhook", json={"action": "TASKS_CREATED", "project": {"label_config": CONFIG},
                                        "tasks": [{"id": 1, "data": {"image": "/data/upload/1/a.png"}}]})
    assert answer.status_code == 200 and answer.get_json() == {"status": "ok", "queued": 1}
