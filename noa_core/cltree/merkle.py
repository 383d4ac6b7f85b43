"""Merkle tree heads in the style of RFC 6962 (Certificate Transparency), with SHA-256.

leaf hash = H(0x00 || leaf), node hash = H(0x01 || left || right); the tree over n leaves
splits at the largest power of two below n. The leaf of a CL tree entry is its id
(32 bytes). :func:`prefix_roots` yields the root after every leaf in one pass, so every
checkpoint of a log can be checked against it at once (a consistency check by recomputation).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator

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


def prefix_roots(entry_ids: Iterable[str]) -> Iterator[tuple[int, str]]:
    """``(size, root hex)`` after each leaf: the tree head of the first ``size`` entries."""
    stack: list[tuple[int, bytes]] = []  # perfect subtrees: (height, hash), heights strictly decreasing
    size = 0
    for eid in entry_ids:
        node = (0, leaf_hash(_leaf_bytes(eid)))
        while stack and stack[-1][0] == node[0]:
            height, left = stack.pop()
            node = (height + 1, node_hash(left, node[1]))
        stack.append(node)
        size += 1
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
