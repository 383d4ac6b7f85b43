"""S3 (moto in server mode) and Azure Blob (Azurite) backends, for real over HTTP.

Each server is started as its own process on a free port and killed afterwards; if it
cannot start the test is skipped with the reason.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from backup_helpers import AZURITE, AZURITE_CONN, VENV_BIN, assert_same_tree, build_tree, free_port, server
from noa_core.backup.interface import BackupBadInput, ObjectMissing
from noa_core.backup.maintenance import Policy, forget, prune, verify
from noa_core.backup.repository import pack_key
from noa_core.backup.service import BackendConfig, open_backend, open_repository, parse_repo, with_env_password
from noa_core.backup.restore import restore
from noa_core.backup.snapshots import backup
from noa_core.config import NoaSettings

PASSWORD = "remote-secret-pw"


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tree(tmp_path_factory.mktemp("remote-src") / "tree")


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    for p in server([str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)], port, log, "moto_server"):
        yield f"http://127.0.0.1:{p}"


@pytest.fixture(scope="module")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    where = tmp_path_factory.mktemp("azurite")
    cmd = [str(AZURITE), "--blobHost", "127.0.0.1", "--blobPort", str(port), "--location", str(where),
           "--disableTelemetry", "--skipApiVersionCheck", "--silent"]
    for p in server(cmd, port, where / "azurite.log", "Azurite"):
        yield AZURITE_CONN.format(port=p)


def _s3_cfg(endpoint: str, bucket: str) -> BackendConfig:
    env = {"NOA_BACKUP_S3_ENDPOINT": endpoint, "NOA_BACKUP_PASSWORD": PASSWORD}
    cfg = parse_repo(f"s3:{bucket}/noa/backups", NoaSettings(home=Path("/nonexistent")), env)
    import os

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    return with_env_password(cfg, env)


def _azure_cfg(conn: str, container: str) -> BackendConfig:
    env = {"AZURE_STORAGE_CONNECTION_STRING": conn, "NOA_BACKUP_PASSWORD": PASSWORD}
    return with_env_password(parse_repo(f"azure:{container}/noa", NoaSettings(home=Path("/nonexistent")), env), env)


def _roundtrip(cfg: BackendConfig, tree: Path, tmp_path: Path) -> None:
    repo = open_repository(cfg, create=True)
    assert repo.encrypted, "remote repositories are encrypted by default"
    first = backup(repo, tree)
    second = backup(repo, tree)
    assert second.blobs_new == 0 and second.packs_new == 0
    # restore elsewhere, from a freshly opened repository
    again = open_repository(cfg)
    restore(again, first.snapshot.id, tmp_path / "restored")
    assert_same_tree(tree, tmp_path / "restored")
    assert verify(again).ok
    # corrupt one blob inside its pack: verify names it
    index = again.load_index()
    entries = again.load_tree(index, first.snapshot)
    blob = next(e for e in entries if e[0] == "extra/secret.txt")[5][0]
    ref = index.blobs[blob]
    data = bytearray(again.backend.get(pack_key(ref.pack)))
    data[ref.offset + ref.length - 3] ^= 0x01
    again.backend.put(pack_key(ref.pack), bytes(data))
    report = verify(again)
    assert [c["blob"] for c in report.corrupted] == [blob]
    assert "extra/secret.txt" in report.snapshots[first.snapshot.id]
    # retention + prune on the remote store
    forget(again, Policy(keep_last=1))
    assert [s.id for s in again.snapshots()] == [second.snapshot.id]
    prune(again)         # the kept snapshot still needs that blob: prune leaves it (and says nothing is free)
    assert [c["blob"] for c in verify(again).corrupted] == [blob]


def test_s3_backup_restore_verify_on_moto(moto: str, tree: Path, tmp_path: Path) -> None:
    _roundtrip(_s3_cfg(moto, "noa-test"), tree, tmp_path)


def test_azure_backup_restore_verify_on_azurite(azurite: str, tree: Path, tmp_path: Path) -> None:
    _roundtrip(_azure_cfg(azurite, "noa-test"), tree, tmp_path)


@pytest.mark.parametrize("kind", ["s3", "azure"])
def test_remote_backend_port_contract(kind: str, request: pytest.FixtureRequest) -> None:
    cfg = (_s3_cfg(request.getfixturevalue("moto"), "noa-port") if kind == "s3"
           else _azure_cfg(request.getfixturevalue("azurite"), "noa-port"))
    b = open_backend(cfg)
    b.put("snapshots/a", b"hello world")
    b.put("snapshots/a", b"replaced")
    assert b.get("snapshots/a") == b"replaced" and b.get("snapshots/a", 2, 3) == b"pla"
    assert b.exists("snapshots/a") and not b.exists("snapshots/b")
    assert [(o.key, o.size) for o in b.list("snapshots/")] == [("snapshots/a", 8)]
    b.delete("snapshots/a")
    b.delete("snapshots/a")
    with pytest.raises(ObjectMissing):
        b.get("snapshots/a")


def test_remote_without_password_is_refused_not_silently_plain(moto: str) -> None:
    cfg = parse_repo("s3:noa-plain", NoaSettings(home=Path("/nonexistent")), {"NOA_BACKUP_S3_ENDPOINT": moto})
    with pytest.raises(BackupBadInput, match="encrypted by default"):
        open_repository(cfg, create=True)
