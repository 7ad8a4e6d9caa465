# Two commands on a fresh machine with only Python and git: `make demo`, `make test`.
# uv is bootstrapped into .tools/ with pip when it is not on PATH.
SHELL := /bin/bash
UV := $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)
RUN := $(UV) run --frozen

.PHONY: demo test bench lint env clean browser

.tools/bin/uv:
	python3 -m venv .tools
	.tools/bin/pip install --quiet uv

env: $(if $(findstring .tools,$(UV)),.tools/bin/uv)
	$(UV) sync --frozen --quiet --compile-bytecode

demo: env
	$(RUN) bash scripts/demo.sh

# the web view's tests drive a real browser: the system's Chromium (no browser download)
browser:
	@command -v chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }

test: env browser
	$(RUN) pytest

bench: env
	$(RUN) python -m bench.run

lint: env
	$(RUN) ruff check src tests bench
	$(RUN) ruff format --check src tests bench
	$(RUN) mypy
	$(RUN) lint-imports

clean:
	rm -rf .venv .tools bench/work
