"""A restic-like repository on any :class:`BackupBackend`.

Layout (keys)::

    config                  plaintext JSON: version, id, chunking, encryption + KDF params
    data/<xx>/<pack-id>     pack files: blobs (zstd, then sealed) + sealed header + 4-byte length
    index/<id>              sealed zstd JSON: pack -> [[blob-id, offset, length, raw-length], ...]
    snapshots/<id>          sealed JSON manifest (tree blob id, time, host, paths, stats, CL tree head)
    locks/<id>              plaintext JSON: shared or exclusive, host, pid, time

Write order gives crash safety: packs first, then the index naming them, then the
snapshot manifest last. A crash leaves at worst packs no index names; the next backup
reads those packs' own headers and reuses their blobs, ``prune`` deletes them.
"""

from __future__ import annotations

import json
import struct
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import zstandard

from noa_core.backup.crypto import IntegrityError, KdfParams, Keys
from noa_core.backup.interface import BackupBackend, BackupBadInput, BackupError, ObjectMissing
from noa_core.backup.repo_lock import RepoLock

VERSION = 1
CHUNK_BYTES = 1024 * 1024          # fixed-size chunks (see snapshots.py for why not CDC)
PACK_BYTES = 16 * 1024 * 1024      # restic's default pack size
ZSTD_LEVEL = 3

_local = threading.local()


def _zc() -> zstandard.ZstdCompressor:
    c = getattr(_local, "zc", None)
    if c is None:
        c = _local.zc = zstandard.ZstdCompressor(level=ZSTD_LEVEL)
    return c


def _zd() -> zstandard.ZstdDecompressor:
    d = getattr(_local, "zd", None)
    if d is None:
        d = _local.zd = zstandard.ZstdDecompressor()
    return d


def pack_key(pack_id: str) -> str:
    return f"data/{pack_id[:2]}/{pack_id}"


@dataclass(frozen=True)
class BlobRef:
    pack: str
    offset: int
    length: int
    raw_length: int


@dataclass
class Index:
    blobs: dict[str, BlobRef] = field(default_factory=dict)
    packs: dict[str, list[str]] = field(default_factory=dict)   # pack -> blob ids
    files: list[str] = field(default_factory=list)               # index object keys loaded

    def add_pack(self, pack: str, entries: list[list[Any]]) -> None:
        ids = self.packs.setdefault(pack, [])
        for blob, off, length, raw in entries:
            self.blobs.setdefault(blob, BlobRef(pack, off, length, raw))
            ids.append(blob)


@dataclass(frozen=True)
class Snapshot:
    id: str
    time: str
    time_ns: int
    hostname: str
    paths: tuple[str, ...]
    tree: str
    parent: str | None
    tags: tuple[str, ...]
    stats: dict
    cltree: dict | None

    def to_json(self) -> dict:
        return {"id": self.id, "time": self.time, "time_ns": self.time_ns, "hostname": self.hostname,
                "paths": list(self.paths), "tree": self.tree, "parent": self.parent, "tags": list(self.tags),
                "stats": self.stats, "cltree": self.cltree}


class Repository:
    """One opened repository: config, keys and the object operations on top of the backend."""

    def __init__(self, backend: BackupBackend, keys: Keys, config: dict) -> None:
        self.backend = backend
        self.keys = keys
        self.config = config
        self.chunk_bytes = int(config.get("chunk_bytes", CHUNK_BYTES))
        self.pack_bytes = int(config.get("pack_bytes", PACK_BYTES))

    # ------------------------------------------------------------------ open / init
    @classmethod
    def init(cls, backend: BackupBackend, password: str | None, *, encrypt: bool,
             chunk_bytes: int = CHUNK_BYTES, pack_bytes: int = PACK_BYTES) -> "Repository":
        if backend.exists("config"):
            raise BackupBadInput(f"a backup repository already exists at {backend.describe()}")
        config: dict[str, Any] = {"version": VERSION, "id": uuid.uuid4().hex, "chunker": "fixed",
                                  "chunk_bytes": chunk_bytes, "pack_bytes": pack_bytes, "compression": "zstd",
                                  "encryption": "none"}
        keys = Keys.plain()
        if encrypt:
            if not password:
                raise BackupBadInput("encryption needs a password (NOA_BACKUP_PASSWORD or the backup block)")
            kdf = KdfParams.fresh()
            keys = Keys.from_password(password, kdf)
            config.update(encryption="aes-256-gcm", blob_id="blake3-keyed",
                          kdf={"name": "scrypt", "salt": kdf.salt, "n": kdf.n, "r": kdf.r, "p": kdf.p},
                          check=keys.key_check())
        else:
            config["blob_id"] = "blake3"
        backend.put("config", json.dumps(config, indent=1).encode())
        return cls(backend, keys, config)

    @classmethod
    def open(cls, backend: BackupBackend, password: str | None) -> "Repository":
        try:
            config = json.loads(backend.get("config"))
        except ObjectMissing:
            raise BackupBadInput(f"no backup repository at {backend.describe()} (run a backup first)") from None
        if config.get("version") != VERSION:
            raise BackupError(f"unsupported repository version {config.get('version')!r}")
        keys = Keys.plain()
        if config.get("encryption") == "aes-256-gcm":
            if not password:
                raise BackupBadInput(f"the repository at {backend.describe()} is encrypted: "
                                     "set NOA_BACKUP_PASSWORD (or use a backup block)")
            k = config["kdf"]
            keys = Keys.from_password(password, KdfParams(salt=k["salt"], n=k["n"], r=k["r"], p=k["p"]))
            keys.verify_check(config["check"])
        return cls(backend, keys, config)

    @classmethod
    def open_or_init(cls, backend: BackupBackend, password: str | None, *, encrypt: bool) -> "Repository":
        if backend.exists("config"):
            return cls.open(backend, password)
        return cls.init(backend, password, encrypt=encrypt)

    @property
    def encrypted(self) -> bool:
        return self.keys.encrypted

    # ------------------------------------------------------------------ blobs
    def seal_blob(self, plain: bytes | memoryview) -> tuple[str, bytes]:
        return self.keys.blob_id(plain), self.keys.seal(_zc().compress(plain))

    def unseal_blob(self, blob_id: str, stored: bytes | memoryview, *, check: bool = True) -> bytes:
        plain = _zd().decompress(self.keys.open(stored, f"blob {blob_id}"))
        if check and self.keys.blob_id(plain) != blob_id:
            raise IntegrityError(f"blob {blob_id} does not hash to its id")
        return plain

    def seal_object(self, obj: Any) -> bytes:
        return self.keys.seal(_zc().compress(json.dumps(obj, separators=(",", ":")).encode()))

    def open_object(self, data: bytes, what: str) -> Any:
        try:
            return json.loads(_zd().decompress(self.keys.open(data, what)))
        except zstandard.ZstdError as exc:
            raise IntegrityError(f"{what} does not decompress: {exc}") from None

    def read_blob(self, index: Index, blob_id: str) -> bytes:
        ref = index.blobs.get(blob_id)
        if ref is None:
            raise ObjectMissing(f"blob {blob_id}")
        return self.unseal_blob(blob_id, self.backend.get(pack_key(ref.pack), ref.offset, ref.length))

    # ------------------------------------------------------------------ index
    def load_index(self, errors: list[str] | None = None) -> Index:
        """All index files merged; with ``errors`` given, unreadable ones are listed there, not raised."""
        index = Index()
        for info in self.backend.list("index/"):
            try:
                doc = self.open_object(self.backend.get(info.key), info.key)
            except (IntegrityError, ValueError) as exc:
                if errors is None:
                    raise
                errors.append(f"{info.key}: {' '.join(str(exc).split())}")
                continue
            for pack, entries in doc["packs"].items():
                index.add_pack(pack, entries)
            index.files.append(info.key)
        return index

    def write_index(self, packs: dict[str, list[list[Any]]]) -> str:
        data = self.seal_object({"packs": packs})
        key = f"index/{self.keys.blob_id(data)}"
        self.backend.put(key, data)
        return key

    def read_pack_header(self, pack: str, size: int | None = None) -> list[list[Any]]:
        key = pack_key(pack)
        if size is None:
            data = self.backend.get(key)
            size = len(data)
            (hlen,) = struct.unpack("<I", data[-4:])
            raw = data[size - 4 - hlen:size - 4]
        else:
            (hlen,) = struct.unpack("<I", self.backend.get(key, size - 4, 4))
            if hlen > size - 4:
                raise IntegrityError(f"pack {pack} has a broken header length")
            raw = self.backend.get(key, size - 4 - hlen, hlen)
        return self.open_object(raw, f"header of pack {pack}")["blobs"]

    def unindexed_packs(self, index: Index) -> dict[str, int]:
        """Packs present in ``data/`` that no index names (left by a crashed backup)."""
        found = {}
        for info in self.backend.list("data/"):
            pack = info.key.rsplit("/", 1)[-1]
            if pack not in index.packs:
                found[pack] = info.size
        return found

    # ------------------------------------------------------------------ snapshots
    def save_snapshot(self, doc: dict) -> Snapshot:
        body = {k: v for k, v in doc.items() if k != "id"}
        data = self.seal_object(body)
        sid = self.keys.blob_id(json.dumps(body, sort_keys=True).encode())
        self.backend.put(f"snapshots/{sid}", data)
        return _snapshot(sid, body)

    def snapshots(self) -> list[Snapshot]:
        """Every complete snapshot, oldest first."""
        found = []
        for info in self.backend.list("snapshots/"):
            sid = info.key.rsplit("/", 1)[-1]
            found.append(_snapshot(sid, self.open_object(self.backend.get(info.key), info.key)))
        return sorted(found, key=lambda s: (s.time_ns, s.id))

    def find_snapshot(self, ref: str) -> Snapshot:
        snaps = self.snapshots()
        if not snaps:
            raise BackupBadInput(f"the repository at {self.backend.describe()} has no snapshots")
        if ref == "latest":
            return snaps[-1]
        hits = [s for s in snaps if s.id.startswith(ref)] if len(ref) >= 4 else []
        if len(hits) != 1:
            raise BackupBadInput(f"snapshot {ref!r} {'is ambiguous' if hits else 'not found'}")
        return hits[0]

    def load_tree(self, index: Index, snap: Snapshot) -> list[list[Any]]:
        return json.loads(self.read_blob(index, snap.tree))["entries"]

    # ------------------------------------------------------------------ locks
    @contextmanager
    def lock(self, exclusive: bool) -> Iterator[RepoLock]:
        lk = RepoLock(self.backend, exclusive)
        lk.acquire()
        try:
            yield lk
        finally:
            lk.release()


def _snapshot(sid: str, body: dict) -> Snapshot:
    return Snapshot(id=sid, time=body["time"], time_ns=body["time_ns"], hostname=body["hostname"],
                    paths=tuple(body["paths"]), tree=body["tree"], parent=body.get("parent"),
                    tags=tuple(body.get("tags", ())), stats=body.get("stats", {}), cltree=body.get("cltree"))


ProgressFn = Callable[[str, dict], None]
