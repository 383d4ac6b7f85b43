"""What a dependency collector returns: the dependencies of one ecosystem, where they came from, what went wrong."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Dep = dict[str, Any]


@dataclass
class Collected:
    """Dependencies of one ecosystem, where they came from and what went wrong."""

    deps: list[Dep] = field(default_factory=list)
    manifests: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
