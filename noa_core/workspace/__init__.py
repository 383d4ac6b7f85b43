"""The workspace: file registry and scan (git-index-like), SOT archive, versions, dependency graph.

Prefect-free. ``scan`` keeps the unchanged path free of SQLAlchemy and Prefect; import
the submodules directly (``noa_core.workspace.scan``, ``.deps``, ``.status``).
"""
