# synknow — two commands do everything on a fresh machine: `make test` and `make demo`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export VIRTUAL_ENV := $(abspath $(VENV))
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: help dev build test test-rust test-python lint demo bench wheel clean

help:
	@echo "make test   - create .venv, build, run cargo test and pytest"
	@echo "make demo   - create .venv, build, run the CPU demo, write report/README.md"
	@echo "make bench  - run the CPU benchmarks (results under benches/results/)"
	@echo "make wheel  - build the abi3 wheels into dist/"
	@echo "make lint   - cargo fmt --check, cargo clippy -D warnings, ruff"

$(STAMP): requirements-dev.txt kernels/pyproject.toml
	@command -v cargo >/dev/null || { echo "cargo (Rust) is required: https://rustup.rs"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	$(PY) -m pip install -q --no-deps -e kernels
	touch $@

dev: $(STAMP)

build: $(STAMP)
	$(VENV)/bin/maturin develop --release -q

test-rust:
	cargo test --release -p synknow-core

test-python: build
	$(PY) -m pytest -q

test: build test-rust test-python

lint: $(STAMP)
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings
	$(VENV)/bin/ruff check python tests benches kernels
	$(VENV)/bin/ruff format --check python tests benches kernels

demo: build
	$(PY) -m synknow demo --out report

bench: build
	$(PY) benches/bench_sampler.py
	$(PY) benches/bench_codelength.py
	$(PY) benches/bench_train.py
	$(PY) benches/bench_kernels.py

wheel: $(STAMP)
	$(VENV)/bin/maturin build --release -o dist
	$(PY) -m pip wheel --no-deps -w dist ./kernels

clean:
	rm -rf target dist $(VENV) python/synknow/_core*.so
