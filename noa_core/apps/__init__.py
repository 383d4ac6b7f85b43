"""Self-hosted apps: the app registry (owned and external apps) and the switch controller.

* :mod:`noa_core.apps.registry` - ``AppRegistry`` over the ``apps`` table (registry database);
* :mod:`noa_core.apps.switch`   - ``SwitchController``: move a service from one app to another
  through NOA's Caddy, draining the old one; undo on any failed step;
* :mod:`noa_core.apps.health`   - health probes of registered endpoints.

Prefect-free; ``flows/app_switch.py`` runs the switch as one task per step.
"""
