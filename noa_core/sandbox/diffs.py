"""What changed between two trees of the workspace repository, file by file (``git diff-tree``)."""

from __future__ import annotations

from dataclasses import dataclass

from noa_core.sandbox.git import Git


@dataclass(frozen=True)
class FileChange:
    path: str                 # relative to the project directory
    status: str               # A added, M modified, D deleted, T type (mode) changed
    insertions: int | None    # None for binary files
    deletions: int | None


@dataclass(frozen=True)
class DiffStat:
    files_changed: int
    insertions: int
    deletions: int
    changes: tuple[FileChange, ...]

    @property
    def lines_changed(self) -> int:
        return self.insertions + self.deletions


def diff_trees(git: Git, a: str, b: str, prefix: str | None) -> DiffStat:
    """Changes from tree-ish ``a`` to ``b``, limited to directory ``prefix`` (paths relative to it)."""
    spec = ["--", f"{prefix}/"] if prefix else []
    common = ["diff-tree", "-r", "-z", "--no-renames", "--no-textconv"]
    numstat = git.run(*common, "--numstat", a, b, *spec).stdout
    names = git.run(*common, "--name-status", a, b, *spec).stdout
    strip = len(prefix) + 1 if prefix else 0
    status_of: dict[bytes, str] = {}
    fields = names.split(b"\0")
    for i in range(0, len(fields) - 1, 2):
        status_of[fields[i + 1]] = fields[i].decode()
    changes = []
    for record in filter(None, numstat.split(b"\0")):
        ins, dels, path = record.split(b"\t", 2)
        changes.append(FileChange(
            path=path[strip:].decode("utf-8", "surrogateescape"), status=status_of.get(path, "M"),
            insertions=None if ins == b"-" else int(ins), deletions=None if dels == b"-" else int(dels)))
    return DiffStat(files_changed=len(changes), insertions=sum(c.insertions or 0 for c in changes),
                    deletions=sum(c.deletions or 0 for c in changes), changes=tuple(changes))
