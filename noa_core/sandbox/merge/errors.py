"""What can go wrong in a sandbox merge."""

from __future__ import annotations

from noa_core.sandbox.git import WorkspaceError


class MergeError(WorkspaceError):
    """The sandbox merge could not do its job (nothing was changed unless said otherwise)."""


class MergeRolledBack(MergeError):
    """A step after D moved failed; D (and every sandbox) was put back where it was."""


class IntegrationMoved(MergeError):
    """D moved while the merge ran (compare-and-swap lost): nothing was merged."""


class IntegrationConflict(MergeError):
    """Merging the sandboxes hit a conflict (the conflict check should have said so first)."""
