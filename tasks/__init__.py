"""Prefect @task wrappers over noa_core: retries, timeouts and cache policies live here."""
