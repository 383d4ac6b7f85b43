"""Language swarms: a toolchain port (Python, Rust, Go), test sharding, and the hive.

Kept import-light on purpose: ``noa_core.swarm.pytest_plugin`` is loaded into isolated
pytest runs, which import this package first. Import the submodules you need:

* :mod:`noa_core.swarm.interface` - results (:class:`CheckResult`, :class:`SwarmReport`),
  the :class:`Toolchain` base, :class:`SwarmContext`, errors;
* :mod:`noa_core.swarm.python`, :mod:`noa_core.swarm.rust`, :mod:`noa_core.swarm.go`,
  :mod:`noa_core.swarm.javascript` (npm; not yet wired into the swarm flows); the Python
  toolchain's parts are ``python_env`` (project, environment), ``python_tests`` (the test
  job and its steps), ``python_collection`` (collect, plan), ``python_test_results``
  (aggregate, confirm, flaky) and ``python_lint`` (ruff);
* :mod:`noa_core.swarm.sharding` - collect, plan (LPT by recorded durations), run, aggregate: the
  steps are ``pytest_commands``, ``pytest_runs``, ``suite_collection``, ``shard_plan``,
  ``shard_runs`` and ``shard_counts``;
* :mod:`noa_core.swarm.hive` - the shared knowledge store (tables in ``hive_schema``, keys
  and content hashes in ``hive_keys``, results and leases in ``hive_results``, durations,
  flaky tests and test facts in ``hive_knowledge``);
* :mod:`noa_core.swarm.workers` - Prefect worker processes for ``noa swarm up/down``.
"""
