"""docs/configuration.md is generated from the settings (`make docs`); these tests fail when the
committed page is stale, or when a flag or variable it names does not set its setting."""

from __future__ import annotations

import argparse
from dataclasses import fields
from pathlib import Path

import pytest

from labelgate.server.config_docs import render, setting_docs
from labelgate.server.settings import Settings, add_serve_arguments, normalize_args

PAGE = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
DOCUMENTED = list(zip(fields(Settings), setting_docs()))


def test_the_committed_configuration_page_is_what_make_docs_writes():
    assert PAGE.read_text() == render(), "docs/configuration.md is stale: run `make docs` and commit it"


def test_the_page_has_one_row_per_setting():
    rows = [line for line in render().splitlines() if line.startswith("| `--")]
    assert len(rows) == len(fields(Settings))


def _other_value(default):
    """A value unlike the default, and how a flag and a variable spell it."""
    if isinstance(default, bool):
        return (not default), ["true" if not default else "false"]
    if isinstance(default, tuple):
        return ("++a=1", "++b=2"), ["++a=1", "++b=2"]
    if isinstance(default, (int, float)):
        return default + 1, [str(default + 1)]
    other = f"{default}-other" if default else "other"
    return other, [other]


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_serve_arguments(parser)
    return normalize_args(parser.parse_args(argv))


@pytest.mark.parametrize("spec, doc", DOCUMENTED, ids=[spec.name for spec, _ in DOCUMENTED])
def test_the_documented_flag_sets_the_setting(spec, doc):
    value, words = _other_value(spec.default)
    if isinstance(spec.default, bool):
        argv = [doc.flags[0] if value else doc.flags[1]]
    else:
        argv = [item for word in words for item in (doc.flags[0], word)]
    assert getattr(_parse(argv), spec.name) == value


@pytest.mark.parametrize("spec, doc", DOCUMENTED, ids=[spec.name for spec, _ in DOCUMENTED])
def test_the_documented_variable_sets_the_setting(spec, doc, monkeypatch):
    value, words = _other_value(spec.default)
    monkeypatch.setenv(doc.env, " ".join(words))
    assert getattr(_parse([]), spec.name) == value
