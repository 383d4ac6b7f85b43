"""Prefect @flow compositions: one module per documented flow."""
