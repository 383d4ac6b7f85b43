"""Local-directory backend: one file per object, written atomically.

``put`` writes a temporary file in the target directory, ``fsync``s it, renames it over
the key and ``fsync``s the directory, so a crash (or ``kill -9``) leaves either the old
object, the new one, or a stray ``.tmp-*`` file that :meth:`list` never reports.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

from noa_core.backup.interface import BackupBackend, BackupError, ObjectInfo, ObjectMissing, check_key

TMP_PREFIX = ".tmp-"


class LocalBackend(BackupBackend):
    name = "local"

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._made: set[str] = set()

    def describe(self) -> str:
        return f"local:{self.root}"

    def _path(self, key: str) -> str:
        return os.path.join(self.root, check_key(key))

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        folder = os.path.dirname(path)
        try:
            if folder not in self._made:
                os.makedirs(folder, exist_ok=True)
                self._made.add(folder)
            tmp = os.path.join(folder, f"{TMP_PREFIX}{secrets.token_hex(8)}")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)
            dfd = os.open(folder, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        except OSError as exc:
            raise BackupError(f"cannot write {key} under {self.root}: {exc.strerror or exc}") from exc

    def get(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        try:
            with open(self._path(key), "rb") as fh:
                if offset:
                    fh.seek(offset)
                return fh.read() if length is None else fh.read(length)
        except FileNotFoundError:
            raise ObjectMissing(key) from None
        except OSError as exc:
            raise BackupError(f"cannot read {key} under {self.root}: {exc.strerror or exc}") from exc

    def exists(self, key: str) -> bool:
        return os.path.isfile(self._path(key))

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        base = os.fspath(self.root)
        start = os.path.join(base, os.path.dirname(prefix)) if "/" in prefix else base
        if not os.path.isdir(start):
            return
        stack = [start]
        while stack:
            folder = stack.pop()
            with os.scandir(folder) as it:
                for entry in it:
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
                    elif entry.is_file(follow_symlinks=False) and not entry.name.startswith(TMP_PREFIX):
                        key = os.path.relpath(entry.path, base).replace(os.sep, "/")
                        if key.startswith(prefix):
                            yield ObjectInfo(key, entry.stat(follow_symlinks=False).st_size)

    def delete(self, key: str) -> None:
        try:
            os.unlink(self._path(key))
        except FileNotFoundError:
            return
        except OSError as exc:
            raise BackupError(f"cannot delete {key} under {self.root}: {exc.strerror or exc}") from exc

    def clean_temporaries(self) -> int:
        """Remove ``.tmp-*`` files a crashed writer left; returns how many."""
        removed = 0
        for dirpath, _dirs, files in os.walk(self.root):
            for name in files:
                if name.startswith(TMP_PREFIX):
                    try:
                        os.unlink(os.path.join(dirpath, name))
                        removed += 1
                    except OSError:
                        pass
        return removed
