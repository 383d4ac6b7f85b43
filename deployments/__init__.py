"""Prefect deployments of NOA ARK OS: how flows are deployed, served and triggered.

* :mod:`deployments.code_drop`: the ``code_drop`` deployment the drop-in watcher
  (``noa watch``) serves in its own process, one per NOA_HOME, and the
  :class:`~deployments.code_drop.PrefectDeploymentBackend` that runs each drop-in item
  through it.

Worker-based deployments for a server at scale are declared in ``prefect.yaml``.
"""
