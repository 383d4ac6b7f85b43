"""hello-service: a greeting API with a health endpoint."""

__version__ = "1.0.0"
