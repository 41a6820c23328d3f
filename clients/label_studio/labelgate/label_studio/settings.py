"""The backend's settings: command-line flags, each with an environment variable as its default.
Label Studio's own variable names are kept (LABEL_STUDIO_URL, LABEL_STUDIO_API_KEY,
BASIC_AUTH_USER / BASIC_AUTH_PASS), so a setup written for upstream ML backends carries over."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class BackendSettings:
    host: str
    port: int
    threads: int
    labelgate_server: str
    labelgate_timeout: float
    label_studio_url: str
    label_studio_api_key: str
    basic_auth_user: str
    basic_auth_pass: str
    box_threshold: float
    text_threshold: float
    workers: int
    sam2_model: str
    detector_model: str
    concept_model: str
    concept_threshold: float
    max_instances: int
    exemplar_labels: tuple[str, ...]
    video_frames: int
    video_cache_mb: int
    log_level: str

    @property
    def basic_auth(self) -> tuple[str, str] | None:
        return (self.basic_auth_user, self.basic_auth_pass) if self.basic_auth_user and self.basic_auth_pass else None


def _first(environ: Mapping[str, str], *names: str, default: str = "") -> str:
    return next((environ[name] for name in names if environ.get(name)), default)


def _label_list(text: str) -> tuple[str, ...]:
    return tuple(label.strip() for label in text.split(",") if label.strip())


def parse_settings(argv: Sequence[str] | None = None, environ: Mapping[str, str] = os.environ) -> BackendSettings:
    # String defaults go through each flag's `type`, so a bad variable fails like a bad flag.
    env = lambda *names, default="": _first(environ, *names, default=default)  # noqa: E731
    parser = argparse.ArgumentParser(
        prog="labelgate-label-studio",
        description="Label Studio ML backend serving SAM 2 masks, Grounding DINO boxes and SAM 3 instances from a "
                    "labelgate server.")
    parser.add_argument("--host", default=env("LABELGATE_LS_HOST", default="127.0.0.1"),
                        help="address to listen on; 0.0.0.0 when Label Studio runs on another machine or in Docker "
                             "[LABELGATE_LS_HOST, 127.0.0.1]")
    parser.add_argument("--port", type=int, default=env("LABELGATE_LS_PORT", default="9090"),
                        help="HTTP port [LABELGATE_LS_PORT, 9090]")
    parser.add_argument("--threads", type=int, default=env("LABELGATE_LS_THREADS", default="8"),
                        help="HTTP requests served at once [LABELGATE_LS_THREADS, 8]")
    parser.add_argument("--labelgate", dest="labelgate_server", default=env("LABELGATE_SERVER", default="127.0.0.1:50051"),
                        help="labelgate gRPC address host:port [LABELGATE_SERVER, 127.0.0.1:50051]")
    parser.add_argument("--labelgate-timeout", type=float, default=env("LABELGATE_LS_TIMEOUT", default="60"),
                        help="seconds one labelgate call may take [LABELGATE_LS_TIMEOUT, 60]")
    parser.add_argument("--label-studio-url", default=env("LABEL_STUDIO_URL", "LABEL_STUDIO_HOST"),
                        help="Label Studio's address, to download task images [LABEL_STUDIO_URL]")
    parser.add_argument("--label-studio-api-key", default=env("LABEL_STUDIO_API_KEY", "LABEL_STUDIO_ACCESS_TOKEN"),
                        help="personal access token or legacy token [LABEL_STUDIO_API_KEY]")
    parser.add_argument("--basic-auth-user", default=env("BASIC_AUTH_USER"),
                        help="require HTTP basic auth from Label Studio [BASIC_AUTH_USER]")
    parser.add_argument("--basic-auth-pass", default=env("BASIC_AUTH_PASS"), help="[BASIC_AUTH_PASS]")
    parser.add_argument("--box-threshold", type=float, default=env("LABELGATE_LS_BOX_THRESHOLD", default="0"),
                        help="Grounding DINO box threshold, 0 = labelgate's default [LABELGATE_LS_BOX_THRESHOLD]")
    parser.add_argument("--text-threshold", type=float, default=env("LABELGATE_LS_TEXT_THRESHOLD", default="0"),
                        help="Grounding DINO text threshold, 0 = labelgate's default [LABELGATE_LS_TEXT_THRESHOLD]")
    parser.add_argument("--workers", type=int, default=env("LABELGATE_LS_WORKERS", default="8"),
                        help="concurrent labelgate calls for batch predictions and pre-embedding [LABELGATE_LS_WORKERS, 8]")
    parser.add_argument("--sam2-model", default=env("LABELGATE_LS_SAM2_MODEL"),
                        help="labelgate SAM 2 model name, '' = its default [LABELGATE_LS_SAM2_MODEL]")
    parser.add_argument("--detector-model", default=env("LABELGATE_LS_DETECTOR_MODEL"),
                        help="labelgate Grounding DINO model name, '' = its default [LABELGATE_LS_DETECTOR_MODEL]")
    parser.add_argument("--concept-model", default=env("LABELGATE_LS_CONCEPT_MODEL"),
                        help="labelgate concept model (kind sam3) for text prompts and batch predictions: every instance "
                             "of each label; '' = Grounding DINO + SAM 2 [LABELGATE_LS_CONCEPT_MODEL]")
    parser.add_argument("--concept-threshold", type=float, default=env("LABELGATE_LS_CONCEPT_THRESHOLD", default="0"),
                        help="the concept model's instance score threshold, 0 = labelgate's default "
                             "[LABELGATE_LS_CONCEPT_THRESHOLD]")
    parser.add_argument("--max-instances", type=int, default=env("LABELGATE_LS_MAX_INSTANCES", default="0"),
                        help="at most this many instances per concept request, 0 = labelgate's default "
                             "[LABELGATE_LS_MAX_INSTANCES]")
    parser.add_argument("--exemplar-labels", type=_label_list, default=env("LABELGATE_LS_EXEMPLAR_LABELS"),
                        help="comma-separated RectangleLabels labels whose boxes are exemplars for the concept model: "
                             "every similar object comes back as a mask [LABELGATE_LS_EXEMPLAR_LABELS]")
    parser.add_argument("--video-frames", type=int, default=env("LABELGATE_LS_VIDEO_FRAMES", default="0"),
                        help="frames a video box is tracked past its last keyframe, 0 = to the end of the clip "
                             "[LABELGATE_LS_VIDEO_FRAMES, 0]")
    parser.add_argument("--video-cache-mb", type=int, default=env("LABELGATE_LS_VIDEO_CACHE_MB", default="512"),
                        help="MiB of task videos kept in memory, so that tracking another box in the same video does not "
                             "download it again; 0 keeps none [LABELGATE_LS_VIDEO_CACHE_MB, 512]")
    parser.add_argument("--log-level", default=env("LABELGATE_LS_LOG_LEVEL", default="INFO"),
                        choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="[LABELGATE_LS_LOG_LEVEL, INFO]")
    args = parser.parse_args(argv)

    if not 0 <= args.port <= 65535:
        parser.error(f"--port must be 0-65535, got {args.port}")
    for name in ("threads", "workers"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1, got {getattr(args, name)}")
    if not args.labelgate_timeout > 0:
        parser.error(f"--labelgate-timeout must be > 0, got {args.labelgate_timeout}")
    for name in ("box_threshold", "text_threshold"):
        if not 0.0 <= getattr(args, name) <= 1.0:
            parser.error(f"--{name.replace('_', '-')} must be between 0 and 1, got {getattr(args, name)}")
    if not 0.0 <= args.concept_threshold <= 1.0:
        parser.error(f"--concept-threshold must be between 0 and 1, got {args.concept_threshold}")
    if args.max_instances < 0:
        parser.error(f"--max-instances must be 0 (labelgate's default) or more, got {args.max_instances}")
    if args.video_frames < 0:
        parser.error(f"--video-frames must be 0 (to the end of the clip) or more, got {args.video_frames}")
    if args.video_cache_mb < 0:
        parser.error(f"--video-cache-mb must be 0 (keep no videos) or more, got {args.video_cache_mb}")
    if args.exemplar_labels and not args.concept_model:
        parser.error("--exemplar-labels needs --concept-model: exemplar boxes go to a concept model (kind sam3)")
    if args.label_studio_url and not args.label_studio_url.startswith(("http://", "https://")):
        parser.error(f"--label-studio-url must start with http:// or https://, got {args.label_studio_url!r}")
    if bool(args.basic_auth_user) != bool(args.basic_auth_pass):
        parser.error("basic auth needs both --basic-auth-user and --basic-auth-pass")
    return BackendSettings(**vars(args))
