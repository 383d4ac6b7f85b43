"""The unified NOA API server (FastAPI): see :func:`noa_core.server.app.create_app`."""

from noa_core.server.app import create_app

__all__ = ["create_app"]
