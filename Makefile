# One-command set-up on a fresh Debian machine (as root, or with sudo).
#   make test   apt packages, .venv, torch (CPU, pinned), kwspi with extras, then pytest
#   make demo   the same set-up, then the main job on synthesized audio

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# espeak-ng: the speech synthesizer for data, tests and the demo.
# libportaudio2: what sounddevice loads to reach a microphone.
APT_PACKAGES := espeak-ng libportaudio2
# The CPU wheel; an unpinned torch would pull a several-GB CUDA build.
TORCH := torch==2.13.0

.PHONY: all setup apt test demo bench clean

all: test

setup: apt $(VENV)/.installed

apt:
	@missing=$$(for p in $(APT_PACKAGES); do \
	    dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	    echo "installing $$missing"; \
	    $(SUDO) apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e '.[train,test]'
	touch $@

test: setup
	$(BIN)/python -m pytest -q

demo: setup
	$(BIN)/python bench/demo.py

bench: setup
	OPENBLAS_NUM_THREADS=1 $(BIN)/python bench/bench_features.py

clean:
	rm -rf $(VENV) demo-out .pytest_cache .hypothesis
