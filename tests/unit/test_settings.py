"""`labelgate serve` configuration: flags, LABELGATE_* variables, defaults and start-up validation."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

from labelgate.server.settings import GiB, MiB, Settings, add_serve_arguments, normalize_args

ISSUE_FLAGS = (
    "--host", "--port", "--metrics-port", "--device", "--sam2-config", "--sam2-checkpoint", "--sam2-override",
    "--gdino-model", "--cache-bytes", "--max-batch-size", "--max-batch-delay-ms",
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch, tmp_path):
    """No LABELGATE_* from the outside, and a working directory without weights/."""
    for name in list(os.environ):
        if name.startswith("LABELGATE_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def parse(*argv: str) -> Settings:
    """What `labelgate serve ARGV` builds, without validating. The parser reads the environment
    when it is built, so build it after setting variables."""
    parser = argparse.ArgumentParser(prog="labelgate serve")
    add_serve_arguments(parser)
    return Settings.from_args(normalize_args(parser.parse_args(list(argv))))


@pytest.fixture
def checkpoint(tmp_path) -> Path:
    path = tmp_path / "ckpt" / "sam2.pt"
    path.parent.mkdir()
    path.write_bytes(b"not really a checkpoint; validate() only checks that it exists")
    return path


@pytest.fixture
def gdino_dir(tmp_path) -> Path:
    directory = tmp_path / "gdino"
    directory.mkdir()
    (directory / "config.json").write_text("{}")
    return directory


def test_defaults():
    settings = parse()
    assert settings == Settings()
    assert (settings.host, settings.port, settings.metrics_port) == ("127.0.0.1", 50051, 9464)
    assert (settings.device, settings.dtype) == ("auto", "fp32")
    assert settings.sam2_config == "configs/sam2.1/sam2.1_hiera_t.yaml"
    assert settings.sam2_checkpoint == "weights/sam2.1_hiera_tiny.pt"
    assert settings.sam2_override == ()
    assert settings.gdino_model == "weights/grounding-dino-tiny"
    assert settings.demo_weights == ""
    assert (settings.cache_bytes, settings.image_cache_bytes) == (2 * GiB, 512 * MiB)
    assert (settings.max_batch_size, settings.max_batch_delay_ms, settings.max_queue) == (8, 5.0, 256)
    assert (settings.max_points, settings.max_boxes) == (64, 100)
    assert settings.warmup is True


def test_defaults_validate_once_the_default_weights_exist(tmp_path):
    (tmp_path / "weights" / "grounding-dino-tiny").mkdir(parents=True)
    (tmp_path / "weights" / "sam2.1_hiera_tiny.pt").write_bytes(b"x")
    (tmp_path / "weights" / "grounding-dino-tiny" / "config.json").write_text("{}")
    assert parse().validate() == Settings()


def test_every_flag_of_the_issue_sets_its_field(checkpoint, gdino_dir):
    settings = parse(
        "--host", "0.0.0.0", "--port", "6000", "--metrics-port", "-1", "--device", "cpu",
        "--sam2-config", "configs/sam2.1/sam2.1_hiera_l.yaml", "--sam2-checkpoint", str(checkpoint),
        "--sam2-override", "++model.image_size=512", "--sam2-override", "++model.x=[1,2]",
        "--gdino-model", str(gdino_dir), "--cache-bytes", "1000", "--max-batch-size", "3", "--max-batch-delay-ms", "7.5",
    ).validate()
    assert settings.host == "0.0.0.0"
    assert settings.port == 6000
    assert settings.metrics_port == -1
    assert settings.device == "cpu"
    assert settings.sam2_config == "configs/sam2.1/sam2.1_hiera_l.yaml"
    assert settings.sam2_checkpoint == str(checkpoint)
    assert settings.sam2_override == ("++model.image_size=512", "++model.x=[1,2]")
    assert settings.gdino_model == str(gdino_dir)
    assert settings.cache_bytes == 1000
    assert settings.max_batch_size == 3
    assert settings.max_batch_delay_ms == 7.5


def test_the_other_flags_set_their_fields():
    settings = parse(
        "--dtype", "bf16", "--sam2-name", "sam2_custom", "--demo-weights", "demo", "--image-cache-bytes", "5",
        "--max-queue", "2", "--max-message-bytes", "300", "--max-image-pixels", "400", "--max-points", "9",
        "--max-boxes", "8", "--grace-seconds", "1.5", "--no-warmup", "--port-file", "p.json", "--log-level", "DEBUG",
        "--metrics-host", "0.0.0.0",
    )
    assert (settings.dtype, settings.sam2_name, settings.demo_weights) == ("bf16", "sam2_custom", "demo")
    assert (settings.image_cache_bytes, settings.max_queue, settings.max_message_bytes) == (5, 2, 300)
    assert (settings.max_image_pixels, settings.max_points, settings.max_boxes) == (400, 9, 8)
    assert (settings.grace_seconds, settings.warmup, settings.port_file) == (1.5, False, "p.json")
    assert (settings.log_level, settings.metrics_host) == ("DEBUG", "0.0.0.0")


def test_environment_variables_set_values(monkeypatch):
    monkeypatch.setenv("LABELGATE_PORT", "7000")
    monkeypatch.setenv("LABELGATE_HOST", "0.0.0.0")
    monkeypatch.setenv("LABELGATE_DEVICE", "cuda:1")
    monkeypatch.setenv("LABELGATE_CACHE_BYTES", "12345")
    monkeypatch.setenv("LABELGATE_MAX_BATCH_DELAY_MS", "2.5")
    monkeypatch.setenv("LABELGATE_WARMUP", "false")
    settings = parse()
    assert (settings.port, settings.host, settings.device) == (7000, "0.0.0.0", "cuda:1")
    assert (settings.cache_bytes, settings.max_batch_delay_ms) == (12345, 2.5)
    assert settings.warmup is False


def test_an_empty_gdino_model_variable_turns_the_detector_off_like_the_flag(monkeypatch):
    monkeypatch.setenv("LABELGATE_GDINO_MODEL", "")
    assert parse().gdino_model == ""


def test_a_flag_beats_its_environment_variable(monkeypatch):
    monkeypatch.setenv("LABELGATE_PORT", "7000")
    monkeypatch.setenv("LABELGATE_MAX_BATCH_SIZE", "16")
    monkeypatch.setenv("LABELGATE_WARMUP", "false")
    settings = parse("--port", "7001", "--warmup")
    assert settings.port == 7001
    assert settings.max_batch_size == 16  # no flag: the variable
    assert settings.warmup is True


def test_sam2_override_variable_is_space_separated_so_lists_survive(monkeypatch):
    monkeypatch.setenv("LABELGATE_SAM2_OVERRIDE", " ++model.image_size=512  ++model.image_encoder.trunk.stages=[1,1,1,1] ")
    assert parse().sam2_override == ("++model.image_size=512", "++model.image_encoder.trunk.stages=[1,1,1,1]")


def test_sam2_override_flags_replace_the_variable(monkeypatch):
    monkeypatch.setenv("LABELGATE_SAM2_OVERRIDE", "++model.image_size=512 ++model.a=b")
    assert parse("--sam2-override", "++model.c=d").sam2_override == ("++model.c=d",)


INVALID = {
    "negative cache bytes": (["--cache-bytes=-1"], "--cache-bytes must be > 0, got -1"),
    "zero image cache": (["--image-cache-bytes", "0"], "--image-cache-bytes must be > 0, got 0"),
    "zero batch size": (["--max-batch-size", "0"], "--max-batch-size must be > 0"),
    "zero queue": (["--max-queue", "0"], "--max-queue must be > 0"),
    "zero max points": (["--max-points", "0"], "--max-points must be > 0"),
    "negative batch delay": (["--max-batch-delay-ms=-1"], "--max-batch-delay-ms"),
    "bad dtype": (["--dtype", "fp8"], "--dtype fp8: choose fp32, bf16 or fp16"),
    "bad device": (["--device", "tpu"], "--device tpu: choose auto, cpu, cuda or cuda:N"),
    "port too large": (["--port", "99999"], "--port 99999: not a port"),
    "negative port": (["--port=-1"], "--port must be >= 0"),
    "metrics port too large": (["--metrics-port", "70000"], "--metrics-port 70000: not a port"),
    "override without =": (["--sam2-override", "++model.image_size"], "--sam2-override '++model.image_size': expected KEY=VALUE"),
}


@pytest.mark.parametrize("name", sorted(INVALID))
def test_invalid_values_fail_validate_naming_the_flag(name, checkpoint):
    argv, phrase = INVALID[name]
    settings = parse("--sam2-checkpoint", str(checkpoint), "--gdino-model", "", *argv)
    with pytest.raises(ValueError) as caught:
        settings.validate()
    assert phrase in str(caught.value)
    assert str(caught.value).startswith("invalid settings:")


@pytest.mark.parametrize("flag", ["--max-batch-delay-ms", "--grace-seconds"])
@pytest.mark.parametrize("value", ["nan", "inf"])
def test_non_finite_durations_fail_validate(flag, value, checkpoint):
    settings = parse("--sam2-checkpoint", str(checkpoint), "--gdino-model", "", flag, value)
    with pytest.raises(ValueError) as caught:
        settings.validate()
    assert flag in str(caught.value)


def test_invalid_environment_values_fail_validate_too(monkeypatch, checkpoint):
    monkeypatch.setenv("LABELGATE_DTYPE", "int4")
    monkeypatch.setenv("LABELGATE_SAM2_OVERRIDE", "no-equals-sign")
    with pytest.raises(ValueError) as caught:
        parse("--sam2-checkpoint", str(checkpoint), "--gdino-model", "").validate()
    assert "--dtype int4" in str(caught.value)
    assert "--sam2-override 'no-equals-sign'" in str(caught.value)


def test_every_problem_is_reported_at_once(checkpoint):
    with pytest.raises(ValueError) as caught:
        parse("--sam2-checkpoint", str(checkpoint), "--gdino-model", "", "--dtype", "x", "--max-queue", "0").validate()
    assert "--dtype x" in str(caught.value) and "--max-queue must be > 0" in str(caught.value)


def test_missing_checkpoint_says_how_to_fetch_it():
    with pytest.raises(ValueError) as caught:
        parse("--sam2-checkpoint", "nowhere/sam2.pt", "--gdino-model", "").validate()
    message = str(caught.value)
    assert "--sam2-checkpoint nowhere/sam2.pt: no such file" in message
    assert "labelgate weights fetch sam2.1-hiera-tiny" in message
    assert "--demo-weights" in message


def test_a_checkpoint_directory_is_not_a_checkpoint(tmp_path):
    with pytest.raises(ValueError, match="no such file"):
        parse("--sam2-checkpoint", str(tmp_path), "--gdino-model", "").validate()


def test_missing_gdino_directory_says_how_to_fetch_it_or_turn_it_off(checkpoint, tmp_path):
    with pytest.raises(ValueError) as caught:
        parse("--sam2-checkpoint", str(checkpoint), "--gdino-model", str(tmp_path / "none")).validate()
    message = str(caught.value)
    assert "not a save_pretrained directory (no config.json)" in message
    assert "labelgate weights fetch grounding-dino-tiny" in message
    assert "--gdino-model ''" in message


def test_gdino_model_empty_serves_without_a_detector(checkpoint):
    assert parse("--sam2-checkpoint", str(checkpoint), "--gdino-model", "").validate().gdino_model == ""


def test_demo_weights_skip_the_weights_checks(tmp_path):
    settings = parse("--demo-weights", str(tmp_path / "demo-not-yet-written"), "--sam2-checkpoint", "nowhere.pt").validate()
    assert settings.demo_weights == str(tmp_path / "demo-not-yet-written")


def test_demo_weights_do_not_skip_the_other_checks(tmp_path):
    with pytest.raises(ValueError, match="--cache-bytes must be > 0"):
        parse("--demo-weights", str(tmp_path), "--cache-bytes", "0").validate()


# --- the real command line -----------------------------------------------------------------------


def run_cli(*argv: str, cwd: Path, keep: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LABELGATE_") or k in keep}
    env["HF_HUB_OFFLINE"] = "1"
    return subprocess.run(
        [sys.executable, "-m", "labelgate.cli", *argv], capture_output=True, text=True, cwd=cwd, env=env, timeout=60
    )


def test_serve_help_lists_every_flag(tmp_path):
    result = run_cli("serve", "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for flag in ISSUE_FLAGS + ("--demo-weights", "--max-queue", "--max-message-bytes", "--max-image-pixels"):
        assert flag in result.stdout, flag
    assert "LABELGATE_CACHE_BYTES" in result.stdout


def test_serve_with_an_invalid_port_exits_2_with_a_message(tmp_path):
    result = run_cli("serve", "--port", "99999", "--demo-weights", str(tmp_path / "demo"), cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "labelgate serve: invalid settings" in result.stderr
    assert "--port 99999: not a port" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "demo").exists()  # failed before loading anything


def test_serve_on_a_busy_port_exits_1_with_a_message(tmp_path):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_cli("serve", "--port", str(port), "--metrics-port", "-1", "--demo-weights", str(tmp_path / "demo"),
                         cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr


@pytest.mark.parametrize("variable, value", [("LABELGATE_PORT", "abc"), ("LABELGATE_WARMUP", "maybe")])
def test_an_invalid_environment_value_exits_2_naming_the_variable(tmp_path, monkeypatch, variable, value):
    monkeypatch.setenv(variable, value)
    result = run_cli("serve", "--demo-weights", str(tmp_path / "demo"), cwd=tmp_path, keep=(variable,))
    assert "Traceback" not in result.stderr
    assert result.returncode == 2
    assert variable in result.stderr or "--" + variable[len("LABELGATE_"):].lower().replace("_", "-") in result.stderr
