"""Running the embedded Prefect server (as a subprocess; no Prefect import here)."""
