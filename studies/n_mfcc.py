"""Number of cepstra 10/20/30/40 at a fixed architecture: accuracy, MACs and memory.

The paper (research/paper.md 1.9) searched one network per number of MFCCs and found 20 or
30 cepstra a little more accurate than 10 on GSC (96.6% vs 94.9% at beta = 8, single runs),
at more operations. Here the architecture is held fixed, so only the input changes: the
input's height is the number of cepstra, and every layer after the stem works on a map that
many rows high, so MACs and activation memory grow about linearly with it while the weights
stay the same (the stem's 5x11 kernel does not depend on the input's height).

Every network is trained with 8-bit weights in the paper's scheme (per tensor, [-1, 1],
STE), as the paper's MFCC runs were; the 10-cepstra run is the quant-bits study's 8-bit run
when both ran at the same scale (shared checkpoint).

Example:
    .venv/bin/python studies/n_mfcc.py --data data/bundle --out results
"""

from __future__ import annotations

import logging

import common  # sets the thread counts before torch and numpy load
from common import pct
from kwspi.features import FeatureConfig
from kwspi.train.nets.quant import WeightQuant

NAME = "n-mfcc"
ALL_N = (10, 20, 30, 40)
BITS = 8
# The paper's beta = 8 row (GSC v0.01, omega = 1, 8-bit QAT, single run; mfcc_experiment.ods
# via research/paper.md 1.9): paper-convention kB, M MACs, test %. Its architecture was
# searched anew for every N, so its MACs and memory do not follow N the way a fixed net's do.
PAPER_BETA8 = {10: (258.8, 10.9, 94.9), 20: (340.1, 27.1, 96.6), 30: (348.2, 41.4, 96.3), 40: (344.7, 54.7, 96.3)}


def markdown(rows: list[dict], scale, sizes: dict, cpu: float, command: str) -> str:
    lines = [
        "# Number of cepstra at a fixed architecture",
        "",
        "One network per row, the same architecture and recipe, 8-bit weights (the paper's QAT scheme), "
        "measured on **synthetic espeak-ng speech** (not GSC, not human speech). Weight bytes: conv and "
        "linear weights at 8 bit. Paper kB: the paper's memory convention (every weight twice + BN + biases, "
        "research/paper.md 1.5). Peak activation: the largest input + output of one layer at 8 bit. "
        "The paper's columns are its beta = 8 row on GSC v0.01 with a network searched for each N.",
        "",
        "| cepstra | MACs (M) | params | weight bytes | paper kB | peak activation bytes | test | "
        "held-out families | training CPU-s | paper kB / M MACs / test (GSC, beta 8) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        kb, mmacs, acc = PAPER_BETA8[r["n_mfcc"]]
        lines.append(
            f"| {r['n_mfcc']} | {r['macs'] / 1e6:.2f} | {r['params']:,} | {r['weight_bytes']:,} "
            f"| {r['paper_bytes'] / 1e3:.1f} | {r['peak_activation_bytes']:,} | {pct(r['test'])} "
            f"| {pct(r['heldout'])} | {r['train_cpu_seconds']:.0f} | {kb} / {mmacs} / {acc} |"
        )
    lines += ["", summary(rows)]
    lines += [
        "",
        "kwspi's front end has 40 mel filters (the paper's torchaudio front end had 128), so 40 cepstra "
        "here are the complete DCT of the filterbank: nothing is left out, and nothing new is added "
        "beyond it.",
        "",
        "## Scale", "", common.scale_lines(scale, sizes, cpu), "", "## Rerun", "", f"```\n{command}\n```", "",
    ]
    return "\n".join(lines)


def summary(rows: list[dict]) -> str:
    """What the table says, in words computed from it."""
    lo, hi = min(rows, key=lambda r: r["n_mfcc"]), max(rows, key=lambda r: r["n_mfcc"])
    best = max(rows, key=lambda r: r["test"])
    spread = max(r["test"] for r in rows) - min(r["test"] for r in rows)
    same_params = len({r["params"] for r in rows}) == 1
    return (
        f"From {lo['n_mfcc']} to {hi['n_mfcc']} cepstra the MACs grow {hi['macs'] / lo['macs']:.1f}x and the peak "
        f"activation {hi['peak_activation_bytes'] / lo['peak_activation_bytes']:.1f}x, while the weights "
        f"{'stay exactly the same' if same_params else 'change'}. Test accuracy is highest at {best['n_mfcc']} "
        f"cepstra ({pct(best['test'])}%); the rows span {100 * spread:.1f} points, one run each."
    )


def plot(rows: list[dict]):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = [r["n_mfcc"] for r in rows]
    fig, (acc_ax, cost_ax) = plt.subplots(1, 2, figsize=(9, 3.8))
    acc_ax.plot(n, [100 * r["test"] for r in rows], "-o", label="test (held-out speakers)")
    if all(r["heldout"] is not None for r in rows):
        acc_ax.plot(n, [100 * r["heldout"] for r in rows], ":o", label="held-out families")
    acc_ax.plot(n, [PAPER_BETA8[k][2] for k in n], "--o", color="0.5", label="paper, beta 8 (GSC)")
    acc_ax.set_xlabel("cepstra")
    acc_ax.set_ylabel("accuracy (%)")
    acc_ax.set_xticks(n)
    acc_ax.grid(alpha=0.3)
    acc_ax.legend(fontsize=8)
    cost_ax.plot(n, [r["macs"] / 1e6 for r in rows], "-o", label="MACs (M)")
    cost_ax.plot(n, [r["paper_bytes"] / 1e3 for r in rows], "-s", label="paper kB")
    cost_ax.plot(n, [r["peak_activation_bytes"] / 1e3 for r in rows], "-^", label="peak activation kB")
    cost_ax.set_xlabel("cepstra")
    cost_ax.set_xticks(n)
    cost_ax.grid(alpha=0.3)
    cost_ax.legend(fontsize=8)
    fig.suptitle("Number of cepstra at a fixed architecture (synthetic speech)", fontsize=10)
    fig.tight_layout()
    return fig


def main(argv=None) -> None:
    parser = common.make_parser(__doc__, "n_mfcc.py")
    parser.add_argument("--n-mfcc", default=",".join(map(str, ALL_N)), help="comma-separated numbers of cepstra")
    args = parser.parse_args(argv)
    scale = common.start(args)
    subset = common.make_subset(args.data, args.work / f"subset-{args.train_speakers}", args.train_speakers)
    rows, cpu, sizes = [], 0.0, {}
    for n in (int(k) for k in args.n_mfcc.split(",")):
        cfg = FeatureConfig(n_mfcc=n)
        splits = common.load_splits(subset, scale.heldout, cfg, scale)
        model, seconds = common.train_run(subset, cfg, scale, WeightQuant(BITS, "paper"), args.work)
        cpu += seconds
        sizes = common.split_sizes(splits)
        rows.append({"n_mfcc": n, **common.model_counts(model, cfg, BITS), "test": common.accuracy(model, splits.test),
                     "heldout": common.accuracy(model, splits.heldout), "train_cpu_seconds": round(seconds, 1)})
        logging.info("%s", rows[-1])
    command = common.rerun_command("n_mfcc.py", args, f"--n-mfcc {args.n_mfcc}")
    common.write_results(args.out, NAME, markdown(rows, scale, sizes, cpu, command), plot(rows),
                         command, scale, sizes, cpu, rows)

if __name__ == "__main__":
    main()
