"""Argument types the client's commands share: each names its flag's value in its error."""

from __future__ import annotations

import argparse
from typing import Callable


def whole(name: str, least: int) -> Callable[[str], int]:
    """A whole number >= `least`."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} {text!r}: expected a whole number, e.g. {least + 1}") from None
        if value < least:
            raise argparse.ArgumentTypeError(f"{name} {text!r}: must be at least {least}")
        return value

    return parse


def fraction(name: str, note: str = "") -> Callable[[str], float]:
    """A number from 0 to 1; `note` adds what 0 means, say."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} {text!r}: expected a number between 0 and 1, e.g. 0.3") from None
        if not 0.0 <= value <= 1.0:
            raise argparse.ArgumentTypeError(f"{name} {text!r}: must be between 0 and 1{f' ({note})' if note else ''}")
        return value

    return parse


def positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"timeout {text!r}: expected seconds, e.g. 30") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"timeout {text!r}: must be > 0 seconds")
    return value
