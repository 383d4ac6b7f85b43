"""The ``noa`` command (Typer + Rich)."""
