# The two entry points of a fresh checkout (each sets up .venv first, idempotently):
#   make demo   - run nvp on its built-in talking-head clip and print the store summary
#   make test   - the test suite (fast tests + real-data tests where ../shared/data exists)
.PHONY: setup demo test test-fast lint format

setup:
	@scripts/setup.sh

demo: setup
	.venv/bin/nvp demo --out demo_out

test: setup
	.venv/bin/python -m pytest -m "not slow and not gpu" -q

test-fast: setup
	.venv/bin/python -m pytest -m "not slow and not gpu and not realdata" -q

lint: setup
	.venv/bin/ruff check . && .venv/bin/ruff format --check .

format: setup
	.venv/bin/ruff format . && .venv/bin/ruff check --fix .
