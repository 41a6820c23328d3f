"""Fetch the official checkpoints of `labelgate.models.checkpoints` and check that they load.

    fetch("sam2.1-hiera-tiny", "weights")    # -> weights/sam2.1_hiera_tiny.pt
    fetch("grounding-dino-tiny", "weights")  # -> weights/grounding-dino-tiny/
    fetch("sam3", "weights")                 # -> weights/sam3/ (gated: accept the license, set HF_TOKEN)

A SAM 2 checkpoint is streamed to `<file>.part`, checked by building the architecture from its
bundled config and loading it strictly through sam2's own code, and only then renamed into
place; a Hub model (Grounding DINO, SAM 3, EdgeTAM) is a `huggingface_hub.snapshot_download` into
its own directory, checked by its config, safetensors headers and processor files. Anything
already present that verifies is not downloaded again.

Without a network every fetch fails fast with `NoNetworkError`, whose message says where to get
the files by hand and points at `labelgate weights demo` for offline random weights. A Hub answer
of 401/403 (a gated model without an accepted license or token) is `HubAccessError`, whose
message says how to get access.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import shutil
import socket
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

from labelgate.models import checkpoints
from labelgate.models.checkpoints import HubSpec, Sam2Spec, Spec

CONNECT_TIMEOUT_S = 15.0  # urllib applies it to the connect and to each read of the stream
CHUNK_BYTES = 1 << 20

# What `snapshot_download` fetches of a Hub repository: the safetensors weights (not a duplicate
# pytorch_model.bin or facebook/sam3's original sam3.pt), the config, and the processor/tokenizer
# files (BERT's vocab.txt for Grounding DINO, CLIP's vocab.json + merges.txt for SAM 3).
HUB_FILES = [
    "config.json",
    "*.safetensors",
    "model.safetensors.index.json",
    "preprocessor_config.json",
    "processor_config.json",
    "tokenizer*",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "special_tokens_map.json",
]


class WeightsError(Exception):
    """A checkpoint could not be fetched or is not what it should be. The message says what to do."""


class NoNetworkError(WeightsError):
    """The download server cannot be reached (no network, DNS, proxy, firewall, offline mode)."""


class HubAccessError(WeightsError):
    """The Hub refused the download (401/403): a gated model whose license this account has not
    accepted, or no (or a wrong) token."""


def _spec(name_or_spec: str | Spec) -> Spec:
    return checkpoints.get(name_or_spec) if isinstance(name_or_spec, str) else name_or_spec


def fetch(name: str | Spec, weights_dir: Path | str, *, force: bool = False, progress: bool = True) -> Path:
    """Download a known checkpoint into `weights_dir` (unless it is already there and verifies)
    and return its local path: the .pt file for SAM 2, the model directory for a Hub model.

    `name` is a checkpoint name (models.checkpoints) (or a spec). `force` downloads again even if a valid copy exists.
    Raises KeyError for an unknown name, NoNetworkError when the server cannot be reached,
    HubAccessError when the Hub refuses access (gated), and WeightsError when the download fails
    or does not verify."""
    spec = _spec(name)
    path = spec.local_path(weights_dir)
    redownload = force
    if not force and _present(spec, path):
        try:
            verify(spec, path)
        except WeightsError as error:
            _say(progress, f"{spec.name}: the copy at {path} does not verify ({error}); downloading it again")
            redownload = True
        else:
            _say(progress, f"{spec.name}: already present at {path}")
            return path
    path.parent.mkdir(parents=True, exist_ok=True)
    _say(progress, f"{spec.name}: downloading {spec.source} to {path}")
    if isinstance(spec, Sam2Spec):
        _fetch_sam2(spec, path, progress)
    else:
        _fetch_hub(spec, path, progress, redownload)
    _say(progress, f"{spec.name}: verified, at {path}")
    return path


def verify(name: str | Spec, path: Path | str) -> None:
    """Raise WeightsError unless `path` holds a loadable copy of the named checkpoint."""
    spec = _spec(name)
    if isinstance(spec, Sam2Spec):
        verify_sam2(path, spec.config, spec.overrides)
    else:
        verify_pretrained(path, spec.kind)


def is_present(name: str | Spec, weights_dir: Path | str) -> bool:
    """Whether the checkpoint's files are at their local path (cheap; does not verify them)."""
    spec = _spec(name)
    return _present(spec, spec.local_path(weights_dir))


def _present(spec: Spec, path: Path) -> bool:
    if isinstance(spec, Sam2Spec):
        return path.is_file()
    return (path / "config.json").is_file() and any(path.glob("*.safetensors"))


# --- SAM 2 ---------------------------------------------------------------------------------------


def verify_sam2(path: Path | str, config: str, overrides: Sequence[str] = ()) -> None:
    """Check that `path` is a `{'model': state_dict}` checkpoint that loads strictly (no missing
    or unexpected keys, no shape mismatch) into the SAM 2 built from `config` + `overrides`."""
    path = Path(path)

    def invalid(reason: str) -> WeightsError:
        error = WeightsError(
            f"file {path} is not a valid SAM 2.1 checkpoint for {_describe(config, overrides)}: {reason}; "
            "delete it and fetch again"
        )
        error.reason = reason
        return error

    import torch

    try:
        # mmap: look at the structure without holding a second copy of a large checkpoint in
        # memory; a legacy (non-zip) torch.save file cannot be mmapped, so read that one whole.
        try:
            checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as error:
            if "mmap" not in str(error):
                raise
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise invalid(f"torch.load failed: {_short(error)}") from error
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("model"), dict):
        keys = list(checkpoint)[:5] if isinstance(checkpoint, dict) else type(checkpoint).__name__
        raise invalid(f"expected a dict with a 'model' state dict, got {keys}")
    del checkpoint

    from labelgate.models.sam2.torch_backend import load_sam2

    try:
        load_sam2(config, path, "cpu", overrides)
    except Exception as error:
        raise invalid(f"it does not load into the model: {_short(error)}") from error


def _fetch_sam2(spec: Sam2Spec, path: Path, progress: bool) -> None:
    part = path.with_name(path.name + ".part")
    try:
        _download(spec, part, path, progress)
        try:
            verify_sam2(part, spec.config, spec.overrides)
        except WeightsError as error:
            raise WeightsError(
                f"the file downloaded from {spec.url} is not a valid SAM 2.1 checkpoint for "
                f"{_describe(spec.config, spec.overrides)}: {getattr(error, 'reason', error)}; it was deleted, fetch again"
            ) from error
        os.replace(part, path)
    finally:
        part.unlink(missing_ok=True)


def _download(spec: Sam2Spec, part: Path, path: Path, progress: bool) -> None:
    from tqdm.auto import tqdm

    request = urllib.request.Request(spec.url, headers={"User-Agent": "labelgate"})
    try:
        response = urllib.request.urlopen(request, timeout=CONNECT_TIMEOUT_S)
    except urllib.error.HTTPError as error:  # reached the server; it said no
        raise WeightsError(f"downloading {spec.name} from {spec.url} failed: HTTP {error.code} {error.reason}") from error
    except (urllib.error.URLError, OSError) as error:  # DNS, refused, unreachable, timeout, proxy
        raise NoNetworkError(_no_network_message(spec, path, error)) from error
    with response:
        total = _int_or_none(response.headers.get("Content-Length"))
        received = 0
        try:
            with open(part, "wb") as out, tqdm(
                total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=spec.filename, disable=not progress
            ) as bar:
                while chunk := response.read(CHUNK_BYTES):
                    out.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
        except (OSError, http.client.HTTPException) as error:  # timeouts, resets, IncompleteRead
            raise WeightsError(
                f"downloading {spec.name} from {spec.url} was interrupted after {received} bytes: {_short(error)}; "
                "run the fetch again"
            ) from error
    if total is not None and received != total:
        raise WeightsError(
            f"downloading {spec.name} from {spec.url} stopped after {received} of {total} bytes; run the fetch again"
        )


# --- Hub models: Grounding DINO, SAM 3, EdgeTAM -------------------------------------------------


@dataclass(frozen=True)
class _HubLayout:
    """What a transformers `save_pretrained` directory of one kind must hold, besides config.json and
    complete safetensors weights: each entry of `files` is a group of names of which one must exist."""

    title: str
    model_types: tuple[str, ...]  # config.json's model_type, one of these
    files: tuple[tuple[str, tuple[str, ...]], ...]  # (what it is, any of these names)


_PROCESSOR = ("image processor config", ("preprocessor_config.json", "processor_config.json"))
HUB_LAYOUTS = {
    "grounding-dino": _HubLayout("Grounding DINO", ("grounding-dino",),
                                 (("tokenizer", ("tokenizer.json", "vocab.txt")), _PROCESSOR)),
    # facebook/sam3 is a sam3_video config (detector + tracker); a bare Sam3Model save is sam3 (concepts only).
    "sam3": _HubLayout("SAM 3", ("sam3_video", "sam3"), (("tokenizer", ("tokenizer.json", "vocab.json")), _PROCESSOR)),
    "edgetam": _HubLayout("EdgeTAM", ("edgetam",), (_PROCESSOR,)),
}


def verify_grounding_dino(directory: Path | str) -> None:
    verify_pretrained(directory, "grounding-dino")


def verify_pretrained(directory: Path | str, kind: str) -> None:
    """Check that `directory` is a transformers model of `kind` (a key of HUB_LAYOUTS): its config
    loads and says so, its safetensors files are complete (headers cover the files), and the
    processor files exist; for EdgeTAM, the config builds the RepViT backbone. Cheap: no weights
    are read."""
    directory = Path(directory)
    layout = HUB_LAYOUTS[kind]

    def invalid(reason: str) -> WeightsError:
        return WeightsError(
            f"directory {directory} is not a valid {layout.title} model: {reason}; delete it and fetch again"
        )

    if not (directory / "config.json").is_file():
        raise invalid("no config.json")
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(directory)
    except Exception as error:
        raise invalid(f"config.json does not load: {_short(error)}") from error
    if config.model_type not in layout.model_types:
        raise invalid(f"config.json has model_type {config.model_type!r}, not {' or '.join(map(repr, layout.model_types))}")
    if kind == "edgetam":
        _check_edgetam_backbone(config, invalid)
    weights = sorted(directory.glob("*.safetensors"))
    if not weights:
        raise invalid("no *.safetensors weights")
    from safetensors import safe_open

    tensors = 0
    for file in weights:
        try:
            with safe_open(str(file), framework="pt") as handle:  # checks the header covers the whole file
                tensors += len(list(handle.keys()))
        except Exception as error:
            raise invalid(f"{file.name} is not a complete safetensors file: {_short(error)}") from error
    if tensors == 0:
        raise invalid("the safetensors files hold no tensors")
    for what, names in layout.files:
        if not any((directory / name).is_file() for name in names):
            raise invalid(f"no {what} ({' or '.join(names)})")


def _check_edgetam_backbone(config, invalid) -> None:
    """transformers 5.24's EdgeTamConfig defaults misspell the backbone's `architecture`, so a config
    without an explicit RepViT backbone silently builds a timm resnet50 that the weights do not fit."""
    backbone = getattr(getattr(config, "vision_config", None), "backbone_config", None)
    architecture = str(getattr(backbone, "architecture", "") or "")
    if not architecture.startswith("repvit"):
        raise invalid(f"its config builds the backbone {architecture or 'unknown'!r}, not EdgeTAM's RepViT")


def _fetch_hub(spec: HubSpec, path: Path, progress: bool, redownload: bool = False) -> None:
    from huggingface_hub import snapshot_download

    created = not path.exists()
    try:
        with _hub_progress(progress):
            snapshot_download(
                spec.repo_id,
                revision=spec.revision,
                local_dir=path,
                allow_patterns=HUB_FILES,
                force_download=redownload,
            )
    except Exception as error:
        _remove_if_empty(path, created)
        from huggingface_hub.errors import HfHubHTTPError

        status = _refused_status(error)
        if status is not None:  # reached the Hub; it refused (gated, no or wrong token)
            raise HubAccessError(_access_message(spec, status)) from error
        if not isinstance(error, HfHubHTTPError) and _is_network_error(error):
            raise NoNetworkError(_no_network_message(spec, path, error)) from error
        raise WeightsError(f"downloading {spec.name} from {spec.source} failed: {_short(error)}") from error
    verify_pretrained(path, spec.kind)


def _refused_status(error: BaseException) -> int | None:
    """401 or 403 where the Hub answered so anywhere in the chain (snapshot_download wraps some of
    them in its LocalEntryNotFoundError, which otherwise means no network), else None."""
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError

    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, HfHubHTTPError):
            status = getattr(getattr(error, "response", None), "status_code", None)
            if status in (401, 403):
                return status
            if isinstance(error, GatedRepoError):
                return 403
        error = error.__cause__ or error.__context__
    return None


# Class names of the connection/timeout errors of httpx (huggingface_hub >= 1) and requests (older).
_NETWORK_ERROR_NAMES = ("ConnectError", "ConnectTimeout", "ConnectionError", "NetworkError", "ProxyError", "TimeoutException")


def _is_network_error(error: BaseException) -> bool:
    """Whether huggingface_hub failed to reach the Hub at all: its LocalEntryNotFoundError (what
    it raises when the Hub is unreachable and nothing is cached), offline mode, or a connection
    or timeout error of whichever HTTP client it uses, anywhere in the exception chain."""
    from huggingface_hub.errors import LocalEntryNotFoundError

    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, (LocalEntryNotFoundError, ConnectionError, TimeoutError, socket.gaierror, urllib.error.URLError)):
            return True
        if any(name in cls.__name__ for cls in type(error).__mro__ for name in _NETWORK_ERROR_NAMES):
            return True
        error = error.__cause__ or error.__context__
    return False


@contextlib.contextmanager
def _hub_progress(enabled: bool) -> Iterator[None]:
    if enabled:
        yield
        return
    from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

    was_disabled = are_progress_bars_disabled()
    disable_progress_bars()
    try:
        yield
    finally:
        if not was_disabled:
            enable_progress_bars()


def _remove_if_empty(path: Path, created: bool) -> None:
    """Undo a directory this fetch created if nothing was downloaded into it; a partial download
    (huggingface_hub's `.incomplete` files) is kept so that the next fetch resumes it."""
    if created and path.is_dir() and not any(p.is_file() for p in path.rglob("*")):
        shutil.rmtree(path, ignore_errors=True)


# --- messages ------------------------------------------------------------------------------------


def _no_network_message(spec: Spec, path: Path, error: BaseException) -> str:
    if isinstance(spec, Sam2Spec):
        url = spec.url
        how = f"Download {url} on a machine with internet access and put it at {path}"
    else:
        from huggingface_hub import constants

        url = f"{constants.ENDPOINT.rstrip('/')}/{spec.repo_id}"
        revision = f" --revision {spec.revision}" if spec.revision else ""
        gated = " after accepting its license there, with HF_TOKEN set" if spec.gated else ""
        how = (
            f"Download {url} on a machine with internet access (e.g. `hf download {spec.repo_id}{revision} "
            f"--local-dir {spec.name}`{gated}) and put that directory at {path}"
        )
    host = urllib.parse.urlsplit(url).hostname or url
    offline = ""
    if isinstance(spec, HubSpec) and os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        offline = " HF_HUB_OFFLINE is set, so huggingface_hub does not try the network; unset it to download."
    return (
        f"cannot reach {host} to download {spec.name} (no network?): {_root_cause(error)}.{offline} "
        f"{how}, or run `labelgate weights demo DIR` for offline random weights."
    )


def _access_message(spec: HubSpec, status: int) -> str:
    from huggingface_hub import get_token

    token = ("the token in use (HF_TOKEN or `hf auth login`) was sent" if get_token()
             else "no token was sent: none is set (HF_TOKEN) and none is saved (`hf auth login`)")
    if spec.gated:
        return (
            f"the Hugging Face Hub refused {spec.name} (HTTP {status}): {spec.repo_id} is gated. Accept its license "
            f"at {spec.source} (logged in to the Hub), then set HF_TOKEN to a read token of that account (or run "
            f"`hf auth login`) and fetch again; {token}."
        )
    return (f"the Hugging Face Hub refused {spec.name} (HTTP {status}) at {spec.source}; {token}. "
            "Set HF_TOKEN to a valid token (or run `hf auth login`), or unset a wrong one, and fetch again.")


def _root_cause(error: BaseException) -> str:
    """The innermost error of the chain, e.g. `gaierror: [Errno -2] Name or service not known`."""
    seen = set()
    while id(error) not in seen:
        seen.add(id(error))
        inner = error.__cause__ or error.__context__ or getattr(error, "reason", None)
        if not isinstance(inner, BaseException):
            break
        error = inner
    return f"{type(error).__name__}: {_short(error, 200).rstrip('.')}"


def _describe(config: str, overrides: Sequence[str]) -> str:
    return config + (f" with overrides {' '.join(overrides)}" if overrides else "")


def _short(error: BaseException, limit: int = 600) -> str:
    text = str(error).strip().replace("\n", " ") or type(error).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _int_or_none(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _say(enabled: bool, message: str) -> None:
    if enabled:
        print(message, flush=True)
