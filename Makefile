# The two set-up commands of the README: `make demo` and `make test`.
.PHONY: install demo test test-slow bench

install:
	@bash scripts/bootstrap.sh

demo: install
	.venv/bin/noa demo

test: install
	.venv/bin/python -m pytest -m "not slow" -n 2 -q

test-slow: install
	.venv/bin/python -m pytest -m "slow" -q

bench: install
	.venv/bin/python bench/bench_code_drop.py
