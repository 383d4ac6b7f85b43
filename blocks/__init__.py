"""Prefect Block types: NOA's configuration and credentials (secrets as SecretStr)."""

from blocks.workspace import NoaWorkspace

__all__ = ["NoaWorkspace"]
