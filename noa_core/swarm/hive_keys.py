"""What identifies a piece of swarm work in the hive: the content hash of a project tree,
the result key (tool, tool version, content, command) and a stored result's searchable
columns."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from blake3 import blake3

from noa_core.storage.hashing import digest_tree

__all__ = ["ResultMeta", "content_hash", "result_key", "short_hash"]


def short_hash(text: str, size: int = 16) -> str:
    """A BLAKE2b hex digest of ``text`` (``size`` bytes): the hive's key of a path or test id."""
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=size).hexdigest()


def result_key(tool: str, tool_version: str, content: str, command: Sequence[str], *, kind: str = "") -> str:
    """The hive key of one piece of work: (kind, tool, tool version, content hash, command)."""
    doc = json.dumps([kind, tool, tool_version, content, list(command)], ensure_ascii=False, separators=(",", ":"))
    return short_hash(doc, 32)


def content_hash(tree: Path) -> str:
    """BLAKE3 over every regular file (path + hash) and every symlink (path + target) of ``tree``;
    ``.git`` is left out. Two trees with the same content get the same hash wherever they are."""
    tree = Path(tree)
    digest = digest_tree(tree)
    hasher = blake3(b"noa-swarm-content-v1\n" + digest.tree_hash.encode())
    for rel in digest.skipped:
        full = tree / rel
        try:
            target = os.readlink(full) if full.is_symlink() else "<special>"
        except OSError:
            target = "<unreadable>"
        hasher.update(b"\n" + rel.encode("utf-8", "surrogateescape") + b"\0" +
                      target.encode("utf-8", "surrogateescape"))
    return hasher.hexdigest()


@dataclass(frozen=True)
class ResultMeta:
    """The searchable columns of a stored result."""

    toolchain: str
    check: str
    tool: str
    tool_version: str
    content_hash: str
    command: tuple[str, ...]
