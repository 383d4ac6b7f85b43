"""Deploy: targets (local, docker, kubernetes), the Caddy traffic router, health checks,
canary analysis, releases. Ports in :mod:`noa_core.deploy.interface`."""
