"""``fetch_source``: receive one code drop into ``dest``, all or nothing.

Work happens in a staging directory created beside ``dest``
(``<dest.parent>/.<dest.name>.staging-XXXX``; missing parents of ``dest`` are created,
and removed again on failure): the files are written to
``staging/tree`` and every scratch file (git clone, download when there is no cache,
git's HOME and TMPDIR) to ``staging/work``.  Only when everything passed is the tree
renamed onto ``dest``; the staging directory is removed whatever happens, so after
any failure nothing exists at ``dest`` (an empty ``dest`` the caller created is left
as it was).  Apart from the staging directory, only ``dest`` and ``cache_dir`` are
ever written.

``FetchedSource.tree`` is ``dest`` itself.  For archives and PyPI sdists a single
top-level directory is stripped (``meta["stripped_prefix"]`` names it).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Any

from noa_core.config import IngestLimits
from noa_core.errors import BadInput, NoaError
from noa_core.intake.archive import archive_format, archive_stem, extract_archive
from noa_core.intake.git import fetch_git, is_git_dir, repo_name_hint
from noa_core.intake.guards import SafeTree, quote
from noa_core.intake.localdir import check_not_recursive, copy_dir
from noa_core.intake.pypi import download_sdist
from noa_core.intake.source import FetchedSource, SourceSpec

_VERSION_TAIL = re.compile(r"^(?P<name>.+?)[-_]v?\d[\w.+!-]*$")
_HINT_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


def name_without_version(stem: str) -> str:
    """``toolz-1.2.0`` -> ``toolz``; ``my_pkg-2.0rc1`` -> ``my_pkg``; ``project`` -> ``project``."""
    m = _VERSION_TAIL.match(stem)
    return m.group("name") if m else stem


def _hint(text: str) -> str:
    cleaned = _HINT_CHARS.sub("-", text).strip("-.") or "drop"
    return cleaned[:100]


def _prepare_dest(dest: Path) -> bool:
    """Check ``dest``; returns True if it already exists (as an empty directory)."""
    try:
        st = os.lstat(dest)
    except FileNotFoundError:
        return False
    if stat.S_ISLNK(st.st_mode):
        raise BadInput(f"destination {quote(dest)} is a symlink")
    if not stat.S_ISDIR(st.st_mode):
        raise BadInput(f"destination {quote(dest)} exists and is not a directory")
    with os.scandir(dest) as it:
        empty = next(it, None) is None
    if not empty:
        raise BadInput(f"destination {quote(dest)} is not empty")
    return True


def _strip_single_top(tree: Path) -> tuple[Path, str | None]:
    with os.scandir(tree) as it:
        entries = list(it)
    if len(entries) == 1 and entries[0].is_dir(follow_symlinks=False):
        return Path(entries[0].path), entries[0].name
    return tree, None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1024 * 1024), b""):
            h.update(block)
    return h.hexdigest()


def fetch_source(spec: SourceSpec, dest: Path, limits: IngestLimits, *,
                 cache_dir: Path | None = None) -> FetchedSource:
    """Fetch ``spec`` into ``dest`` (which must not exist or be empty).

    Raises :class:`~noa_core.errors.HostileInput` (escape, link, device, bomb, gitlink,
    symlink attacks), :class:`~noa_core.errors.LimitExceeded` (size, count, depth),
    :class:`~noa_core.errors.BadInput` (not found, unsupported) and
    :class:`~noa_core.intake.errors.NetworkError` (transient: retry).  Unexpected OS
    errors surface as :class:`~noa_core.errors.NoaError`.
    """
    if spec.kind not in ("dir", "git", "archive", "pypi"):
        raise BadInput(f"unsupported source kind {spec.kind!r}")
    dest = Path(os.path.abspath(dest))
    if cache_dir is not None:
        cache_dir = Path(os.path.abspath(cache_dir))
    existed = _prepare_dest(dest)
    created = _make_parents(dest.parent)
    ok = False
    try:
        staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.staging-", dir=dest.parent))
    except BaseException:
        _remove_empty(created)
        raise
    try:
        tree_dir = staging / "tree"
        work = staging / "work"
        tree_dir.mkdir(mode=0o755)
        os.chmod(tree_dir, 0o755)
        work.mkdir(mode=0o700)
        try:
            result = _fetch_into(spec, dest, tree_dir, work, limits, cache_dir)
        except NoaError:
            raise
        except OSError as exc:
            detail = " ".join(str(exc).split())
            raise NoaError(f"fetching {quote(str(spec))} failed: {detail}") from exc
        final_tree, fields = result
        if existed:
            _prepare_dest(dest)  # still empty?
        try:
            os.rename(final_tree, dest)
        except OSError as exc:
            raise BadInput(f"cannot move the drop into {quote(dest)}: {exc.strerror}") from None
        ok = True
        return FetchedSource(spec=spec, tree=dest, **fields)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if not ok:
            _remove_empty(created)


def _make_parents(parent: Path) -> list[Path]:
    """Create ``parent`` and its missing ancestors; returns those created, deepest first."""
    missing: list[Path] = []
    p = parent
    while not os.path.lexists(p):
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        try:
            d.mkdir()
        except FileExistsError:
            pass
    return missing


def _remove_empty(dirs: list[Path]) -> None:
    """Remove the directories fetch_source created for ``dest``'s parent, if still empty."""
    for d in dirs:
        try:
            d.rmdir()
        except OSError:
            break


def _fetch_into(spec: SourceSpec, dest: Path, tree_dir: Path, work: Path, limits: IngestLimits,
                cache_dir: Path | None) -> tuple[Path, dict[str, Any]]:
    head: str | None = None
    roots: tuple[str, ...] = ()
    meta: dict[str, Any] = {"kind": spec.kind}
    final = tree_dir

    if spec.kind == "dir":
        root = Path(spec.value)
        if not root.is_absolute():
            raise BadInput(f"refused directory {quote(spec.value)}: needs an absolute path")
        if not root.is_dir():
            raise BadInput(f"no such directory: {quote(spec.value)}")
        root = root.resolve()
        if is_git_dir(root):
            raise BadInput(f"refused directory {quote(root)}: it is a git repository; fetch it as a git source")
        noa_home = Path(os.environ.get("NOA_HOME") or ".noa")
        check_not_recursive(root, {"destination": dest, "cache directory": cache_dir, "NOA_HOME": noa_home})
        with SafeTree(tree_dir, limits, "directory entry") as tree:
            meta.update(copy_dir(root, tree, limits))
            files, nbytes = tree.files, tree.bytes
        hint = root.name

    elif spec.kind == "git":
        with SafeTree(tree_dir, limits, "git entry") as tree:
            res = fetch_git(spec.value, tree, work, limits)
            files, nbytes = tree.files, tree.bytes
        head, roots = res.head_commit, res.root_commits
        meta.update(res.meta)
        hint = repo_name_hint(spec.value)

    elif spec.kind == "archive":
        archive = Path(spec.value)
        if not archive.is_absolute():
            raise BadInput(f"refused archive {quote(spec.value)}: needs an absolute path")
        if archive_format(archive.name) is None:
            raise BadInput(f"refused archive {quote(spec.value)}: unsupported archive type")
        if not archive.is_file():
            raise BadInput(f"no such archive: {quote(spec.value)}")
        with SafeTree(tree_dir, limits, "archive member") as tree:
            ex = extract_archive(archive, tree, limits)
            files, nbytes = tree.files, tree.bytes
        final, prefix = _strip_single_top(tree_dir)
        meta.update({"archive": archive.name, "archive_path": str(archive), "format": ex.format,
                     "archive_bytes": ex.archive_bytes, "archive_sha256": _sha256(archive),
                     "stripped_prefix": prefix})
        hint = name_without_version(archive_stem(archive.name))

    else:  # pypi
        dl = download_sdist(spec.value, spec.version, limits, work, cache_dir)
        with SafeTree(tree_dir, limits, "archive member") as tree:
            ex = extract_archive(dl.path, tree, limits)
            files, nbytes = tree.files, tree.bytes
        final, prefix = _strip_single_top(tree_dir)
        c = dl.choice
        meta.update({"pypi_name": c.name, "version": c.version, "filename": c.filename, "sdist_url": c.url,
                     "sha256": c.sha256, "yanked": c.yanked, "cache_hit": dl.cache_hit,
                     "cached_path": str(dl.path) if cache_dir is not None else None,
                     "format": ex.format, "archive_bytes": ex.archive_bytes, "stripped_prefix": prefix})
        hint = spec.value

    os.chmod(final, 0o755)
    fields: dict[str, Any] = {
        "name_hint": _hint(hint),
        "head_commit": head,
        "root_commits": roots,
        "bytes_total": nbytes,
        "files_total": files,
        "meta": meta,
    }
    return final, fields


__all__ = ["fetch_source", "name_without_version"]
