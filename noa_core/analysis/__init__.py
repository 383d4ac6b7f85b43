"""Analyzers: one module per analyzer behind the port in :mod:`.interface`.

Built-in analyzers, in report order (see :func:`.registry.default_analyzers`):
``languages``, ``build_system``, ``dependencies``, ``tests`` (module ``suites``),
``licence``, ``secrets`` (module ``secrets_scan``), ``sast``, ``complexity``,
``vulnerabilities``. :mod:`.confidence` turns their results into a score.

Modules starting with ``_`` are shared helpers: manifest parsing without execution
(``_manifests``), file classification (``_classify``), licence fingerprints (``_spdx``) and tool
subprocesses (``_proc``). Safe read-only access to a received tree is :mod:`noa_core.sourcetree`.
"""
