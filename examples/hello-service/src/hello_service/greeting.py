"""Greeting logic, kept apart from HTTP so it is easy to test."""

from __future__ import annotations

MAX_NAME = 64


def normalise_name(raw: str | None) -> str:
    """Trim, collapse inner whitespace and cap the length; empty means 'world'."""
    if raw is None:
        return "world"
    name = " ".join(raw.split())[:MAX_NAME]
    return name or "world"


def greet(raw_name: str | None, *, excited: bool = False) -> str:
    name = normalise_name(raw_name)
    return f"Hello, {name}{'!' if excited else '.'}"
