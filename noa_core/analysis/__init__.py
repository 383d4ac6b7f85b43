"""Analyzers: one module per analyzer behind the port in :mod:`.interface`."""
