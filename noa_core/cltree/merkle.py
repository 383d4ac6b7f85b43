"""Merkle tree heads in the style of RFC 6962 (Certificate Transparency), with SHA-256.

leaf hash = H(0x00 || leaf), node hash = H(0x01 || left || right); the tree over n leaves
splits at the largest power of two below n. The leaf of a CL tree entry is its id
(32 bytes). :func:`prefix_roots` yields the root after every leaf in one pass, so every
checkpoint of a log can be checked against it at once (a consistency check by recomputation).

A :class:`Frontier` is what an append needs to know of the tree: the roots of its perfect
subtrees, one per set bit of the size, largest first (at most 64 hashes). Appending a
leaf to it and folding it into the root are both O(log n), so a log of any length takes
a new entry in the same time.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

EMPTY_ROOT = hashlib.sha256(b"").hexdigest()


def leaf_hash(leaf: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _leaf_bytes(entry_id: str) -> bytes:
    try:
        return bytes.fromhex(entry_id)
    except ValueError:
        return entry_id.encode("utf-8")


def _fold(stack: list[tuple[int, bytes]]) -> bytes:
    """The root of the left-balanced tree whose perfect subtrees are ``stack`` (largest first)."""
    acc = stack[-1][1]
    for _height, digest in reversed(stack[:-1]):
        acc = node_hash(digest, acc)
    return acc


def _push(stack: list[tuple[int, bytes]], entry_id: str) -> None:
    node = (0, leaf_hash(_leaf_bytes(entry_id)))
    while stack and stack[-1][0] == node[0]:
        height, left = stack.pop()
        node = (height + 1, node_hash(left, node[1]))
    stack.append(node)


@dataclass(frozen=True)
class Frontier:
    """The perfect-subtree roots of a tree of ``size`` leaves (largest first)."""

    size: int = 0
    hashes: tuple[bytes, ...] = ()

    def __post_init__(self) -> None:
        if self.size < 0 or len(self.hashes) != self.size.bit_count() or any(len(h) != 32 for h in self.hashes):
            raise ValueError(f"not a frontier of {self.size} leaves")

    def _stack(self) -> list[tuple[int, bytes]]:
        heights = [bit for bit in range(self.size.bit_length() - 1, -1, -1) if self.size >> bit & 1]
        return list(zip(heights, self.hashes, strict=True))

    def append(self, entry_id: str) -> Frontier:
        stack = self._stack()
        _push(stack, entry_id)
        return Frontier(self.size + 1, tuple(h for _height, h in stack))

    def root(self) -> str:
        return _fold(self._stack()).hex() if self.size else EMPTY_ROOT

    def head(self) -> dict[str, int | str]:
        return {"size": self.size, "root": self.root()}

    def dumps(self) -> str:
        """The hashes as one hex string (64 characters each), the form the database keeps."""
        return "".join(h.hex() for h in self.hashes)

    @classmethod
    def loads(cls, size: int, text: str) -> Frontier:
        if len(text) % 64:
            raise ValueError("frontier text is not a whole number of hashes")
        return cls(int(size), tuple(bytes.fromhex(text[i:i + 64]) for i in range(0, len(text), 64)))

    @classmethod
    def of(cls, entry_ids: Iterable[str]) -> Frontier:
        """Built from every leaf (O(n); the slow path for a log with no stored frontier)."""
        stack: list[tuple[int, bytes]] = []
        size = 0
        for eid in entry_ids:
            _push(stack, eid)
            size += 1
        return cls(size, tuple(h for _height, h in stack))


def prefix_roots(entry_ids: Iterable[str]) -> Iterator[tuple[int, str]]:
    """``(size, root hex)`` after each leaf: the tree head of the first ``size`` entries."""
    stack: list[tuple[int, bytes]] = []  # perfect subtrees: (height, hash), heights strictly decreasing
    for size, eid in enumerate(entry_ids, start=1):
        _push(stack, eid)
        yield size, _fold(stack).hex()


def tree_head(entry_ids: Iterable[str]) -> dict[str, int | str]:
    """``{"size": n, "root": hex}`` of the whole list (the empty tree's root is SHA-256 of nothing)."""
    size, root = 0, EMPTY_ROOT
    for size, root in prefix_roots(entry_ids):
        pass
    return {"size": size, "root": root}


def mth(entry_ids: list[str]) -> str:
    """The recursive definition of RFC 6962 section 2.1 (used by the tests as a reference)."""
    n = len(entry_ids)
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return leaf_hash(_leaf_bytes(entry_ids[0])).hex()
    k = 1
    while k * 2 < n:
        k *= 2
    return node_hash(bytes.fromhex(mth(entry_ids[:k])), bytes.fromhex(mth(entry_ids[k:]))).hex()
