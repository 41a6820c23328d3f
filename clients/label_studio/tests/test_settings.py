"""Settings: flags, their environment variables, and loud failures for bad values."""

import pytest

from labelgate.label_studio.settings import parse_settings


def test_defaults():
    settings = parse_settings([], {})
    assert (settings.host, settings.port, settings.labelgate_server) == ("127.0.0.1", 9090, "127.0.0.1:50051")
    assert settings.basic_auth is None and settings.label_studio_url == ""


def test_environment_variables_including_label_studios_own_names():
    settings = parse_settings([], {"LABEL_STUDIO_HOST": "http://ls:8080", "LABEL_STUDIO_ACCESS_TOKEN": "abc",
                                   "LABELGATE_SERVER": "gpu:50051", "LABELGATE_LS_PORT": "9191",
                                   "BASIC_AUTH_USER": "u", "BASIC_AUTH_PASS": "p", "LABELGATE_LS_BOX_THRESHOLD": "0.4"})
    assert (settings.label_studio_url, settings.label_studio_api_key) == ("http://ls:8080", "abc")
    assert (settings.labelgate_server, settings.port, settings.box_threshold) == ("gpu:50051", 9191, 0.4)
    assert settings.basic_auth == ("u", "p")


def test_flags_win_over_the_environment():
    settings = parse_settings(["--port", "7000", "--labelgate", "a:1"], {"LABELGATE_LS_PORT": "9191",
                                                                       "LABELGATE_SERVER": "b:2"})
    assert (settings.port, settings.labelgate_server) == (7000, "a:1")


def test_concept_model_settings():
    assert parse_settings([], {}).concept_model == "" and parse_settings([], {}).exemplar_labels == ()
    settings = parse_settings(["--exemplar-labels", " like this, car ,,"],
                              {"LABELGATE_LS_CONCEPT_MODEL": "sam3", "LABELGATE_LS_CONCEPT_THRESHOLD": "0.3",
                               "LABELGATE_LS_MAX_INSTANCES": "20"})
    assert (settings.concept_model, settings.concept_threshold, settings.max_instances) == ("sam3", 0.3, 20)
    assert settings.exemplar_labels == ("like this", "car")
    assert parse_settings([], {"LABELGATE_LS_CONCEPT_MODEL": "sam3", "LABELGATE_LS_EXEMPLAR_LABELS": "x"}).exemplar_labels == ("x",)


@pytest.mark.parametrize("argv, environ", [
    (["--exemplar-labels", "like this"], {}),
    (["--concept-model", "sam3", "--concept-threshold", "2"], {}),
    (["--concept-model", "sam3", "--max-instances", "-1"], {}),
    (["--port", "70000"], {}),
    ([], {"LABELGATE_LS_PORT": "abc"}),
    (["--workers", "0"], {}),
    (["--box-threshold", "1.5"], {}),
    (["--label-studio-url", "localhost:8080"], {}),
    (["--basic-auth-user", "u"], {}),
])
def test_bad_values_stop_the_start(argv, environ, capsys):
    with pytest.raises(SystemExit):
        parse_settings(argv, environ)
    assert "error" in capsys.readouterr().err


def test_video_cache():
    assert parse_settings([], {}).video_cache_mb == 512
    assert parse_settings(["--video-cache-mb", "0"], {}).video_cache_mb == 0
    with pytest.raises(SystemExit):
        parse_settings(["--video-cache-mb", "-1"], {})


def test_video_frames():
    assert parse_settings([], {}).video_frames == 0  # to the end of the clip
    assert parse_settings([], {"LABELGATE_LS_VIDEO_FRAMES": "30"}).video_frames == 30
    with pytest.raises(SystemExit):
        parse_settings(["--video-frames", "-1"], {})
