"""Prefect @flow compositions: one module per documented flow.

To call them from Python, use ``import noa``: it exports every flow a user calls and the
typed result each returns (:mod:`noa_core.results`), with what each needs running and the
errors it raises.
"""
