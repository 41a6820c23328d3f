"""The ML backend HTTP protocol Label Studio speaks (as in label-studio-ml-backend's
`label_studio_ml/api.py`), over a Predictor:

    POST /predict  {tasks, label_config, project, params: {context}} -> {results: [prediction per task]}
    POST /setup    {project, schema, extra_params}                   -> {model_version}
    POST /webhook  {action, project, tasks?, ...}                   -> TASKS_CREATED pre-embeds the images
    GET  /health, GET /                                              -> {status: "UP"}
    GET  /metrics                                                    -> Prometheus text

Errors are mapped to HTTP statuses in one place (`_status_for`). Label Studio shows only the
status line of a failed call, so the message also goes into the reason phrase.
"""

from __future__ import annotations

import hmac
import logging

import grpc
from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException
from labelgate.client import LabelgateClientError

from labelgate.label_studio.images import ImageFetchError
from labelgate.label_studio.label_config import LabelConfigError, parse_label_config
from labelgate.label_studio.metrics import CONTENT_TYPE, BackendMetrics
from labelgate.label_studio.predictor import PredictError, Predictor
from labelgate.label_studio.prompts import PromptError

log = logging.getLogger(__name__)

_REASON_MAX_CHARS = 300


def create_app(predictor: Predictor, metrics: BackendMetrics, basic_auth: tuple[str, str] | None = None) -> Flask:
    app = Flask(__name__)

    @app.before_request
    def check_basic_auth():
        if basic_auth is None:
            return None
        auth = request.authorization
        if (auth is None or not hmac.compare_digest(auth.username or "", basic_auth[0])
                or not hmac.compare_digest(auth.password or "", basic_auth[1])):
            return Response("Unauthorized", 401, {"WWW-Authenticate": 'Basic realm="labelgate"'})
        return None

    @app.post("/predict")
    def predict():
        body = _json_body()
        params = body.get("params") or {}
        results = predictor.predict(body.get("tasks") or [], body.get("label_config") or "", params.get("context"))
        return jsonify({"results": results})

    @app.post("/setup")
    def setup():
        body = _json_body()
        parse_label_config(body.get("schema") or "")  # a config this backend cannot use fails the connection
        return jsonify({"model_version": predictor.model_version()})

    @app.post("/webhook")
    def webhook():
        body = _json_body()
        if body.get("action") != "TASKS_CREATED":
            return jsonify({"status": "ignored"})  # this backend does not train
        label_config = (body.get("project") or {}).get("label_config") or ""
        queued = predictor.pre_embed_in_background(body.get("tasks") or [], label_config)
        return jsonify({"status": "ok", "queued": queued})

    @app.get("/")
    @app.get("/health")
    def health():
        return jsonify({"status": "UP", "model_class": "LabelgateBackend"})

    @app.get("/metrics")
    def prometheus():
        return Response(metrics.render(), mimetype=CONTENT_TYPE)

    @app.errorhandler(Exception)
    def error(exception: Exception):
        status, message = _status_for(exception)
        if status >= 500 and not isinstance(exception, (ImageFetchError, LabelgateClientError)):
            log.exception("%s %s failed", request.method, request.path)
        else:
            log.warning("%s %s: %s", request.method, request.path, message)
        response = jsonify({"error": message})
        response.status = f"{status} {_reason(message)}"
        return response

    return app


def _json_body() -> dict:
    body = request.get_json(force=True, silent=True)
    if not isinstance(body, dict):
        raise PredictError("the request body must be a JSON object")
    return body


def _status_for(exception: Exception) -> tuple[int, str]:
    """The one mapping from errors to HTTP statuses."""
    if isinstance(exception, HTTPException):
        return exception.code or 500, exception.description or exception.name
    if isinstance(exception, (LabelConfigError, PromptError, PredictError)):
        return 400, str(exception)
    if isinstance(exception, ImageFetchError):
        return 502, f"cannot get the task image or video: {exception}"
    if isinstance(exception, LabelgateClientError):
        status = 503 if exception.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED) else 502
        return status, f"labelgate {getattr(exception, 'method', '') or 'call'} failed: {exception}"
    return 500, f"internal error: {type(exception).__name__} (details in the backend's log)"


def _reason(message: str) -> str:
    """An HTTP reason phrase: one line of Latin-1 text."""
    flat = " ".join(message.split())[:_REASON_MAX_CHARS]
    return flat.encode("latin-1", "replace").decode("latin-1")
