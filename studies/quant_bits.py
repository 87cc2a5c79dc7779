"""Weight bits 1..8 and float: quantization-aware training (STE) against post-training rounding.

The paper's figure (research/paper.md 1.7): networks retrained with b-bit weights through
the straight-through estimator stay near float accuracy down to 1 bit, while rounding the
weights of a float-trained network collapses at 3 bits or fewer. This script trains one
float network and one QAT network per bit width at a CPU-sized scale and measures all of
them on held-out speakers (the test split) and on voice families never trained on.

Both halves follow the authors' code, not kwspi's export path:

- QAT uses the paper's scheme (``WeightQuant(b, "paper")``: per tensor, fixed range
  [-1, 1], 2**b levels, every conv and the classifier), not the per-channel scheme the int8
  export uses;
- rounding is ``round_weights_``: conv weights only, per tensor, min/max range, 2**b levels,
  classifier left in float, BN neither folded nor re-estimated.

Example:
    .venv/bin/python studies/quant_bits.py --data data/bundle --out results
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path

import common  # sets the thread counts before torch and numpy load
from common import Scale, Splits, accuracy, pct
from kwspi.features import FeatureConfig
from kwspi.train.nets.quant import WeightQuant, round_weights_

NAME = "quant-bits"
ALL_BITS = (8, 7, 6, 5, 4, 3, 2, 1)
# The paper's test accuracy (%, GSC v0.01) from results/Quantization_comparison.ods, quoted
# in research/paper.md 1.7; None is the float network ("32" in the sheet).
PAPER_QAT = {None: 95.60, 8: 95.60, 7: 95.97, 6: 95.19, 5: 95.71, 4: 95.64, 3: 95.38, 2: 95.19, 1: 94.73}
PAPER_ROUNDING = {None: 95.35, 8: 95.42, 7: 95.48, 6: 95.09, 5: 95.16, 4: 93.63, 3: 70.99, 2: 8.70, 1: 8.15}


def run(splits: Splits, cfg: FeatureConfig, scale: Scale, work: Path, bits_list,
        from_float: bool = False) -> tuple[list[dict], float]:
    """One row per bit width (``None`` = float); returns the rows and the training CPU time.

    ``from_float``: QAT starts from the trained float network (another ``epochs`` of
    training on top of it) instead of from scratch.
    """
    float_model, cpu = common.train_run(splits.root, cfg, scale, None, work)
    rows = [row(None, float_model, float_model, splits, cfg)]
    for bits in bits_list:
        init = copy.deepcopy(float_model) if from_float else None
        qat_model, seconds = common.train_run(splits.root, cfg, scale, WeightQuant(bits, "paper"), work, init)
        cpu += seconds
        rounded = round_weights_(copy.deepcopy(float_model), bits)
        rows.append(row(bits, qat_model, rounded, splits, cfg))
        logging.info("%s", rows[-1])
    return rows, cpu


def row(bits, qat_model, rounded_model, splits: Splits, cfg: FeatureConfig) -> dict:
    counts = common.model_counts(qat_model, cfg, bits or 32)
    return {
        "bits": bits,  # None: float weights
        "weight_bytes": counts["weight_bytes"],
        "qat_test": accuracy(qat_model, splits.test),
        "qat_heldout": accuracy(qat_model, splits.heldout),
        "rounding_test": accuracy(rounded_model, splits.test),
        "rounding_heldout": accuracy(rounded_model, splits.heldout),
        "paper_qat_test": PAPER_QAT[bits],
        "paper_rounding_test": PAPER_ROUNDING[bits],
    }


def markdown(rows: list[dict], scale: Scale, sizes: dict, cpu: float, command: str, from_float: bool) -> str:
    start = ("QAT networks start from the trained float network and train another "
             f"{scale.epochs} epochs at b bits (the paper's retraining also started from trained weights)."
             if from_float else "QAT networks start from a fresh initialisation, like the float one.")
    lines = [
        "# Weight bits: quantization-aware training vs post-training rounding",
        "",
        "Accuracy (%) of one network per row on **synthetic espeak-ng speech** (not GSC, not human speech). "
        "QAT: trained with b-bit weights through the straight-through estimator, in the paper's scheme "
        "(per tensor, fixed range [-1, 1], every conv and the classifier). Rounding: the float network's conv "
        "weights rounded after training (per tensor, min/max, 2^b levels; classifier float; BN untouched), as "
        "the paper's comparison did. The paper's columns are GSC v0.01 test accuracy of its own searched net "
        "(`Quantization_comparison.ods`): they show the shape to expect, not numbers to match. " + start,
        "",
        "| weight bits | weight bytes | QAT test | QAT held-out families | rounding test "
        "| rounding held-out families | paper QAT (GSC) | paper rounding (GSC) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        b = "float" if r["bits"] is None else str(r["bits"])
        lines.append(
            f"| {b} | {r['weight_bytes']:,} | {pct(r['qat_test'])} | {pct(r['qat_heldout'])} "
            f"| {pct(r['rounding_test'])} | {pct(r['rounding_heldout'])} "
            f"| {r['paper_qat_test']:.1f} | {r['paper_rounding_test']:.1f} |"
        )
    lines += ["", "In the float row both columns are the same float network (nothing is rounded).", "",
              summary(rows), "",
              "## Scale", "", common.scale_lines(scale, sizes, cpu), "", "## Rerun", "", f"```\n{command}\n```", ""]
    return "\n".join(lines)


def holds_down_to(accuracy: dict, tolerance: float) -> int | None:
    """The fewest bits b such that every width from 8 down to b is within ``tolerance`` of
    float (``accuracy[None]``); ``None`` if even 8 bits is not."""
    floor = accuracy[None] - tolerance
    lowest = None
    for bits in sorted((b for b in accuracy if b is not None), reverse=True):
        if accuracy[bits] < floor:
            break
        lowest = bits
    return lowest


def summary(rows: list[dict]) -> str:
    """What the table says, in words computed from it (and the same rule applied to the paper)."""
    def held(key, scale=100.0):
        acc = {r["bits"]: scale * r[key] for r in rows if r[key] is not None}
        b = holds_down_to(acc, 1.0)
        top = max(b for b in acc if b is not None)
        return f"not even at {top} bits" if b is None else f"down to {b} bit{'s' if b > 1 else ''}"

    worst_round = min((r for r in rows if r["bits"] is not None), key=lambda r: r["rounding_test"])
    worst_qat = min((r for r in rows if r["bits"] is not None), key=lambda r: r["qat_test"])
    return (
        f"Within 1 point of float on the test split: QAT {held('qat_test')}, rounding {held('rounding_test')} "
        f"(the paper on GSC: QAT {held('paper_qat_test', 1)}, rounding {held('paper_rounding_test', 1)}). "
        f"Lowest QAT test accuracy {pct(worst_qat['qat_test'])}% at {worst_qat['bits']} bit(s); lowest rounding "
        f"test accuracy {pct(worst_round['rounding_test'])}% at {worst_round['bits']} bit(s)."
    )


def plot(rows: list[dict]):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # Float sits one step right of 8 bits, as the paper's "32" column sits right of 8.
    x = [9 if r["bits"] is None else r["bits"] for r in rows]
    order = sorted(range(len(rows)), key=lambda i: x[i])
    xs = [x[i] for i in order]
    fig, ax = plt.subplots(figsize=(7, 4.2))
    # Ours solid (test) and dotted (held-out families); the paper's faint and dashed.
    series = [("qat_test", "QAT, test", "C0", "-"), ("qat_heldout", "QAT, held-out families", "C0", ":"),
              ("rounding_test", "rounding, test", "C3", "-"),
              ("rounding_heldout", "rounding, held-out families", "C3", ":"),
              ("paper_qat_test", "paper QAT (GSC test)", "C0", "--"),
              ("paper_rounding_test", "paper rounding (GSC test)", "C3", "--")]
    for key, label, color, style in series:
        ys = [rows[i][key] for i in order]
        if any(y is None for y in ys):
            continue
        paper = key.startswith("paper")
        ys = ys if paper else [100 * y for y in ys]
        ax.plot(xs, ys, style, marker="x" if paper else "o", color=color, alpha=0.4 if paper else 1, label=label, ms=4)
    ax.set_xticks(range(1, 10), [str(b) for b in range(1, 9)] + ["float"])
    ax.set_xlabel("weight bits")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title("QAT vs post-training rounding (synthetic speech; paper on GSC)", fontsize=10)
    return fig


def main(argv=None) -> None:
    parser = common.make_parser(__doc__, "quant_bits.py")
    parser.add_argument("--bits", default=",".join(map(str, ALL_BITS)),
                        help="comma-separated weight bits for the QAT and rounding rows")
    parser.add_argument("--qat-from-float", action="store_true",
                        help="start each QAT run from the trained float network, as the paper retrained "
                             "from trained weights (results go to quant-bits-from-float.*)")
    args = parser.parse_args(argv)
    scale = common.start(args)
    bits_list = [int(b) for b in args.bits.split(",")]
    cfg = FeatureConfig(n_mfcc=10)
    subset = common.make_subset(args.data, args.work / f"subset-{args.train_speakers}", args.train_speakers)
    splits = common.load_splits(subset, scale.heldout, cfg, scale)
    rows, cpu = run(splits, cfg, scale, args.work, bits_list, args.qat_from_float)
    extra = f"--bits {args.bits}" + (" --qat-from-float" if args.qat_from_float else "")
    command = common.rerun_command("quant_bits.py", args, extra)
    sizes = common.split_sizes(splits)
    name = NAME + ("-from-float" if args.qat_from_float else "")
    common.write_results(args.out, name, markdown(rows, scale, sizes, cpu, command, args.qat_from_float), plot(rows),
                         command, scale, sizes, cpu, rows)


if __name__ == "__main__":
    main()
