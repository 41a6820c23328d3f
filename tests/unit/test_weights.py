"""The checkpoint list, fetch/verify and the `labelgate weights` CLI, all offline: downloads are
faked (or, where this machine has no network, really attempted and expected to fail fast), and
the "downloaded" files are the random-weight demo models. The Hub's refusals (401/403 of a gated
model) and its absence are simulated by faking `snapshot_download`."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.resources
import io
import json
import shutil
import socket
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import torch

from labelgate.models import checkpoints, weights, weights_cli
from labelgate.models.demo import SAM2_DEMO_CONFIG, SAM2_DEMO_OVERRIDES, extra_demo_paths
from labelgate.models.checkpoints import Sam2Spec
from labelgate.models.weights import HubAccessError, NoNetworkError, WeightsError

ALL_NAMES = [
    "sam2.1-hiera-tiny",
    "sam2.1-hiera-small",
    "sam2.1-hiera-base-plus",
    "sam2.1-hiera-large",
    "grounding-dino-tiny",
    "grounding-dino-base",
    "sam3",
    "edgetam",
]
DEMO_SAM2_SPEC = Sam2Spec(
    name="sam2-demo",
    url="https://weights.example.invalid/sam2_demo.pt",
    filename="sam2_demo.pt",
    config=SAM2_DEMO_CONFIG,
    overrides=SAM2_DEMO_OVERRIDES,
)


def run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="labelgate")
    weights_cli.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    return args.func(args)


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> tuple[Path, Path, str]:
    """`labelgate weights demo DIR`, once: (SAM 2 checkpoint, Grounding DINO dir, stdout)."""
    directory = tmp_path_factory.mktemp("demo")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert run_cli("weights", "demo", str(directory)) == 0
    sam2, gdino = weights_cli.demo_paths(directory)
    return sam2, gdino, out.getvalue()


@pytest.fixture(scope="module")
def extras(demo) -> dict[str, Path]:
    """The demo SAM 3 and EdgeTAM directories `labelgate weights demo` wrote, by kind."""
    return extra_demo_paths(demo[0].parent)


def leftovers(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*")) if directory.exists() else []


def reachable(url: str) -> bool:
    try:
        socket.create_connection((urllib.parse.urlsplit(url).hostname, 443), timeout=3).close()
        return True
    except OSError:
        return False


# --- checkpoints ------------------------------------------------------------------------------------


def test_checkpoint_names_and_defaults():
    assert checkpoints.names() == ALL_NAMES
    assert checkpoints.get(checkpoints.DEFAULT_SAM2).kind == "sam2"
    assert checkpoints.get(checkpoints.DEFAULT_GROUNDING_DINO).kind == "grounding-dino"
    with pytest.raises(KeyError, match="known: sam2.1-hiera-tiny, .*grounding-dino-base, sam3, edgetam"):
        checkpoints.get("sam4")


@pytest.mark.parametrize("spec", checkpoints.SAM2_SPECS, ids=lambda s: s.name)
def test_sam2_specs_are_consistent(spec, tmp_path):
    size = spec.name.removeprefix("sam2.1-hiera-").replace("-", "_")
    short = {"tiny": "t", "small": "s", "base_plus": "b+", "large": "l"}[size]
    assert spec.filename == f"sam2.1_hiera_{size}.pt"
    assert spec.url == f"https://dl.fbaipublicfiles.com/segment_anything_2/092824/{spec.filename}"
    assert spec.config == f"configs/sam2.1/sam2.1_hiera_{short}.yaml"
    assert (importlib.resources.files("sam2") / spec.config).is_file()
    assert spec.overrides == ()
    assert spec.local_path(tmp_path) == tmp_path / spec.filename
    with pytest.raises(Exception):  # frozen
        spec.url = "x"


def test_grounding_dino_specs(tmp_path):
    assert [(s.name, s.repo_id) for s in checkpoints.GROUNDING_DINO_SPECS] == [
        ("grounding-dino-tiny", "IDEA-Research/grounding-dino-tiny"),
        ("grounding-dino-base", "IDEA-Research/grounding-dino-base"),
    ]
    spec = checkpoints.get("grounding-dino-base")
    assert spec.local_path(tmp_path) == tmp_path / "grounding-dino-base"
    assert spec.source == "https://huggingface.co/IDEA-Research/grounding-dino-base"


def test_sam3_and_edgetam_specs(tmp_path):
    """The repository ids transformers' own SAM 3 and EdgeTAM code names (its docstrings and configs)."""
    sam3, edgetam = checkpoints.get("sam3"), checkpoints.get("edgetam")
    assert (sam3.repo_id, sam3.kind, sam3.gated) == ("facebook/sam3", "sam3", True)
    assert (edgetam.repo_id, edgetam.kind, edgetam.gated) == ("yonigozlan/EdgeTAM-hf", "edgetam", False)
    assert sam3.local_path(tmp_path) == tmp_path / "sam3" and sam3.source == "https://huggingface.co/facebook/sam3"
    edgetam_config = importlib.resources.files("transformers") / "models" / "edgetam" / "configuration_edgetam.py"
    assert 'checkpoint="yonigozlan/EdgeTAM-hf"' in edgetam_config.read_text()
    sam3_model = importlib.resources.files("transformers") / "models" / "sam3" / "modeling_sam3.py"
    assert 'Sam3Model.from_pretrained("facebook/sam3")' in sam3_model.read_text()


# --- verification --------------------------------------------------------------------------------


def test_verify_sam2_accepts_demo_checkpoint(demo):
    weights.verify_sam2(demo[0], SAM2_DEMO_CONFIG, SAM2_DEMO_OVERRIDES)
    weights.verify(DEMO_SAM2_SPEC, demo[0])


def test_verify_sam2_rejects_random_bytes(tmp_path):
    path = tmp_path / "junk.pt"
    path.write_bytes(torch.randint(0, 256, (4096,), dtype=torch.uint8).numpy().tobytes())
    with pytest.raises(WeightsError, match="not a valid SAM 2.1 checkpoint.*torch.load failed.*delete it and fetch again"):
        weights.verify_sam2(path, SAM2_DEMO_CONFIG, SAM2_DEMO_OVERRIDES)


def test_verify_sam2_rejects_missing_key_and_wrong_layout(demo, tmp_path):
    state = torch.load(demo[0], map_location="cpu", weights_only=True)["model"]
    dropped = "sam_mask_decoder.iou_prediction_head.layers.0.weight"
    del state[dropped]
    torch.save({"model": state}, tmp_path / "missing.pt")
    with pytest.raises(WeightsError, match=f"does not load into the model.*{dropped}"):
        weights.verify_sam2(tmp_path / "missing.pt", SAM2_DEMO_CONFIG, SAM2_DEMO_OVERRIDES)
    torch.save(state, tmp_path / "bare.pt")  # a bare state dict, not {'model': ...}
    with pytest.raises(WeightsError, match="expected a dict with a 'model' state dict"):
        weights.verify_sam2(tmp_path / "bare.pt", SAM2_DEMO_CONFIG, SAM2_DEMO_OVERRIDES)


def test_verify_sam2_rejects_checkpoint_of_other_config(demo):
    # The shrunk demo against the official Hiera-T architecture: missing blocks, other shapes.
    with pytest.raises(WeightsError, match="sam2.1_hiera_t.yaml: it does not load"):
        weights.verify_sam2(demo[0], checkpoints.get("sam2.1-hiera-tiny").config)


def test_verify_grounding_dino(demo, tmp_path):
    weights.verify_grounding_dino(demo[1])
    broken = tmp_path / "broken"
    shutil.copytree(demo[1], broken)
    with open(broken / "model.safetensors", "r+b") as handle:
        handle.truncate(handle.seek(0, 2) // 2)
    with pytest.raises(WeightsError, match="model.safetensors is not a complete safetensors file"):
        weights.verify_grounding_dino(broken)
    (broken / "config.json").unlink()
    with pytest.raises(WeightsError, match="no config.json"):
        weights.verify_grounding_dino(broken)
    with pytest.raises(WeightsError, match="not a valid Grounding DINO"):
        weights.verify_grounding_dino(tmp_path / "nothing-here")


@pytest.mark.parametrize("kind", ["sam3", "edgetam"])
def test_verify_sam3_and_edgetam_accept_their_demo_layout(extras, kind):
    weights.verify_pretrained(extras[kind], kind)
    weights.verify(kind, extras[kind])


def test_verify_rejects_another_kinds_directory(demo, extras):
    with pytest.raises(WeightsError, match="not a valid SAM 3 model: config.json has model_type 'grounding-dino'"):
        weights.verify("sam3", demo[1])
    with pytest.raises(WeightsError, match="not a valid EdgeTAM model: config.json has model_type 'sam3_video'"):
        weights.verify("edgetam", extras["sam3"])


def test_verify_sam3_needs_its_tokenizer(extras, tmp_path):
    copy = shutil.copytree(extras["sam3"], tmp_path / "sam3")
    (copy / "tokenizer.json").unlink()
    with pytest.raises(WeightsError, match=r"not a valid SAM 3 model: no tokenizer \(tokenizer.json or vocab.json\)"):
        weights.verify("sam3", copy)


def test_verify_edgetam_rejects_a_config_without_the_repvit_backbone(extras, tmp_path):
    """A config that leaves the backbone to transformers' EdgeTamConfig defaults (which misspell its
    `architecture`) would build another backbone than the one the weights are for."""
    copy = shutil.copytree(extras["edgetam"], tmp_path / "edgetam")
    config = json.loads((copy / "config.json").read_text())
    del config["vision_config"]["backbone_config"]
    (copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(WeightsError, match="not a valid EdgeTAM model: its config builds the backbone .*not EdgeTAM's RepViT"):
        weights.verify("edgetam", copy)


# --- fetch: SAM 2 (urllib faked) -----------------------------------------------------------------


class FakeResponse(io.BytesIO):
    def __init__(self, data: bytes, length: int | None = None):
        super().__init__(data)
        self.headers = {"Content-Length": str(len(data) if length is None else length)}


@pytest.fixture
def fake_urlopen(monkeypatch):
    """Replace urlopen; set `.respond` to bytes (served) or an exception (raised)."""

    class Fake:
        respond: bytes | Exception = b""
        length: int | None = None
        calls: list[str] = []

        def __call__(self, request, timeout=None):
            self.calls.append(request.full_url)
            assert timeout is not None and timeout <= 30, "connect must time out fast"
            if isinstance(self.respond, Exception):
                raise self.respond
            return FakeResponse(self.respond, self.length)

    fake = Fake()
    fake.calls = []
    monkeypatch.setattr(urllib.request, "urlopen", fake)
    return fake


def test_fetch_sam2_no_network(fake_urlopen, tmp_path):
    fake_urlopen.respond = urllib.error.URLError(socket.gaierror(-2, "Name or service not known"))
    spec = checkpoints.get("sam2.1-hiera-tiny")
    with pytest.raises(NoNetworkError) as caught:
        weights.fetch(spec.name, tmp_path, progress=False)
    message = str(caught.value)
    assert "cannot reach dl.fbaipublicfiles.com to download sam2.1-hiera-tiny (no network?)" in message
    assert spec.url in message and str(tmp_path / spec.filename) in message
    assert "labelgate weights demo" in message
    assert fake_urlopen.calls == [spec.url]
    assert leftovers(tmp_path) == []


def test_fetch_sam2_downloads_verifies_and_skips_when_present(fake_urlopen, demo, tmp_path, capsys):
    fake_urlopen.respond = demo[0].read_bytes()
    path = weights.fetch(DEMO_SAM2_SPEC, tmp_path)
    assert path == tmp_path / "sam2_demo.pt"
    assert path.read_bytes() == demo[0].read_bytes()
    assert leftovers(tmp_path) == [path]
    assert "verified" in capsys.readouterr().out
    weights.fetch(DEMO_SAM2_SPEC, tmp_path)
    assert "already present" in capsys.readouterr().out
    assert len(fake_urlopen.calls) == 1
    weights.fetch(DEMO_SAM2_SPEC, tmp_path, force=True, progress=False)
    assert len(fake_urlopen.calls) == 2


def test_fetch_sam2_replaces_a_corrupt_copy(fake_urlopen, demo, tmp_path):
    (tmp_path / "sam2_demo.pt").write_bytes(b"not a checkpoint")
    fake_urlopen.respond = demo[0].read_bytes()
    weights.fetch(DEMO_SAM2_SPEC, tmp_path, progress=False)
    weights.verify(DEMO_SAM2_SPEC, tmp_path / "sam2_demo.pt")


def test_fetch_sam2_rejects_truncated_and_invalid_downloads(fake_urlopen, demo, tmp_path):
    data = demo[0].read_bytes()
    fake_urlopen.respond, fake_urlopen.length = data[: len(data) // 2], len(data)
    with pytest.raises(WeightsError, match="stopped after"):
        weights.fetch(DEMO_SAM2_SPEC, tmp_path, progress=False)
    assert leftovers(tmp_path) == []
    fake_urlopen.respond, fake_urlopen.length = b"<html>captive portal</html>", None
    with pytest.raises(WeightsError, match="the file downloaded from .* is not a valid SAM 2.1 checkpoint"):
        weights.fetch(DEMO_SAM2_SPEC, tmp_path, progress=False)
    assert leftovers(tmp_path) == []


def test_fetch_sam2_http_error_is_not_no_network(fake_urlopen, tmp_path):
    fake_urlopen.respond = urllib.error.HTTPError(DEMO_SAM2_SPEC.url, 404, "Not Found", {}, None)
    with pytest.raises(WeightsError, match="HTTP 404") as caught:
        weights.fetch(DEMO_SAM2_SPEC, tmp_path, progress=False)
    assert not isinstance(caught.value, NoNetworkError)
    assert leftovers(tmp_path) == []


# --- fetch: Grounding DINO (snapshot_download faked) ---------------------------------------------


@pytest.fixture
def fake_snapshot(monkeypatch):
    """Replace huggingface_hub.snapshot_download; set `.respond` to a directory to copy from or an
    exception to raise."""
    import huggingface_hub

    class Fake:
        respond: Path | Exception | None = None
        calls: list[dict] = []

        def __call__(self, repo_id, **kwargs):
            self.calls.append({"repo_id": repo_id, **kwargs})
            if isinstance(self.respond, Exception):
                raise self.respond
            shutil.copytree(self.respond, kwargs["local_dir"], dirs_exist_ok=True)
            return str(kwargs["local_dir"])

    fake = Fake()
    fake.calls = []
    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake)
    return fake


def hub_connection_errors():
    from huggingface_hub.errors import LocalEntryNotFoundError

    wrapped = LocalEntryNotFoundError("An error happened while trying to locate the files on the Hub")
    wrapped.__cause__ = ConnectionError("[Errno -2] Name or service not known")
    return [wrapped, ConnectionError("Connection refused"), TimeoutError("timed out")]


@pytest.mark.parametrize("error", hub_connection_errors(), ids=lambda e: type(e).__name__)
def test_fetch_grounding_dino_no_network(fake_snapshot, tmp_path, error):
    fake_snapshot.respond = error
    with pytest.raises(NoNetworkError) as caught:
        weights.fetch("grounding-dino-tiny", tmp_path, progress=False)
    message = str(caught.value)
    assert "cannot reach huggingface.co to download grounding-dino-tiny (no network?)" in message
    assert "https://huggingface.co/IDEA-Research/grounding-dino-tiny" in message
    assert str(tmp_path / "grounding-dino-tiny") in message and "labelgate weights demo" in message
    assert leftovers(tmp_path) == []


def test_fetch_grounding_dino_hub_http_error_is_not_no_network(fake_snapshot, tmp_path):
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

    http = importlib.import_module(HfHubHTTPError.__mro__[1].__module__)  # the hub's httpx
    url = "https://huggingface.co/api/models/IDEA-Research/grounding-dino-tiny"
    response = http.Response(404, request=http.Request("GET", url))
    fake_snapshot.respond = RepositoryNotFoundError("Repository Not Found", response=response)
    with pytest.raises(WeightsError, match="Repository Not Found") as caught:
        weights.fetch("grounding-dino-tiny", tmp_path, progress=False)
    assert not isinstance(caught.value, NoNetworkError)


def test_fetch_grounding_dino_downloads_verifies_and_skips(fake_snapshot, demo, tmp_path, capsys):
    fake_snapshot.respond = demo[1]
    path = weights.fetch("grounding-dino-base", tmp_path)
    assert path == tmp_path / "grounding-dino-base" and (path / "model.safetensors").is_file()
    (call,) = fake_snapshot.calls
    assert call["repo_id"] == "IDEA-Research/grounding-dino-base" and Path(call["local_dir"]) == path
    assert {"config.json", "*.safetensors", "preprocessor_config.json", "tokenizer*", "vocab.txt"} <= set(call["allow_patterns"])
    weights.fetch("grounding-dino-base", tmp_path)
    assert "already present" in capsys.readouterr().out
    assert len(fake_snapshot.calls) == 1


# --- fetch: SAM 3 (gated) and EdgeTAM (snapshot_download faked) --------------------------------


def hub_refusal(status: int, gated: bool):
    """What huggingface_hub raises when the Hub answers `status` for facebook/sam3."""
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError

    http = importlib.import_module(HfHubHTTPError.__mro__[1].__module__)  # the hub's httpx
    url = "https://huggingface.co/api/models/facebook/sam3"
    response = http.Response(status, request=http.Request("GET", url))
    cls = GatedRepoError if gated else HfHubHTTPError
    return cls(f"{status} Client Error. Cannot access gated repo for url {url}.", response=response)


def wrapped_in_local_entry_not_found(error):
    """snapshot_download turns a refusal it does not single out into LocalEntryNotFoundError, the
    error it otherwise raises for no network, with the refusal as its cause."""
    from huggingface_hub.errors import LocalEntryNotFoundError

    wrapper = LocalEntryNotFoundError("An error happened while trying to locate the files on the Hub")
    wrapper.__cause__ = error
    return wrapper


@pytest.mark.parametrize("error", [
    hub_refusal(401, gated=True), hub_refusal(403, gated=True), wrapped_in_local_entry_not_found(hub_refusal(403, gated=False)),
], ids=["401 gated", "403 gated", "403 wrapped"])
def test_fetch_sam3_refused_by_the_hub_says_how_to_get_access(fake_snapshot, tmp_path, monkeypatch, error):
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)
    fake_snapshot.respond = error
    with pytest.raises(HubAccessError) as caught:
        weights.fetch("sam3", tmp_path, progress=False)
    message = str(caught.value)
    status = getattr(error.__cause__ or error, "response").status_code
    assert f"the Hugging Face Hub refused sam3 (HTTP {status}): facebook/sam3 is gated" in message
    assert "Accept its license at https://huggingface.co/facebook/sam3" in message
    assert "set HF_TOKEN" in message and "`hf auth login`" in message and "no token was sent" in message
    assert not isinstance(caught.value, NoNetworkError)
    assert leftovers(tmp_path) == []


def test_fetch_sam3_refused_with_a_token_says_it_was_sent(fake_snapshot, tmp_path, monkeypatch):
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "get_token", lambda: "hf_not_a_real_token")
    fake_snapshot.respond = hub_refusal(403, gated=True)
    with pytest.raises(HubAccessError, match="Accept its license .* the token in use .* was sent"):
        weights.fetch("sam3", tmp_path, progress=False)


@pytest.mark.parametrize("error", hub_connection_errors(), ids=lambda e: type(e).__name__)
def test_fetch_sam3_without_network_says_no_network(fake_snapshot, tmp_path, error):
    fake_snapshot.respond = error
    with pytest.raises(NoNetworkError) as caught:
        weights.fetch("sam3", tmp_path, progress=False)
    message = str(caught.value)
    assert "cannot reach huggingface.co to download sam3 (no network?)" in message
    assert "hf download facebook/sam3 --local-dir sam3` after accepting its license there, with HF_TOKEN set" in message
    assert "labelgate weights demo" in message
    assert leftovers(tmp_path) == []


def test_cli_fetch_sam3_exit_codes(fake_snapshot, tmp_path, capsys, monkeypatch):
    """Refused: 1, with what to do; no network: 2, as for every model."""
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)
    fake_snapshot.respond = hub_refusal(401, gated=True)
    assert run_cli("weights", "fetch", "sam3", "--dir", str(tmp_path), "--quiet") == 1
    err = capsys.readouterr().err
    assert "error: the Hugging Face Hub refused sam3 (HTTP 401)" in err and "https://huggingface.co/facebook/sam3" in err
    assert "HF_TOKEN" in err and "Traceback" not in err
    fake_snapshot.respond = ConnectionError("[Errno -2] Name or service not known")
    assert run_cli("weights", "fetch", "sam3", "--dir", str(tmp_path), "--quiet") == 2
    assert "cannot reach huggingface.co to download sam3 (no network?)" in capsys.readouterr().err


@pytest.mark.parametrize("kind", ["sam3", "edgetam"])
def test_fetch_sam3_and_edgetam_download_and_verify(fake_snapshot, extras, tmp_path, kind):
    fake_snapshot.respond = extras[kind]
    path = weights.fetch(kind, tmp_path, progress=False)
    assert path == tmp_path / kind and (path / "model.safetensors").is_file()
    (call,) = fake_snapshot.calls
    assert call["repo_id"] == checkpoints.get(kind).repo_id
    assert {"config.json", "*.safetensors", "tokenizer*", "vocab.json", "merges.txt", "processor_config.json"} <= set(call["allow_patterns"])
    assert not any(pattern.endswith((".pt", ".bin")) for pattern in call["allow_patterns"])  # not sam3.pt, 3.4 GB again
    weights.fetch(kind, tmp_path, progress=False)
    assert len(fake_snapshot.calls) == 1


def test_fetch_edgetam_rejects_a_download_of_the_wrong_layout(fake_snapshot, demo, tmp_path):
    fake_snapshot.respond = demo[1]  # a Grounding DINO where EdgeTAM should be
    with pytest.raises(WeightsError, match="not a valid EdgeTAM model: config.json has model_type 'grounding-dino'"):
        weights.fetch("edgetam", tmp_path, progress=False)


# --- fetch for real: this machine has no network ---------------------------------------------------


@pytest.mark.parametrize("name", ["sam2.1-hiera-tiny", "grounding-dino-tiny", "sam3"])
def test_fetch_really_fails_fast_without_network(name, tmp_path):
    spec = checkpoints.get(name)
    if reachable(spec.source):
        pytest.skip(f"{spec.source} is reachable; this test would download the real weights")
    with pytest.raises(NoNetworkError, match="labelgate weights demo"):
        weights.fetch(name, tmp_path, progress=False)
    assert leftovers(tmp_path) == []


# --- CLI -----------------------------------------------------------------------------------------


def test_cli_demo_writes_loadable_random_weights(demo, capsys):
    sam2, gdino, output = demo
    assert "random" in output.lower() and "meaningless" in output
    assert f"--sam2-config {SAM2_DEMO_CONFIG} --sam2-checkpoint {sam2}" in output
    assert "--sam2-override '++model.image_encoder.trunk.stages=[1,1,1,1]'" in output
    assert f"--gdino-model {gdino}" in output
    assert f"--model sam3=sam3:{sam2.parent / 'sam3_demo'} --model edgetam=edgetam:{sam2.parent / 'edgetam_demo'}" in output

    from transformers import GroundingDinoForObjectDetection

    from labelgate.models.sam2.torch_backend import load_sam2

    model = load_sam2(SAM2_DEMO_CONFIG, sam2, "cpu", SAM2_DEMO_OVERRIDES)
    assert model.image_size == 256
    detector = GroundingDinoForObjectDetection.from_pretrained(gdino)
    assert detector.config.model_type == "grounding-dino"

    # Again: nothing is rewritten.
    stamps = (sam2.stat().st_mtime_ns, (gdino / "model.safetensors").stat().st_mtime_ns)
    assert weights_cli.ensure_demo_weights(sam2.parent) == (sam2, gdino)
    assert run_cli("weights", "demo", str(sam2.parent)) == 0
    assert "already present" in capsys.readouterr().out
    assert stamps == (sam2.stat().st_mtime_ns, (gdino / "model.safetensors").stat().st_mtime_ns)
    assert sorted(p.name for p in sam2.parent.iterdir()) == ["edgetam_demo", "grounding_dino_demo", "sam2_demo.pt", "sam3_demo"]


def test_demo_serve_args(tmp_path):
    args = weights_cli.demo_serve_args(tmp_path)
    assert args[:4] == ["--sam2-config", SAM2_DEMO_CONFIG, "--sam2-checkpoint", str(tmp_path / "sam2_demo.pt")]
    assert [args[i + 1] for i, a in enumerate(args) if a == "--sam2-override"] == list(SAM2_DEMO_OVERRIDES)
    assert args[-6:] == ["--gdino-model", str(tmp_path / "grounding_dino_demo"),
                         "--model", f"sam3=sam3:{tmp_path / 'sam3_demo'}", "--model", f"edgetam=edgetam:{tmp_path / 'edgetam_demo'}"]


def test_cli_fetch_without_network_exits_2_with_plain_message(fake_urlopen, tmp_path, capsys):
    fake_urlopen.respond = urllib.error.URLError(socket.gaierror(-2, "Name or service not known"))
    assert run_cli("weights", "fetch", "sam2.1-hiera-small", "--dir", str(tmp_path), "--quiet") == 2
    err = capsys.readouterr().err
    assert "cannot reach dl.fbaipublicfiles.com to download sam2.1-hiera-small (no network?)" in err
    assert checkpoints.get("sam2.1-hiera-small").url in err and "labelgate weights demo" in err
    assert "Traceback" not in err
    assert leftovers(tmp_path) == []


def test_cli_fetch_failure_exits_1(fake_urlopen, tmp_path, capsys):
    fake_urlopen.respond = urllib.error.HTTPError("u", 403, "Forbidden", {}, None)
    assert run_cli("weights", "fetch", "sam2.1-hiera-tiny", "--dir", str(tmp_path), "--quiet") == 1
    assert "HTTP 403" in capsys.readouterr().err
    assert run_cli("weights", "fetch", "sam4") == 1
    assert "unknown model sam4" in capsys.readouterr().err


def test_cli_list(tmp_path, capsys):
    (tmp_path / "sam2.1_hiera_large.pt").write_bytes(b"")
    assert run_cli("weights", "list", "--dir", str(tmp_path)) == 0
    lines = capsys.readouterr().out.splitlines()
    for name in ALL_NAMES:
        (line,) = [line for line in lines if line.startswith(name + " ")]
        assert line.endswith(" yes" if name == "sam2.1-hiera-large" else " no")
        assert str(checkpoints.get(name).local_path(tmp_path)) in line
    assert any("https://huggingface.co/IDEA-Research/grounding-dino-tiny" in line for line in lines)


def test_cli_help_mentions_every_subcommand(capsys):
    with pytest.raises(SystemExit) as exit_:
        run_cli("weights", "--help")
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert all(word in out for word in ("list", "fetch", "demo", *ALL_NAMES))


def test_demo_directory_install_replaces_an_incomplete_attempt_and_keeps_a_complete_copy(tmp_path):
    """Servers started together write the same demo weights: the first complete copy stays."""
    from labelgate.models.demo import _install_directory

    def model(directory: Path, marker: str) -> Path:
        directory.mkdir(parents=True)
        (directory / "config.json").write_text(json.dumps({"tracker_config": {"marker": marker}}))  # a SAM 3 with its tracker
        (directory / "model.safetensors").write_text(marker)
        return directory

    target = tmp_path / "sam3_demo"
    target.mkdir()
    (target / "config.json").write_text("interrupted")  # no weights: an earlier run died
    _install_directory(model(tmp_path / "part-1", "first"), target)
    assert (target / "model.safetensors").read_text() == "first"
    _install_directory(model(tmp_path / "part-2", "second"), target)  # another process, too late
    assert (target / "model.safetensors").read_text() == "first"


def test_a_demo_sam3_without_the_tracker_is_not_present_so_it_is_written_again(demo_weights, tmp_path):
    """A demo directory from before SAM 3's tracker was in it would serve no clicks: it counts as missing."""
    import json
    import shutil

    from labelgate.models.demo import demo_present, extra_demo_paths

    directory = tmp_path / "demo"
    shutil.copytree(demo_weights, directory)
    sam3 = extra_demo_paths(directory)["sam3"]
    assert demo_present(directory)[sam3]
    config = json.loads((sam3 / "config.json").read_text())
    (sam3 / "config.json").write_text(json.dumps({k: v for k, v in config.items() if k != "tracker_config"}))
    present = demo_present(directory)
    assert not present[sam3] and all(ok for path, ok in present.items() if path != sam3)
