"""The sandbox merge: integration commits, their validation, the journal that keeps D safe.

Prefect-free building blocks of the ``sandbox_merge`` flow (``flows/sandbox_merge.py``), one
module per job (``plan``, ``integration``, ``validation``, ``journal``, ``verdicts``, ``report``;
``errors``); this package's public names are re-exported here:

* :func:`plan_merge` resolves what ``noa merge [A B C]`` asks for (default: every work
  sandbox ahead of D) and pins every head it will look at;
* :func:`build_integration` merges sandboxes onto D with plumbing only (one
  ``merge-tree --write-tree`` per sandbox, as the merge queue does) and writes one commit
  whose tree is the result and whose parents are D and the sandbox heads (an octopus-like
  merge commit; D stays the first parent). No ref, index or worktree is touched: the
  commit becomes the integration line only when the flow moves D onto it;
* :func:`affected_projects`, :func:`read_test_plan`, :func:`validate_project` run each changed
  project's tests (``noa.yaml`` ``test.command``) isolated, on the candidate commit's
  ``projects/<name>`` checked out into a temporary directory through a throw-away index
  (``read-tree`` + ``checkout-index``; the repository's ``info/attributes`` keeps any
  dropped ``.gitattributes`` from naming a filter);
* :class:`MergeJournal` records, before D moves, where D and the sandboxes were. A merge
  that dies after moving D (a killed process) is rolled back by :func:`recover` at the
  start of the next merge: D moves only as part of a merge that finished.
"""

from noa_core.sandbox.merge.errors import (
    IntegrationConflict,
    IntegrationMoved,
    MergeError,
    MergeRolledBack,
)
from noa_core.sandbox.merge.integration import (
    Integration,
    build_integration,
    merge_message,
    pin,
    unpin,
)
from noa_core.sandbox.merge.journal import JournalEntry, MergeJournal, recover, restore
from noa_core.sandbox.merge.plan import MergePlan, parse_requested, plan_merge
from noa_core.sandbox.merge.report import (
    CLTREE_NOTE,
    MergeReport,
    new_run_id,
    render_markdown,
    write_report,
)
from noa_core.sandbox.merge.validation import (
    ProjectValidation,
    Status,
    TestPlan,
    affected_projects,
    export_project,
    project_trees,
    read_test_plan,
    validate_project,
)
from noa_core.sandbox.merge.verdicts import (
    Verdict,
    read_verdict,
    verdict_path,
    write_verdicts,
)

__all__ = [
    "CLTREE_NOTE",
    "Integration",
    "IntegrationConflict",
    "IntegrationMoved",
    "JournalEntry",
    "MergeError",
    "MergeJournal",
    "MergePlan",
    "MergeReport",
    "MergeRolledBack",
    "ProjectValidation",
    "Status",
    "TestPlan",
    "Verdict",
    "affected_projects",
    "build_integration",
    "export_project",
    "merge_message",
    "new_run_id",
    "parse_requested",
    "pin",
    "plan_merge",
    "project_trees",
    "read_test_plan",
    "read_verdict",
    "recover",
    "render_markdown",
    "restore",
    "unpin",
    "validate_project",
    "verdict_path",
    "write_report",
    "write_verdicts",
]
