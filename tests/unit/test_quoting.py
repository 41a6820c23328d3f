"""Caller values quoted in messages stay short whatever their length."""

from __future__ import annotations

from labelgate.server.quoting import MAX_QUOTED_CHARS, quoted


def test_a_short_value_is_its_repr():
    assert quoted("img_abc") == "'img_abc'"
    assert quoted(b"\x89PNG") == repr(b"\x89PNG")
    assert quoted("") == "''"


def test_a_value_at_the_limit_is_whole():
    value = "v" * (MAX_QUOTED_CHARS - 2)  # repr adds the two quotes
    assert quoted(value) == repr(value)


def test_a_long_value_is_cut_with_its_length():
    text = quoted("a" * 100_000)
    assert text == repr("a" * 100_000)[:MAX_QUOTED_CHARS] + "... (100000 characters)"
    assert quoted(b"\0" * 5000, limit=10) == repr(b"\0" * 5000)[:10] + "... (5000 bytes)"


def test_the_length_noted_is_the_values_not_its_reprs():
    value = "\n" * 1000  # repr doubles every character
    assert quoted(value).endswith("... (1000 characters)")
