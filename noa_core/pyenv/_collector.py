"""Merging requirements from several declarations: validated, de-duplicated, self-references expanded.

Notes are collected here too, each once, with URL credentials masked (they are shown to users).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from packaging.utils import canonicalize_name

from noa_core.pyenv._files import (
    is_exact_pin,
    parse_requirement,
    redact,
    requirement_key,
    short,
)

MAX_REQUIREMENTS = 5000
MAX_NOTES = 200


@dataclass
class Collector:
    """Requirements merged in order, de-duplicated, self-references expanded."""

    project_name: str | None
    extras: dict[str, list[str]]
    requirements: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    files_read: set[str] = field(default_factory=set)
    _seen: set[str] = field(default_factory=set)
    _pins: dict[str, str] = field(default_factory=dict)

    def note(self, text: str) -> None:
        text = redact(text)
        if text not in self.notes and len(self.notes) < MAX_NOTES:
            self.notes.append(text)

    def notes_from(self, notes: Iterable[str]) -> None:
        for n in notes:
            self.note(n)

    def add(self, source: str, raws: Iterable[str]) -> None:
        raws = list(raws)
        before = len(self.requirements)
        self._add(source, raws, expanding=())
        if len(self.requirements) > before and source not in self.sources:
            self.sources.append(source)   # a source that only repeats earlier ones is not listed

    def _add(self, source: str, raws: list[str], expanding: tuple[str, ...]) -> None:
        for raw in raws:
            req = parse_requirement(raw.strip())
            if isinstance(req, str):
                self.note(f"{source}: {short(raw)!r} is not a valid requirement ({req}); ignored")
                continue
            if req.url:
                self.note(f"{source}: {req.name} @ {short(req.url, 60)} is a URL, not an index package; ignored")
                continue
            if self.project_name and canonicalize_name(req.name) == self.project_name:
                self._self_reference(source, req.name, sorted(req.extras), expanding)
                continue
            key = requirement_key(req)
            if key in self._seen:
                continue
            if is_exact_pin(req) and req.marker is None:
                name = canonicalize_name(req.name)
                earlier = self._pins.get(name)
                if earlier is not None and earlier != str(req.specifier):
                    self.note(f"{source}: {req} conflicts with the earlier pin {name}{earlier}; the first is kept")
                    continue
                self._pins[name] = str(req.specifier)
            if len(self.requirements) >= MAX_REQUIREMENTS:
                self.note(f"more than {MAX_REQUIREMENTS} requirements; the rest ignored")
                return
            self._seen.add(key)
            self.requirements.append(str(req))

    def _self_reference(self, source: str, name: str, extras: list[str], expanding: tuple[str, ...]) -> None:
        if not extras:
            self.note(f"{source}: {name} is the project itself; dropped")
            return
        for extra in extras:
            wanted = canonicalize_name(extra)
            if wanted in expanding:
                continue
            found = next((reqs for e, reqs in self.extras.items() if canonicalize_name(e) == wanted), None)
            if found is None:
                self.note(f"{source}: {name}[{extra}] names an extra the project does not declare; ignored")
                continue
            self.note(f"{source}: {name}[{extra}] is the project itself; its {extra!r} requirements are used")
            self._add(source, found, expanding + (wanted,))
