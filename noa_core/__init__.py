"""NOA ARK OS domain core: Prefect-free, typed, unit-testable."""

__version__ = "0.1.0"
