"""The four sandboxes and their branches."""

from __future__ import annotations

import pytest

from noa_core.errors import BadInput
from noa_core.sandbox import WORK_SANDBOXES, Sandbox


def test_branches_and_descriptions() -> None:
    assert [s.branch for s in Sandbox] == ["sandbox/A-feature", "sandbox/B-bugfix", "sandbox/C-experimental",
                                           "sandbox/D-integration"]
    assert Sandbox.B.ref == "refs/heads/sandbox/B-bugfix"
    assert all(s.description for s in Sandbox)
    assert WORK_SANDBOXES == (Sandbox.A, Sandbox.B, Sandbox.C)
    assert f"{Sandbox.C}" == "C" and Sandbox("D") is Sandbox.D


@pytest.mark.parametrize(("text", "sandbox"), [("A", Sandbox.A), ("b", Sandbox.B), (" c ", Sandbox.C),
                                                ("sandbox/D-integration", Sandbox.D), (Sandbox.A, Sandbox.A)])
def test_parse(text: str, sandbox: Sandbox) -> None:
    assert Sandbox.parse(text) is sandbox


@pytest.mark.parametrize("text", ["E", "", "auto", "sandbox/A", "AB"])
def test_parse_refuses_unknown(text: str) -> None:
    with pytest.raises(BadInput, match="unknown sandbox"):
        Sandbox.parse(text)
