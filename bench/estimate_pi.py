"""ESTIMATE (not a measurement) of the engine's per-hop cost on a Raspberry Pi 4 and 5.

Nothing here ran on a Pi. The script measures the engine on this machine (CPU time per
hop, 1 thread, as bench_engine.py does) and scales it by per-core slowdown factors taken
from the project's research notes and from Raspberry Pi Ltd's own launch claim:

* Pi 4 (Cortex-A72, 1.5-1.8 GHz): 10-100x slower per core than this x86 build machine.
  Source: ../shared/research/feasibility.md, section 4 ("a Raspberry Pi should be about
  1-2 orders of magnitude slower; this was not measured on real hardware"). A judgement,
  not a measurement; the wide range is the honest width of it.
* Pi 5 (Cortex-A76, 2.4 GHz): 2-3x a Pi 4. Source: Raspberry Pi Ltd's launch
  announcement of the Pi 5 (2023, "2-3x the CPU performance of Raspberry Pi 4").

The MACs enter as throughput: MACs per inference / measured time gives what this machine
achieves on this model (GMAC/s), and the same factors give what a Pi would have to
achieve. A per-core factor from a generic CPU score was tried and left out: published
sysbench single-core scores for the Pi 4 disagree by 2x between sources, and a scalar
integer benchmark says little about SIMD int8 convolutions.

    OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 .venv/bin/python bench/estimate_pi.py [--model PATH]
"""

import json

from _machine import machine
from _modelfile import model_file
from bench_engine import measure_engine, measure_floor, setup

# (low, high) per-core slowdown against this machine; see the docstring for the sources.
PI4_SLOWDOWN = (10.0, 100.0)
PI5_OVER_PI4 = (2.0, 3.0)
SLOWDOWN = {
    "pi4_cortex_a72": PI4_SLOWDOWN,
    "pi5_cortex_a76": (PI4_SLOWDOWN[0] / PI5_OVER_PI4[1], PI4_SLOWDOWN[1] / PI5_OVER_PI4[0]),
}
HOPS_MS = (20, 100)


def main():
    _, path, model, audio = setup(__doc__.splitlines()[0], 30.0)
    x86 = {}
    for stride_ms in HOPS_MS:
        engine = measure_engine(model, stride_ms, audio)["cpu_ms"]["total"]
        x86[stride_ms] = {"p50": engine["p50"], "p99": engine["p99"]}
    inference_ms = measure_floor(model, 100, audio)["inference"]["p50"]
    macs = model.info.macs
    boards = {}
    for board, (low, high) in SLOWDOWN.items():
        boards[board] = {
            "slowdown_assumed": [round(low, 2), round(high, 2)],
            "inference_ms": [round(inference_ms * low, 2), round(inference_ms * high, 2)],
            "gmac_per_s_needed": [round(macs / (inference_ms * high) / 1e6, 3),
                                  round(macs / (inference_ms * low) / 1e6, 3)],
            **{f"stride_{h}ms": {"p50_ms": [round(x["p50"] * low, 2), round(x["p50"] * high, 2)],
                              "p99_ms": [round(x["p99"] * low, 2), round(x["p99"] * high, 2)],
                              "percent_of_one_core_p50": [round(100 * x["p50"] * low / h, 1),
                                                          round(100 * x["p50"] * high / h, 1)],
                              "real_time_at_p99": x["p99"] * high < h}
               for h, x in x86.items()},
        }
    print(json.dumps({
        "benchmark": "estimate_pi",
        "ESTIMATE": "scaled from x86 by assumed slowdowns; nothing ran on a Pi",
        "model": {**model_file(path), "macs": macs},
        "x86_measured": {"inference_ms_p50": inference_ms,
                         "gmac_per_s": round(macs / inference_ms / 1e6, 2),
                         **{f"stride_{h}ms_cpu_ms": x for h, x in x86.items()}},
        "pi_estimate": boards,
        "machine": machine(),
    }, indent=2))


if __name__ == "__main__":
    main()
