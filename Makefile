# The two set-up commands of the README: `make demo` and `make test`.
.PHONY: install install-test demo test test-slow bench

install:
	@bash scripts/bootstrap.sh

install-test:
	@bash scripts/bootstrap.sh --test

demo: install
	.venv/bin/noa demo

test: install-test
	.venv/bin/python -m pytest -m "not slow" -n 2 -q

test-slow: install-test
	.venv/bin/python -m pytest -m "slow" -q

bench: install
	.venv/bin/python bench/bench_code_drop.py
