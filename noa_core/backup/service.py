"""Workspace backups as NOA does them: which repository, which key, and the CL tree.

A repository is named by a spec string::

    PATH | local:PATH          a directory (default NOA_HOME/backups/repo)
    s3:BUCKET[/PREFIX]         endpoint from NOA_BACKUP_S3_ENDPOINT / AWS_ENDPOINT_URL, boto3 credentials
    azure:CONTAINER[/PREFIX]   AZURE_STORAGE_CONNECTION_STRING, or AZURE_STORAGE_ACCOUNT_URL + azure-identity

or by a Prefect block (``blocks/backup.py``) that fills the same :class:`BackendConfig`.
The password comes from the block or ``NOA_BACKUP_PASSWORD`` (``NOA_BACKUP_PASSWORD_FILE``).
Encryption is on by default for s3 and azure and refused to be skipped silently: with no
password those need ``encrypt=False`` said out loud.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from noa_core.backup.interface import BackupBackend, BackupBadInput
from noa_core.backup.repository import Repository
from noa_core.config import NoaSettings

EXCLUDED_HOME_DIRS = ("backups", "tmp", "prefect")


@dataclass(frozen=True)
class BackendConfig:
    kind: str                      # local | s3 | azure
    location: str                  # directory, bucket or container
    prefix: str = ""
    endpoint_url: str | None = None
    region: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None
    connection_string: str | None = None
    account_url: str | None = None
    password: str | None = None
    encrypt: bool | None = None    # None: on for remote backends, on locally iff a password is given

    @property
    def remote(self) -> bool:
        return self.kind != "local"

    def public(self) -> dict:
        """What may be logged: no keys, no password, no connection string."""
        return {"kind": self.kind, "location": self.location, "prefix": self.prefix,
                "endpoint_url": self.endpoint_url}


def default_repo(settings: NoaSettings) -> Path:
    return settings.layout().backups / "repo"


def parse_repo(text: str | None, settings: NoaSettings, env: Mapping[str, str] | None = None) -> BackendConfig:
    env = os.environ if env is None else env
    text = text or env.get("NOA_BACKUP_REPO") or ""
    if not text:
        return BackendConfig("local", str(default_repo(settings)))
    kind, sep, rest = text.partition(":")
    if not sep or kind not in ("local", "s3", "azure"):
        return BackendConfig("local", str(Path(text).expanduser().resolve()))
    if kind == "local":
        if not rest:
            raise BackupBadInput("local: needs a directory")
        return BackendConfig("local", str(Path(rest).expanduser().resolve()))
    name, _, prefix = rest.strip("/").partition("/")
    if not name:
        raise BackupBadInput(f"{kind}: needs a {'bucket' if kind == 's3' else 'container'} name")
    if kind == "s3":
        return BackendConfig("s3", name, prefix,
                             endpoint_url=env.get("NOA_BACKUP_S3_ENDPOINT") or env.get("AWS_ENDPOINT_URL_S3")
                             or env.get("AWS_ENDPOINT_URL") or None,
                             region=env.get("AWS_DEFAULT_REGION") or env.get("AWS_REGION") or None)
    return BackendConfig("azure", name, prefix, connection_string=env.get("AZURE_STORAGE_CONNECTION_STRING") or None,
                         account_url=env.get("AZURE_STORAGE_ACCOUNT_URL") or None)


def with_env_password(cfg: BackendConfig, env: Mapping[str, str] | None = None) -> BackendConfig:
    if cfg.password:
        return cfg
    env = os.environ if env is None else env
    pw = env.get("NOA_BACKUP_PASSWORD")
    if not pw and env.get("NOA_BACKUP_PASSWORD_FILE"):
        try:
            pw = Path(env["NOA_BACKUP_PASSWORD_FILE"]).read_text().strip()
        except OSError as exc:
            raise BackupBadInput(f"cannot read NOA_BACKUP_PASSWORD_FILE: {exc.strerror}") from None
    return replace(cfg, password=pw or None)


def open_backend(cfg: BackendConfig) -> BackupBackend:
    if cfg.kind == "local":
        from noa_core.backup.local import LocalBackend

        return LocalBackend(Path(cfg.location))
    if cfg.kind == "s3":
        from noa_core.backup.s3 import S3Backend

        return S3Backend(cfg.location, cfg.prefix, endpoint_url=cfg.endpoint_url, region=cfg.region,
                         access_key_id=cfg.access_key_id, secret_access_key=cfg.secret_access_key)
    if cfg.kind == "azure":
        from noa_core.backup.azure import AzureBackend

        return AzureBackend(cfg.location, cfg.prefix, connection_string=cfg.connection_string,
                            account_url=cfg.account_url)
    raise BackupBadInput(f"unknown backup backend {cfg.kind!r}")


def open_repository(cfg: BackendConfig, *, create: bool = False) -> Repository:
    """Open the repository (its config says whether it is encrypted); ``create`` makes one if absent."""
    backend = open_backend(cfg)
    if backend.exists("config") or not create:
        return Repository.open(backend, cfg.password)
    encrypt = cfg.encrypt if cfg.encrypt is not None else (cfg.remote or bool(cfg.password))
    if encrypt and not cfg.password:
        raise BackupBadInput(f"{cfg.kind} repositories are encrypted by default: set NOA_BACKUP_PASSWORD "
                             "(or a backup block's password), or pass --no-encryption")
    return Repository.init(backend, cfg.password, encrypt=encrypt)


# ---------------------------------------------------------------------------- CL tree
def _cltree() -> tuple[Any, Any]:
    try:
        from noa_core.cltree import checkpoint, record_change
    except ImportError:
        return None, None
    return checkpoint, record_change


def cltree_checkpoint(settings: NoaSettings) -> dict:
    """The CL tree's Merkle head for the snapshot; a broken CL tree is reported, not fatal to the backup."""
    checkpoint, _ = _cltree()
    if checkpoint is None:
        return {"status": "skipped: CL tree not available"}
    try:
        return {"status": "ok", **checkpoint(settings)}
    except Exception as exc:  # noqa: BLE001 - the data backup must not depend on the change log
        return {"status": f"error: {' '.join(str(exc).split())[:200]}"}


def cltree_record(settings: NoaSettings, subject: str, payload: Mapping[str, Any]) -> str:
    _, record_change = _cltree()
    if record_change is None:
        return "skipped: CL tree not available"
    entry = record_change(settings, "backup", subject, dict(payload))
    return getattr(entry, "id", "ok")


REGISTRY_COPY = "registry.db.backup"


def registry_copy(settings: NoaSettings) -> Path | None:
    """A consistent copy of the SQLite registry (``registry.db.backup``) via SQLite's backup API.

    The live ``registry.db`` may be mid-transaction (WAL) while files are read; the copy is
    what to restore. PostgreSQL registries (``NOA_DATABASE_URL``) are backed up with pg_dump.
    """
    import sqlite3

    db = settings.layout().registry_db
    if settings.database_url or not db.is_file():
        return None
    target = db.with_name(REGISTRY_COPY)
    tmp = db.with_name(REGISTRY_COPY + ".tmp")
    src = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        dst = sqlite3.connect(tmp)
        try:
            src.backup(dst)
        finally:
            dst.close()
    finally:
        src.close()
    os.replace(tmp, target)
    return target


def run_backup(settings: NoaSettings, cfg: BackendConfig, source: Path | None = None, *,
               tags: tuple[str, ...] = (), progress: Any = None, force_read: bool = False) -> dict:
    """Back up ``source`` (default: NOA_HOME minus backups/, tmp/, prefect/) and log it in the CL tree."""
    from noa_core.backup.snapshots import backup

    home = settings.layout().root
    src = Path(source) if source is not None else home
    exclude: list[Path] = []
    if src.resolve() == home:
        exclude += [home / d for d in EXCLUDED_HOME_DIRS]
        registry_copy(settings)
    if cfg.kind == "local":
        exclude.append(Path(cfg.location))  # never back a repository up into itself
    from concurrent.futures import ThreadPoolExecutor

    repo = open_repository(cfg, create=True)
    try:  # the CL tree head (database) is read while the files are being read
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="noa-cltree") as pool:
            head_future = pool.submit(cltree_checkpoint, settings)
            result = backup(repo, src, tags=tags, extra=lambda: {"cltree": head_future.result()},
                            exclude=tuple(exclude), progress=progress, force_read=force_read)
        head = head_future.result()
    finally:
        repo.backend.close()
    doc = result.to_json()
    doc["repository"] = repo.backend.describe()
    doc["encrypted"] = repo.encrypted
    doc["cltree_checkpoint"] = head
    doc["cltree_entry"] = cltree_record(settings, result.snapshot.id, {
        "snapshot": result.snapshot.id, "repository": doc["repository"], "source": str(src.resolve()),
        "files": result.files, "bytes": result.bytes, "bytes_stored": result.bytes_stored,
        "cltree_head": {k: v for k, v in head.items() if k in ("size", "root")}})
    return doc


def snapshot_checkpoints(cfg: BackendConfig) -> list[dict]:
    """The CL tree heads stored in the repository's snapshots, oldest first:
    ``[{"snapshot", "time", "size", "root"}]`` (for ``noa cltree verify`` against a backup)."""
    repo = open_repository(cfg)
    try:
        return [{"snapshot": s.id, "time": s.time, "size": s.cltree["size"], "root": s.cltree["root"]}
                for s in repo.snapshots() if s.cltree and s.cltree.get("status") == "ok"]
    finally:
        repo.backend.close()
