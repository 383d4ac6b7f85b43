"""The workspace repository's own configuration: hooks, fsmonitor and symlinks off, attributes neutralised.

Git's own and the user's configuration are ignored on every call (see :mod:`noa_core.sandbox.git`);
this is what NOA writes into the repository itself. ``info/attributes`` (which outranks in-tree
``.gitattributes``) resets ``filter``, ``text``, ``eol``, ``ident``, ``working-tree-encoding``,
``diff`` and ``merge`` to git's defaults, so no filter driver, end-of-line or encoding
conversion named by a drop ever applies, on store or checkout.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from noa_core.sandbox.git import NOA_EMAIL, NOA_NAME, Git

INFO_ATTRIBUTES = (
    "# Written by NOA ARK OS. This file outranks every .gitattributes in the tree: dropped\n"
    "# attributes must not pick filter drivers or change bytes on store or checkout.\n"
    "* !filter !text !crlf !eol !ident !working-tree-encoding !diff !merge !export-subst !export-ignore\n"
)

REPO_CONFIG: tuple[tuple[str, str], ...] = (
    ("user.name", NOA_NAME),
    ("user.email", NOA_EMAIL),
    ("core.hooksPath", os.devnull),
    ("core.fsmonitor", "false"),
    ("core.symlinks", "false"),
    ("core.autocrlf", "false"),
    ("core.protectNTFS", "true"),
    ("core.protectHFS", "true"),
    ("core.logAllRefUpdates", "always"),
    ("advice.detachedHead", "false"),
    ("gc.autoDetach", "false"),
)


def configure(git: Git, repo_dir: Path) -> None:
    """Write :data:`REPO_CONFIG` (only the keys that differ) and :data:`INFO_ATTRIBUTES` (atomically)."""
    raw = git.run("config", "--local", "-z", "--list").stdout.decode("utf-8", "replace")
    current: dict[str, str] = {}
    for record in filter(None, raw.split("\0")):
        key, _, value = record.partition("\n")
        current[key.lower()] = value
    for key, value in REPO_CONFIG:
        if current.get(key.lower()) != value:
            git.run("config", "--local", key, value)
    info = repo_dir / "info" / "attributes"
    if not info.is_file() or info.read_text(encoding="utf-8") != INFO_ATTRIBUTES:
        info.parent.mkdir(parents=True, exist_ok=True)
        tmp = info.with_name(f".attributes-{uuid.uuid4().hex}")
        tmp.write_text(INFO_ATTRIBUTES, encoding="utf-8")
        os.replace(tmp, info)
