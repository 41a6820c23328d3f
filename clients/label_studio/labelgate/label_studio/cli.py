"""`labelgate-label-studio`: wires the settings, the labelgate client, the image fetcher and the
HTTP app together and serves them with waitress."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import waitress
from labelgate.client import Client

from labelgate.label_studio.app import create_app
from labelgate.label_studio.images import ImageFetcher
from labelgate.label_studio.metrics import BackendMetrics
from labelgate.label_studio.predictor import Predictor, PredictorOptions
from labelgate.label_studio.settings import parse_settings
from labelgate.label_studio.task_images import TaskImages

log = logging.getLogger("labelgate.label_studio")


def main(argv: Sequence[str] | None = None) -> None:
    settings = parse_settings(argv)
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not settings.label_studio_url:
        log.warning("LABEL_STUDIO_URL is not set: only tasks whose images are plain http(s) URLs will work")
    try:  # LABELGATE_AUTH_TOKEN, LABELGATE_TLS_CA, ...: the SDK reads them (see Client.from_env)
        client = Client.from_env(target=settings.labelgate_server, timeout=settings.labelgate_timeout)
    except (ValueError, OSError) as error:
        raise SystemExit(f"labelgate-label-studio: {error}") from None
    fetcher = ImageFetcher(settings.label_studio_url, settings.label_studio_api_key)
    metrics = BackendMetrics()
    options = PredictorOptions(box_threshold=settings.box_threshold, text_threshold=settings.text_threshold,
                               workers=settings.workers, sam2_model=settings.sam2_model,
                               detector_model=settings.detector_model, concept_model=settings.concept_model,
                               concept_threshold=settings.concept_threshold, max_instances=settings.max_instances,
                               exemplar_labels=settings.exemplar_labels, video_frames=settings.video_frames,
                               video_cache_bytes=settings.video_cache_mb * 2**20)
    predictor = Predictor(client, TaskImages(fetcher), options, metrics)
    app = create_app(predictor, metrics, settings.basic_auth)
    log.info("serving the Label Studio ML backend on http://%s:%d for labelgate at %s", settings.host, settings.port,
             settings.labelgate_server)
    try:
        waitress.serve(app, host=settings.host, port=settings.port, threads=settings.threads, ident="labelgate")
    finally:
        predictor.close()
        client.close()


if __name__ == "__main__":
    main()
