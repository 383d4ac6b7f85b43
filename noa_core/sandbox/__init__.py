"""Sandboxes: the workspace repository (branches A-D + worktrees), landing drops, assignment."""

from noa_core.sandbox.assignment import Assignment, AssignmentSignals, assign_sandbox, classify_opinion
from noa_core.sandbox.diffs import DiffStat, FileChange
from noa_core.sandbox.drop_commits import LandedDrop
from noa_core.sandbox.git import GitError, WorkspaceError
from noa_core.sandbox.paths import DropScan, SkippedPath, is_git_name, scan_drop
from noa_core.sandbox.refs import ConcurrentUpdate
from noa_core.sandbox.repository import SandboxStatus, WorkspaceRepo, validate_project_name
from noa_core.sandbox.sandboxes import WORK_SANDBOXES, Sandbox

__all__ = ["Assignment", "AssignmentSignals", "ConcurrentUpdate", "DiffStat", "DropScan", "FileChange", "GitError",
           "LandedDrop", "SandboxStatus", "SkippedPath", "WORK_SANDBOXES", "Sandbox", "WorkspaceError",
           "WorkspaceRepo", "assign_sandbox", "classify_opinion", "is_git_name", "scan_drop",
           "validate_project_name"]
