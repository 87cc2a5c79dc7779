"""Give an exported model a new enrollment bank without its checkpoint (issue 13).

The bank is what `kwspi enroll` keeps other speakers and other speech in mind with: labelled
embeddings, as the int8 graph computes them, of clips the model should not forget
(``kwspi export --bank-speech-share``; results/enroll.md measured that a bank mostly of other
speech is what keeps an enrolled model's false alarms at the base model's). Models exported
before that carry a bank even over the labels; this script redraws it from GSC-layout folders
through the model's own graph and front end and writes a new model file (graph byte for byte
the same, metadata otherwise unchanged). Silence rows are the model's features of silence.

Example (the bundled model, from the study pools of its five training engines, joined first:
each folder's training split must hold every keyword, and Piper's lacks three):
    kwspi combine data/voices-all data/voices/espeak data/voices/mbrola data/voices/rhvoice \\
        data/voices/piper data/voices/kokoro
    .venv/bin/python studies/rebank.py --model kwspi/models/default.onnx --data data/voices-all \\
        --size 250 --out kwspi/models/default.onnx
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np

from kwspi.evaluate import split_features, task_for
from kwspi.modelfile import write_model
from kwspi.modelinfo import decode_array, open_session, read_info
from kwspi.train.config import ExportRun
from kwspi.train.export import bank
from kwspi.train.run import EVERY_OTHER_WORD


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--data", type=Path, action="append", required=True, help="GSC-layout folder; repeatable")
    parser.add_argument("--size", type=int, default=ExportRun.bank_size)
    parser.add_argument("--speech-share", type=float, default=ExportRun.bank_speech_share)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    info = read_info(args.model)
    task = dataclasses.replace(task_for(info.labels), unknown_fraction=EVERY_OTHER_WORD)
    parts = [split_features(d, "training", info.features, task, args.seed) for d in args.data]
    X = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    session, _ = open_session(args.model)
    carried = bank(session, X.astype(np.float32), y, info.labels, args.size, args.speech_share, args.seed)
    write_model(args.model, dataclasses.replace(info, bank=carried), args.out)
    labels = decode_array(carried["labels"])
    print(f"{args.out}: bank of {len(labels)} ({np.bincount(labels, minlength=len(info.labels)).tolist()} per label "
          f"{list(info.labels)}) from {len(y)} training examples of {len(args.data)} folder(s)")


if __name__ == "__main__":
    main()
