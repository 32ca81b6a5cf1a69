# synknow — two commands do everything on a fresh machine: `make test` and `make demo`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export VIRTUAL_ENV := $(abspath $(VENV))
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: help dev build test test-rust test-python lint lint-rust lint-python typecheck stubtest \
	demo bench wheel gpu-check clean

# Every target carries a `## description`; `make help` lists them from this file.
help: ## list the targets with what they do
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  make %-12s %s\n", $$1, $$2}' \
		$(MAKEFILE_LIST)

$(STAMP): requirements-dev.txt kernels/pyproject.toml
	@command -v cargo >/dev/null || { echo "cargo (Rust) is required: https://rustup.rs"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	$(PY) -m pip install -q --no-deps -e kernels
	touch $@

dev: $(STAMP) ## create .venv with the development requirements (once)

build: $(STAMP) ## compile the Rust extension into the venv (maturin develop --release)
	$(VENV)/bin/maturin develop --release -q

test-rust: ## cargo test of the Rust core
	cargo test --release -p synknow-core

test-python: build ## pytest (after build)
	$(PY) -m pytest -q

test: build test-rust test-python ## everything CI tests: build, cargo test, pytest

lint: lint-rust lint-python typecheck stubtest ## every static check CI runs before the tests

lint-rust: ## cargo fmt --check, cargo clippy -D warnings
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings

lint-python: $(STAMP) ## ruff check and ruff format --check
	$(VENV)/bin/ruff check python tests benches kernels
	$(VENV)/bin/ruff format --check python tests benches kernels

typecheck: $(STAMP) ## mypy over python/synknow (configuration in pyproject.toml)
	$(PY) -m mypy

stubtest: build ## check python/synknow/_core.pyi against the built extension
	$(PY) -m mypy.stubtest synknow._core --allowlist .ci/stubtest-allowlist.txt

demo: build ## run the CPU demo, write report/README.md
	$(PY) -m synknow demo --out report

bench: build ## run the benchmarks (results under benches/results/)
	$(PY) benches/bench_sampler.py
	$(PY) benches/bench_codelength.py
	$(PY) benches/bench_train.py
	$(PY) benches/bench_kernels.py

# Wheels need only maturin (and zig, from the ziglang package, to link against an old glibc), in
# a venv of their own under target/: no torch, no development requirements. On Linux the wheel is
# manylinux2014 (glibc 2.17: RHEL/Rocky 8, Ubuntu 20.04 and older clusters accept it).
WHEEL_VENV := target/wheel-venv
# maturin finds zig as `python -m ziglang` of the first python on PATH: the wheel venv's.
WHEEL_ENV := VIRTUAL_ENV=$(abspath $(WHEEL_VENV)) PATH="$(abspath $(WHEEL_VENV))/bin:$$PATH"
WHEEL_LINUX := $(if $(filter Linux,$(shell uname -s)),--compatibility manylinux2014 --zig,)
wheel: ## build the synknow abi3 wheel + sdist and the synknow-kernels wheel into dist/ (no torch)
	@command -v cargo >/dev/null || { echo "cargo (Rust) is required: https://rustup.rs"; exit 1; }
	@test -x $(WHEEL_VENV)/bin/maturin || { $(PYTHON) -m venv $(WHEEL_VENV) && \
		$(WHEEL_VENV)/bin/python -m pip install -q "maturin>=1.7,<2" ziglang; }
	$(WHEEL_ENV) maturin build --release $(WHEEL_LINUX) -o dist
	$(WHEEL_ENV) maturin sdist -o dist
	$(WHEEL_ENV) python -m pip wheel -q --no-deps -w dist ./kernels
	rm -rf kernels/build  # setuptools' in-tree build directory

gpu-check: ## one GPU check (~10 min on an H100/H200): tests, benchmarks, gpu-small; OUT=folder
	bash benches/gpu_check.sh $(or $(OUT),gpu-check)

clean: ## remove build outputs and .venv
	rm -rf target dist $(VENV) python/synknow/_core*.so
