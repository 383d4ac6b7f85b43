"""Adapters to outside services: GitHub (statuses, check runs, PR comments), the npm
registry (JavaScript dependency metadata) and Cloudflare tunnels (``noa expose``)."""
