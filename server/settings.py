"""`labelgate serve` configuration: one typed settings object, from flags or LABELGATE_* variables.

Every flag `--some-name` can also be set with `LABELGATE_SOME_NAME`; a flag wins over the
variable. Repeatable flags take a space-separated list in their variable. `Settings.validate()` fails loudly at start on anything that cannot work.
"""

from __future__ import annotations

import argparse
import math
import os
from dataclasses import dataclass, field, fields
from pathlib import Path

from labelgate.models.default_pair import DEFAULT_GDINO_MODEL, DEFAULT_SAM2_CHECKPOINT, DEFAULT_SAM2_CONFIG
from labelgate.models.spec import ModelSpec
from labelgate.server.batcher import PRIORITIES

MiB = 1024 * 1024
GiB = 1024 * MiB



@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 50051
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 9464
    device: str = "auto"
    dtype: str = "fp32"
    sam2_config: str = DEFAULT_SAM2_CONFIG
    sam2_checkpoint: str = DEFAULT_SAM2_CHECKPOINT
    sam2_override: tuple[str, ...] = ()
    sam2_name: str = ""
    gdino_model: str = DEFAULT_GDINO_MODEL
    demo_weights: str = ""
    model: tuple[str, ...] = ()
    models_file: str = ""
    plugin: tuple[str, ...] = ()
    backend: str = "torch"
    triton_url: str = "127.0.0.1:8001"
    cache_bytes: int = 2 * GiB
    image_cache_bytes: int = 512 * MiB
    refine_cache_bytes: int = 64 * MiB
    redis_url: str = ""
    redis_ttl_seconds: int = 3600
    redis_key_prefix: str = "labelgate:"
    redis_timeout_ms: float = 500.0
    redis_lock_seconds: float = 10.0
    max_batch_size: int = 8
    max_batch_delay_ms: float = 5.0
    max_queue: int = 256
    heavy_stage_priority: str = "idle"  # one of batcher.PRIORITIES
    max_message_bytes: int = 256 * MiB
    max_image_pixels: int = 100_000_000
    max_points: int = 64
    max_boxes: int = 100
    video_max_sessions: int = 8
    video_session_ttl_s: float = 600.0
    video_session_bytes: int = 1 * GiB
    video_window: int = 16
    grace_seconds: float = 10.0
    warmup: bool = True
    port_file: str = ""
    log_level: str = "INFO"
    tls_cert: str = ""
    tls_key: str = ""
    tls_client_ca: str = ""
    auth_token: str = field(default="", repr=False)

    def validate(self) -> "Settings":
        problems = []
        for name in ("port", "metrics_port"):
            value = getattr(self, name)
            if not -1 <= value <= 65535:
                problems.append(f"--{_flag(name)} {value}: not a port (0 = any free port, -1 = off for metrics)")
        if self.port < 0:
            problems.append("--port must be >= 0")
        positive = ("cache_bytes", "image_cache_bytes", "refine_cache_bytes", "max_batch_size", "max_queue", "max_message_bytes", "max_image_pixels",
                    "max_points", "max_boxes", "video_max_sessions", "video_session_ttl_s", "video_session_bytes", "video_window")
        problems += [f"--{_flag(n)} must be > 0, got {getattr(self, n)}" for n in positive if getattr(self, n) <= 0]
        for name in ("max_batch_delay_ms", "grace_seconds"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                problems.append(f"--{_flag(name)} must be a finite number >= 0, got {value}")
        if self.heavy_stage_priority not in PRIORITIES:
            problems.append(f"--heavy-stage-priority {self.heavy_stage_priority}: choose {', '.join(PRIORITIES)}")
        problems += _redis_problems(self)
        if self.dtype not in ("fp32", "bf16", "fp16"):
            problems.append(f"--dtype {self.dtype}: choose fp32, bf16 or fp16")
        if not (self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:")):
            problems.append(f"--device {self.device}: choose auto, cpu, cuda or cuda:N")
        for override in self.sam2_override:
            if "=" not in override:
                problems.append(f"--sam2-override {override!r}: expected KEY=VALUE, e.g. ++model.image_size=512")
        for text in self.model:
            try:
                ModelSpec.parse(text)
            except ValueError as error:
                problems.append(str(error))
        if self.models_file and not Path(self.models_file).is_file():
            problems.append(f"--models-file {self.models_file}: no such file")
        if not self.demo_weights and not (self.model or self.models_file):
            if self.backend == "torch" and not Path(self.sam2_checkpoint).is_file():
                problems.append(
                    f"--sam2-checkpoint {self.sam2_checkpoint}: no such file. Fetch it with "
                    "`labelgate weights fetch sam2.1-hiera-tiny` or try offline with --demo-weights DIR"
                )
            if self.gdino_model and not Path(self.gdino_model, "config.json").is_file():
                problems.append(
                    f"--gdino-model {self.gdino_model}: not a save_pretrained directory (no config.json). Fetch it with "
                    "`labelgate weights fetch grounding-dino-tiny`, or pass --gdino-model '' to serve without text prompts"
                )
        problems += _tls_problems(self)
        problems += _backend_problems(self)
        if problems:
            raise ValueError("invalid settings:\n  " + "\n  ".join(problems))
        return self

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "Settings":
        return cls(**{f.name: getattr(args, f.name) for f in fields(cls)})


_HELP = {
    "host": "address to serve gRPC on",
    "port": "gRPC port (0 = any free port)",
    "metrics_host": "address of the Prometheus /metrics endpoint",
    "metrics_port": "Prometheus /metrics port (0 = any free port, -1 = off)",
    "device": "auto (CUDA if available), cpu, cuda or cuda:N",
    "dtype": ("model precision on CUDA: fp32, bf16 or fp16 for SAM 2 and Grounding DINO clicks and boxes (SAM 3 and "
              "EdgeTAM: fp32; video tracking: always bf16 autocast, as upstream; CPU is always fp32)"),
    "sam2_config": "bundled sam2 config name, e.g. configs/sam2.1/sam2.1_hiera_l.yaml",
    "sam2_checkpoint": "SAM 2 checkpoint ({'model': state_dict} .pt, as published)",
    "sam2_override": "hydra override for the SAM 2 config, KEY=VALUE (repeatable), e.g. ++model.image_size=512",
    "sam2_name": "model name clients use (default: the config's name, e.g. sam2.1_hiera_t)",
    "gdino_model": "Grounding DINO save_pretrained directory ('' = no text prompts)",
    "demo_weights": "serve random demo weights from DIR (written if missing); overrides the SAM 2 and Grounding DINO flags, "
                    "and adds a demo SAM 3 and EdgeTAM (models sam3, edgetam)",
    "model": "serve a model: NAME=KIND:WEIGHTS[,KEY=VALUE...] (repeatable), e.g. large=sam2:weights/sam2.1_hiera_large.pt "
             "or gd=grounding_dino:weights/grounding-dino-tiny; given without --demo-weights, it replaces the "
             "SAM 2 / Grounding DINO flags; the first model of each capability is the default",
    "models_file": "YAML file listing models to serve (models: [{name, kind, weights, OPTION: VALUE}]), like --model",
    "plugin": "module or .py file to import before loading models (repeatable): it registers more model kinds",
    "backend": "torch (models in this process) or triton (models in Triton Inference Server at --triton-url; "
               "--gdino-model then only provides the Grounding DINO processor)",
    "triton_url": "Triton Inference Server gRPC address HOST:PORT, for --backend triton",
    "cache_bytes": "byte budget of the image-feature caches, shared by the models (about 16 MiB per image for SAM 2 "
                   "at 1024 px; a model's cache_share option sets its part)",
    "image_cache_bytes": "byte budget for received encoded images, kept so later calls can send only the image id",
    "refine_cache_bytes": "byte budget for the low-res logits of returned masks, kept so a later Segment can refine a mask "
                          "by its mask_id (256 KiB per mask at 1024 px; ids evicted least recently used first)",
    "redis_url": "shared SAM 2 feature cache for all replicas, e.g. redis://redis:6379/0 ('' = off)",
    "redis_ttl_seconds": "how long features stay in Redis after they were written",
    "redis_key_prefix": "prefix of every Redis key labelgate writes (several deployments can share one Redis)",
    "redis_timeout_ms": "Redis socket timeout; a slower Redis counts as down and requests go on without it",
    "redis_lock_seconds": "replicas wait at most this long for another replica encoding the same image",
    "max_batch_size": "most requests per model call",
    "max_batch_delay_ms": "longest a request waits for others to batch with",
    "max_queue": "requests waiting per model before RESOURCE_EXHAUSTED",
    "heavy_stage_priority": "CPU priority of the image-encoder and detector threads when the models run on the CPU: idle "
                            "(SCHED_IDLE: clicks, the mask decoder, preempt them at once), low (niceness 19) or normal",
    "max_message_bytes": "largest gRPC message accepted or sent",
    "max_image_pixels": "largest image accepted, in pixels (decompression-bomb guard)",
    "max_points": "most points per Segment request",
    "max_boxes": "most boxes per Segment request",
    "video_max_sessions": "most video tracking sessions open at once (OpenVideo past it: RESOURCE_EXHAUSTED)",
    "video_session_ttl_s": "a video session idle this many seconds is closed (later calls on it: NOT_FOUND)",
    "video_session_bytes": "most memory one video session may hold: its encoded frames, a few decoded ones, and the tracker's "
                           "per-frame memory (past it: RESOURCE_EXHAUSTED and the session is closed)",
    "video_window": "frames around the last tracked one whose tracking memory a session keeps, besides the prompted frames; "
                    ">= 16 keeps SAM 2.1's propagation identical to upstream's (docs/video.md)",
    "grace_seconds": "on SIGTERM/SIGINT, how long in-flight requests get to finish",
    "warmup": "run every model once before reporting SERVING",
    "port_file": "write {'port':..., 'metrics_port':...} as JSON here once listening",
    "log_level": "DEBUG, INFO, WARNING or ERROR",
    "tls_cert": "PEM certificate chain: serve TLS instead of plaintext (with --tls-key)",
    "tls_key": "PEM private key of --tls-cert",
    "tls_client_ca": "PEM CA bundle: require client certificates signed by it (mutual TLS; needs --tls-cert)",
    "auth_token": "require 'authorization: Bearer TOKEN' on every Labelgate call (health and reflection stay open); "
                  "prefer the variable to the flag, which other users can see in ps",
}


def _redis_problems(settings: Settings) -> list[str]:
    if not settings.redis_url:
        return []
    problems = []
    if not settings.redis_url.startswith(("redis://", "rediss://", "unix://")):
        problems.append(f"--redis-url {settings.redis_url}: expected redis://HOST:PORT/DB, rediss://... or unix://PATH")
    if settings.redis_ttl_seconds <= 0:
        problems.append(f"--redis-ttl-seconds must be > 0, got {settings.redis_ttl_seconds}")
    for name in ("redis_timeout_ms", "redis_lock_seconds"):
        value = getattr(settings, name)
        if not (math.isfinite(value) and value > 0):
            problems.append(f"--{_flag(name)} must be a finite number > 0, got {value}")
    return problems


def _tls_problems(settings: Settings) -> list[str]:
    problems = []
    if bool(settings.tls_cert) != bool(settings.tls_key):
        problems.append("--tls-cert and --tls-key go together: give both to serve TLS, or neither")
    if settings.tls_client_ca and not settings.tls_cert:
        problems.append("--tls-client-ca needs --tls-cert and --tls-key (client certificates are checked over TLS)")
    for name in ("tls_cert", "tls_key", "tls_client_ca"):
        path = getattr(settings, name)
        if path and not Path(path).is_file():
            problems.append(f"--{_flag(name)} {path}: no such file")
    if any(c in settings.auth_token for c in "\r\n"):
        problems.append("--auth-token must be a single line")
    return problems


def _flag(name: str) -> str:
    return name.replace("_", "-")


def _env(name: str) -> str | None:
    return os.environ.get("LABELGATE_" + name.upper())


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected true or false, got {text!r}")


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds one flag per Settings field. Flags left out default to None; `normalize_args` then
    fills them from LABELGATE_* variables or the field default, so nothing is read at import or
    parser-building time."""
    for spec in fields(Settings):
        name, default = spec.name, spec.default
        shown = " ".join(default) if isinstance(default, tuple) else default
        help_text = f"{_HELP[name]} [env LABELGATE_{name.upper()}] (default: {shown!r})"
        if isinstance(default, tuple):
            parser.add_argument(f"--{_flag(name)}", action="append", default=None,
                                help=help_text.replace("] (", ", space-separated] ("))
        elif isinstance(default, bool):
            parser.add_argument(f"--{_flag(name)}", action=argparse.BooleanOptionalAction, default=None, help=help_text)
        else:
            parser.add_argument(f"--{_flag(name)}", type=type(default), default=None, help=help_text)


def normalize_args(args: argparse.Namespace) -> argparse.Namespace:
    """Fills flags not given from LABELGATE_* variables, then from the defaults; repeatable flags
    become tuples (flags given replace the variable's list). Bad variables raise ValueError."""
    for spec in fields(Settings):
        value = getattr(args, spec.name)
        if value is None:
            env = _env(spec.name)
            value = spec.default if env is None else _from_env(spec.name, env, spec.default)
        setattr(args, spec.name, tuple(value) if isinstance(spec.default, tuple) else value)
    return args


def _from_env(name: str, text: str, default):
    variable = f"LABELGATE_{name.upper()}"
    try:
        if isinstance(default, tuple):
            return tuple(text.split())
        if isinstance(default, bool):
            return _parse_bool(text)
        return type(default)(text)
    except (ValueError, argparse.ArgumentTypeError) as error:
        raise ValueError(f"{variable}={text!r}: expected {type(default).__name__} ({error})") from None


def _backend_problems(settings: Settings) -> list[str]:
    if settings.backend not in ("torch", "triton"):
        return [f"--backend {settings.backend}: choose torch or triton"]
    if settings.backend == "triton":
        host, _, port = settings.triton_url.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) <= 65535:
            return [f"--triton-url {settings.triton_url!r}: expected HOST:PORT of Triton's gRPC endpoint, e.g. 127.0.0.1:8001"]
    return []
