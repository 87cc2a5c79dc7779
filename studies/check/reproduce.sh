#!/usr/bin/env bash
# Reference outputs of kwspi's training side at a tiny scale, fixed seeds, one thread.
#
#   VENV=/path/to/checkout/.venv bash reproduce.sh OUTDIR
#
# VENV: the virtual environment with kwspi installed (`make setup` in the checkout).
# SRC:  the checkout whose studies/*.py are run (default: the folder holding VENV).
# Only `kwspi synth`, `kwspi sweep` and `studies/*.py` with their options are used, so the
# script does not depend on module paths inside the package.
# A refactor of the training side must give the same numbers: run this with the checkout
# before and the one after (same machine, same installed voices), then compare the OUTDIRs with
#   VENV/bin/python studies/check/compare.py OUTDIR_A OUTDIR_B [--deep]
# The redesign of issue 10 was checked this way against commit 96409e6: every result equal, every
# checkpoint tensor and every ONNX file identical (its checkpoints only gained metadata keys).
# With REUSE_DATA=DIR the data/ and heldout/ folders of an earlier OUTDIR are copied instead of
# synthesized, for when the installed voices differ between the two runs.
set -euo pipefail

OUT=${1:?usage: VENV=/path/.venv bash reproduce.sh OUTDIR}
VENV=${VENV:?set VENV to the virtual environment to use}
VENV=$(cd "$VENV" && pwd)
SRC=${SRC:-$(dirname "$VENV")}
SRC=$(cd "$SRC" && pwd)
PY=$VENV/bin/python
KWSPI=$VENV/bin/kwspi
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
mkdir -p "$OUT/logs"

export PATH=$VENV/bin:$PATH
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 PYTHONHASHSEED=0
export MPLBACKEND=Agg

WORDS=yes,no,up,down,left,right,on,off,stop,go,bed,cat
TIMES=$OUT/timings.txt
: > "$TIMES"

step() {  # step NAME CMD...: run in $SRC, log to $OUT/logs/NAME.log, record wall seconds
    local name=$1; shift
    echo "== $name: $*" | tee -a "$OUT/logs/commands.txt"
    local t0=$SECONDS
    (cd "$SRC" && "$@") > "$OUT/logs/$name.log" 2>&1 || { echo "FAILED: $name (see $OUT/logs/$name.log)"; tail -20 "$OUT/logs/$name.log"; exit 1; }
    echo "$name $((SECONDS - t0))s" | tee -a "$TIMES"
}

{ echo "src: $SRC ($(git -C "$SRC" rev-parse HEAD 2>/dev/null || echo no-git))"
  "$PY" -c 'import sys, torch, numpy; print("python", sys.version.split()[0], "torch", torch.__version__, "numpy", numpy.__version__)'
} > "$OUT/env.txt" 2>&1

# 1. Data: 24 speakers of every English voice, 10 keywords + 2 unknown words; 6 speakers of en-029 held out.
if [ -n "${REUSE_DATA:-}" ]; then
    cp -a "$REUSE_DATA/data" "$REUSE_DATA/heldout" "$OUT/" && rm -rf "$OUT"/data/.kwspi-cache "$OUT"/heldout/.kwspi-cache
else
    step synth        "$KWSPI" synth "$OUT/data"    --speakers 24 --seed 1 -j 1 --words "$WORDS"
    step synth-heldout "$KWSPI" synth "$OUT/heldout" --speakers 6 --seed 1 -j 1 --words "$WORDS" --voices en-029
fi

# 2a. The brief's tiny sweep. NB: 1 search epoch never updates the architecture (arch steps start in
#     the 2nd joint epoch, every 5 batches), so b0 and b4 give the same net here.
step sweep "$KWSPI" sweep --data "$OUT/data" --eval-data "$OUT/heldout" \
    --runs "$OUT/runs/sweep" --results "$OUT/results" \
    --betas 0,4 --width-mults 0.25 --baselines dscnn-s \
    --warmup-epochs 1 --search-epochs 1 --retrain-epochs 1 --seed 0 -j 1

# 2b. A sweep that does update the architecture (batch 20 -> ~11 batches per epoch, 3 joint epochs).
step sweep-arch "$KWSPI" sweep --data "$OUT/data" --eval-data "$OUT/heldout" \
    --runs "$OUT/runs/sweep-arch" --results "$OUT/results-sweep-arch" \
    --betas 0,16 --width-mults 0.25 --baselines dscnn-s \
    --warmup-epochs 1 --search-epochs 3 --retrain-epochs 2 --batch-size 20 --seed 0 -j 1

# 3. Studies (all write into $OUT/results next to sweep.json).
COMMON=(--data "$OUT/data" --heldout "$OUT/heldout" --out "$OUT/results" --work "$OUT/runs/studies"
        --train-speakers 12 --width 0.25 --epochs 3 --views 2 --batch-size 20 --seed 0)
step quant-bits            "$PY" studies/quant_bits.py "${COMMON[@]}" --bits 8,2
step quant-bits-from-float "$PY" studies/quant_bits.py "${COMMON[@]}" --bits 8,2 --qat-from-float
step n-mfcc                "$PY" studies/n_mfcc.py     "${COMMON[@]}" --n-mfcc 10,20
step generalisation        "$PY" studies/generalisation.py --data "$OUT/data" --heldout "$OUT/heldout" \
    --out "$OUT/results" --work "$OUT/runs/generalisation" --arch dscnn-s --epochs 2 --seeds 0 -j 1

echo "done: $OUT (timings in $TIMES)"
