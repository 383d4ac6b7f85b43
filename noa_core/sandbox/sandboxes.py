"""The four sandboxes of the workspace and their branches."""

from __future__ import annotations

from enum import StrEnum

from noa_core.errors import BadInput


class Sandbox(StrEnum):
    """A sandbox: a branch of the workspace repository plus a worktree of it."""

    A = "A"
    B = "B"
    C = "C"
    D = "D"

    @property
    def branch(self) -> str:
        return _BRANCHES[self]

    @property
    def ref(self) -> str:
        return f"refs/heads/{self.branch}"

    @property
    def description(self) -> str:
        return _DESCRIPTIONS[self]

    @classmethod
    def parse(cls, value: "str | Sandbox") -> "Sandbox":
        """``"A"``/``"a"``/``"sandbox/A-feature"`` -> ``Sandbox.A``; anything else is :class:`BadInput`."""
        if isinstance(value, Sandbox):
            return value
        text = str(value).strip()
        for sandbox in cls:
            if text.upper() == sandbox.value or text == sandbox.branch:
                return sandbox
        raise BadInput(f"unknown sandbox {value!r}: expected one of A, B, C, D")


_BRANCHES = {
    Sandbox.A: "sandbox/A-feature",
    Sandbox.B: "sandbox/B-bugfix",
    Sandbox.C: "sandbox/C-experimental",
    Sandbox.D: "sandbox/D-integration",
}

_DESCRIPTIONS = {
    Sandbox.A: "feature: new projects and new functionality",
    Sandbox.B: "bug fix: small updates of projects the workspace already has",
    Sandbox.C: "experimental: low-confidence or experimental drops",
    Sandbox.D: "integration: what passed the sandbox merge; the base of every sandbox",
}

WORK_SANDBOXES: tuple[Sandbox, ...] = (Sandbox.A, Sandbox.B, Sandbox.C)
