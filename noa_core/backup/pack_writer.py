"""Writing packs: sealed blobs collected into packs of about the repository's pack size,
each with its sealed header, uploaded in the background."""

from __future__ import annotations

import struct
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from noa_core.backup.repository import Repository, pack_key

__all__ = ["PackWriter"]


class PackWriter:
    """Collects sealed blobs into packs of about ``pack_bytes`` and uploads them in the background."""

    def __init__(self, repo: Repository, uploads: int = 2) -> None:
        self.repo = repo
        self.buf = bytearray()
        self.entries: list[list[Any]] = []
        self.written: dict[str, list[list[Any]]] = {}
        self.stored_bytes = 0
        self._pool = ThreadPoolExecutor(max_workers=uploads, thread_name_prefix="noa-pack-upload")
        self._pending: list[Future] = []
        self._limit = uploads

    def add(self, blob_id: str, sealed: bytes, raw_length: int) -> None:
        self.entries.append([blob_id, len(self.buf), len(sealed), raw_length])
        self.buf += sealed
        if len(self.buf) >= self.repo.pack_bytes:
            self.flush()

    def flush(self) -> None:
        if not self.entries:
            return
        header = self.repo.seal_object({"blobs": self.entries})
        self.buf += header
        self.buf += struct.pack("<I", len(header))
        data = bytes(self.buf)
        pack = _plain_hash(data)  # of the stored (possibly encrypted) bytes: reveals nothing
        self.written[pack] = self.entries
        self.stored_bytes += len(data)
        self.buf = bytearray()
        self.entries = []
        while True:
            for f in self._pending:
                if f.done():
                    f.result()  # re-raise an upload error here
            self._pending = [f for f in self._pending if not f.done()]
            if len(self._pending) < self._limit:
                break
            self._pending[0].result()
        self._pending.append(self._pool.submit(self.repo.backend.put, pack_key(pack), data))

    def finish(self) -> dict[str, list[list[Any]]]:
        self.flush()
        try:
            for f in self._pending:
                f.result()
        finally:
            self._pool.shutdown(wait=True)
        return self.written

    def abort(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def _plain_hash(data: bytes) -> str:
    from blake3 import blake3

    return blake3(data, max_threads=blake3.AUTO).hexdigest()

