"""Recall and false alarms of a model on synthesized streams, at several thresholds.

    OMP_NUM_THREADS=1 python bench/bench_stream_thresholds.py [MODEL] [--seeds 4]

Streams come from kwspi.train.speech.stream (espeak-ng over noise at 20 dB SNR): isolated
keywords, "everyday" speech, and a keyword-free "negative" stream, each for the espeak-ng
families the demo does not use and for the demo's two. Only the first bundled model never heard
the demo's two; later editions trained on all eight, so neither set is held out. Each stream is
synthesized once and scored with kwspi.deploy.evaluation.score.score_detections at every threshold,
so the thresholds compare on identical audio. Prints one JSON object.
"""

import argparse
import json

import numpy as np

from _machine import machine
from _modelfile import model_file
from kwspi.deploy import Detector
from kwspi.deploy.model import LoadedModel
from kwspi.deploy.evaluation.score import score_detections
from kwspi.modelinfo import bundled_model_path
from kwspi.train import demo
from kwspi.train.speech import stream
from kwspi.train.speech.stream import StreamConfig

THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9)
VOICES = {"espeak-ng not the demo's": {"exclude_voices": demo.DEMO_VOICES},
          "espeak-ng the demo's two": {"voices": demo.DEMO_VOICES}}


def configs(seeds: int):
    for voices, kw in VOICES.items():
        for name, mix in (("isolated", (("keyword", 1.0),)), ("everyday", stream.EVERYDAY_MIX)):
            yield voices, name, [StreamConfig(seconds=60, snr_db=20, seed=s, mix=mix, **kw) for s in range(seeds)]
        yield voices, "negative", [StreamConfig(seconds=300, snr_db=20, seed=100, negative=True, **kw)]


def render(cfg: StreamConfig):
    blocks = list(stream.iter_blocks(cfg))
    x = np.concatenate([b.mixed for b in blocks])
    x = (np.clip(np.round(x * 32768), -32768, 32767) / 32768).astype(np.float32)  # as the 16-bit file
    return x, [r for b in blocks for r in b.rows], cfg.seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", default=str(bundled_model_path()))
    parser.add_argument("--seeds", type=int, default=4)
    args = parser.parse_args()
    model = LoadedModel.load(args.model)
    rows = []
    for voices, name, cfgs in configs(args.seeds):
        audio = [render(c) for c in cfgs]
        for th in THRESHOLDS:
            hits = keywords = false_alarms = 0
            for x, truth, _ in audio:
                score = score_detections(Detector(model, thresholds=th).process(x), truth)
                hits, keywords = hits + len(score.hits), keywords + score.n_keywords
                false_alarms += len(score.false_alarms)
            hours = sum(s for _, _, s in audio) / 3600
            rows.append({"voices": voices, "stream": name, "threshold": th, "keywords": keywords, "hits": hits,
                         "recall": hits / keywords if keywords else None, "false_alarms": false_alarms,
                         "fa_per_hour": false_alarms / hours, "hours": hours})
    print(json.dumps({"benchmark": "stream_thresholds", "model": model_file(args.model), "rows": rows, "machine": machine()},
                     indent=1))


if __name__ == "__main__":
    main()
