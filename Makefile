# jupyterlab-kerasgpu: `make lab` sets up and starts JupyterLab; `make test` sets up and runs every test tier.
# Both are idempotent: stamps in .stamps/ skip set-up steps whose inputs did not change.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
PY := $(BIN)/python
STAMPS := .stamps
CHROMIUM ?= /usr/bin/chromium
export PATH := $(BIN):$(PATH)
# pytest-xdist workers for make check and make test (a test file per worker): the kernels' start-up
# and the servers' waits overlap on the machine's two cores.
CHECK_WORKERS ?= 2

.PHONY: lab test check setup build lint lint-fix test-js test-py test-jax test-cuda test-ui test-package test-compat screenshots clean help

help:
	@echo "make lab    set up everything and start JupyterLab with the extension (demo notebook open)"
	@echo "make test   set up everything and run every test tier (lint, jest, pytest, CUDA builds, galata)"
	@echo "make check  the daily loop: lint, jest, pytest without the corpus, gateway, CUDA and compatibility tiers"

$(STAMPS):
	mkdir -p $(STAMPS)

# Python virtual environment with the pinned dependencies (requirements.lock) and this package (editable).
$(STAMPS)/venv: | $(STAMPS)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	touch $@

# Keyed on the content of the lock, not its mtime: `npm install` (run by the wheel build)
# rewrites an unchanged package-lock.json.
NPM_STAMP := $(STAMPS)/npm-$(shell cat package.json package-lock.json | sha1sum | cut -c1-12)
UI_NPM_STAMP := $(STAMPS)/ui-npm-$(shell cat ui-tests/package.json ui-tests/package-lock.json | sha1sum | cut -c1-12)

$(NPM_STAMP): | $(STAMPS)
	npm ci --no-audit --no-fund
	rm -f $(STAMPS)/npm-* && touch $@

# The editable install skips the build hook's npm steps: `make build` runs them right after.
$(STAMPS)/python: pyproject.toml requirements.lock $(STAMPS)/venv $(NPM_STAMP)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.lock
	HATCH_JUPYTER_BUILDER_SKIP_NPM=1 $(PY) -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

# The labextension is rebuilt each time (incremental, seconds) and linked into the environment.
build: $(STAMPS)/python
	npm run build
	@# Link (not copy) the built labextension into the environment, as `labextension develop` does.
	rm -rf $(VENV)/share/jupyter/labextensions/jupyterlab-kerasgpu
	mkdir -p $(VENV)/share/jupyter/labextensions
	ln -s $(CURDIR)/python_ext/kerasgpu/labextension $(VENV)/share/jupyter/labextensions/jupyterlab-kerasgpu

setup: build

lab: setup
	$(BIN)/jupyter lab --ServerApp.ip=127.0.0.1 $$( [ "$$(id -u)" = 0 ] && echo --allow-root ) \
	  examples/keras_gpu_demo.ipynb

$(STAMPS)/chromium: | $(STAMPS)
	@if [ ! -x $(CHROMIUM) ]; then \
	  echo "Installing Debian's chromium for the UI tests"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium; \
	fi
	touch $@

# Debian's prometheus: the metrics test starts it on loopback to scrape a real server.
PROMETHEUS ?= /usr/bin/prometheus
$(STAMPS)/prometheus: | $(STAMPS)
	@if [ ! -x $(PROMETHEUS) ]; then \
	  echo "Installing Debian's prometheus for the metrics test"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq \
	    -o DPkg::Lock::Timeout=600 --no-install-recommends prometheus; \
	fi
	touch $@

$(UI_NPM_STAMP): | $(STAMPS)
	cd ui-tests && npm ci --no-audit --no-fund
	rm -f $(STAMPS)/ui-npm-* && touch $@

lint: $(STAMPS)/python
	npm run lint
	$(BIN)/ruff check python_ext bench scripts
	$(BIN)/ruff format --check python_ext bench scripts

lint-fix: $(STAMPS)/python
	npm run lint:fix
	$(BIN)/ruff check --fix python_ext bench scripts
	$(BIN)/ruff format python_ext bench scripts

test-js: $(NPM_STAMP)
	npx jest

# The gateway test runs in a pytest process of its own: jupyter_server keeps process-wide
# singletons (GatewayClient) that earlier in-process servers can leave behind.
# The corpus runs two kernels at a time of its own; the rest runs on two pytest workers, as in make check.
test-py: build $(STAMPS)/prometheus
	$(BIN)/pytest -q -n $(CHECK_WORKERS) --dist loadfile -m "not gateway and not corpus"
	$(BIN)/pytest -q -m corpus
	$(BIN)/pytest -q -m gateway python_ext/tests/server/test_gateway.py

test-package: build
	$(PY) scripts/check_package.py

# The jax tier: %gpu_batch_size and %gpu_estimate on Keras 3 with the JAX backend, in an environment
# without TensorFlow (CPU jaxlib), outside the clone and keyed on its build script (scripts/jax_env.sh).
JAX_CACHE ?= $(HOME)/.cache/kerasgpu
JAX_ENV := $(JAX_CACHE)/jax-$(shell cat scripts/jax_env.sh | sha1sum | cut -c1-10)

$(JAX_ENV)/.built:
	bash scripts/jax_env.sh $(JAX_ENV) $(JAX_CACHE)/jax-wheels $(PYTHON)

test-jax: $(JAX_ENV)/.built
	PYTHONPATH=$(CURDIR)/python_ext $(JAX_ENV)/bin/python -m pytest -q python_ext/tests/keras_jax

# The CUDA-build tier: the real `tensorflow` and `tensorflow[and-cuda]` 2.21 wheels in two environments
# (tf/, and-cuda/), built from a wheel folder that is downloaded once per machine (~3.3 GB; pip's own
# cache stays empty here). Both live outside the clone, the environments keyed on their build script
# and Python, so a second run or a fresh clone on the same machine downloads and installs nothing.
# .venv-cuda links to them, for running the tier by hand (pytest -m cuda_build python_ext/tests/cuda).
CUDA_CACHE ?= $(HOME)/.cache/kerasgpu
CUDA_WHEELS ?= $(CUDA_CACHE)/wheels
CUDA_KEY := $(shell (cat scripts/cuda_venvs.sh; $(PYTHON) -c 'import sys; print(sys.executable, sys.version)') \
  | sha1sum | cut -c1-12)
CUDA_VENVS := $(CUDA_CACHE)/venvs-$(CUDA_KEY)

$(CUDA_VENVS)/.built:
	scripts/cuda_venvs.sh $(CUDA_VENVS) $(CUDA_WHEELS) $(PYTHON)

test-cuda: $(STAMPS)/python $(CUDA_VENVS)/.built
	ln -sfn $(CUDA_VENVS) .venv-cuda
	KERASGPU_CUDA_VENVS=$(CUDA_VENVS) KERASGPU_WHEEL_CACHE=$(CUDA_WHEELS) \
	  $(BIN)/pytest -q -m cuda_build python_ext/tests/cuda

# Enterprise Gateway's own venv (it pins jupyter_server<2), outside the clone: the gateway tests' kernels.
EG_VENV ?= $(HOME)/.cache/kerasgpu/eg-venv
$(EG_VENV)/.built:
	bash scripts/eg_venv.sh $(EG_VENV) $(PYTHON)

# The second run has a server of its own: a real Enterprise Gateway on loopback runs its kernels
# (ui-tests/start-gateway.sh starts and stops both).
test-ui: build $(STAMPS)/chromium $(UI_NPM_STAMP) $(EG_VENV)/.built
	cd ui-tests && npx playwright test
	cd ui-tests && KERASGPU_EG_VENV=$(EG_VENV) npx playwright test -c gateway.config.js

# The compatibility tier: JupyterLab 4.0 (the oldest supported) and Notebook 7 in Chromium, and
# install + import on Python 3.10, 3.12 and 3.13. Its environments live outside the clone, keyed on
# the script that builds them, built once per machine from a wheel folder (scripts/compat_envs.sh).
COMPAT_CACHE := $(HOME)/.cache/kerasgpu
COMPAT_ENVS := $(COMPAT_CACHE)/compat-$(shell cat scripts/compat_envs.sh | sha1sum | cut -c1-10)

$(COMPAT_ENVS)/.built:
	bash scripts/compat_envs.sh $(COMPAT_ENVS) $(COMPAT_CACHE)/compat-wheels

test-compat: build $(STAMPS)/chromium $(UI_NPM_STAMP) $(COMPAT_ENVS)/.built
	rm -rf .compat-wheel
	$(PY) -m pip wheel . --no-deps --no-build-isolation -q -w .compat-wheel
	for e in lab40 nb7 py310 py312 py313; do \
	  $(COMPAT_ENVS)/$$e/bin/python -m pip install -q --disable-pip-version-check --no-deps --force-reinstall .compat-wheel/*.whl; \
	done
	for e in py310 py312 py313 lab40 nb7; do $(COMPAT_ENVS)/$$e/bin/python scripts/check_installed.py; done
	cd ui-tests && KERASGPU_COMPAT_ENVS=$(COMPAT_ENVS) npx playwright test -c compat.config.js

# Rewrites the README's screenshots (docs/*.png) from the UI tests that take them.
# Rewrites the README's pictures in docs/ (a normal test run writes them to ui-tests/screenshots/).
screenshots: build $(STAMPS)/chromium $(UI_NPM_STAMP) $(EG_VENV)/.built
	cd ui-tests && KERASGPU_SCREENSHOTS_DIR=$(CURDIR)/docs npx playwright test
	cd ui-tests && KERASGPU_EG_VENV=$(EG_VENV) KERASGPU_SCREENSHOTS_DIR=$(CURDIR)/docs npx playwright test -c gateway.config.js

# The daily loop (a few minutes): what make test runs, less the slow tiers.
check: build lint test-js
	$(BIN)/pytest -q -p no:cacheprovider -n $(CHECK_WORKERS) --dist loadfile \
	  -m "not gateway and not corpus and not cuda_build and not gpu" python_ext/tests

test: build lint test-js test-py test-jax test-cuda test-package test-ui test-compat
	@echo "All test tiers passed."

clean:
	rm -rf $(STAMPS) lib tsconfig.tsbuildinfo python_ext/kerasgpu/labextension dist

# Re-pins requirements.lock from pyproject.toml's dependencies and [test,tf] extras in a fresh environment.
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install -q hatchling==1.33.0 hatch-jupyter-builder==0.10.0 hatch-nodejs-version==0.4.0 jupyter-builder==1.3.0
	.lock-venv/bin/pip install -q --no-build-isolation -e ".[test,tf]"
	( echo "# Pinned Python environment for development and tests (make lab / make test install it)."; \
	  echo "# Regenerate with \`make lock\` after changing the dependencies or extras in pyproject.toml."; \
	  .lock-venv/bin/pip freeze --exclude-editable | grep -v -i '^jupyterlab-kerasgpu' ) > requirements.lock
	rm -rf .lock-venv
