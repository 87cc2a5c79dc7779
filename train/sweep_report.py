"""The sweep's report: one row per exported model, a Markdown table, a Pareto check, a plot.

Rows are read back from the int8 ONNX files themselves (their ``kwspi.*`` metadata holds
the architecture, the counts and the accuracy measured at export), so the report always
describes the files that ship, never a run's intermediate state.
"""

from __future__ import annotations

import dataclasses
import json
import shlex
from pathlib import Path

from kwspi.errors import KwspiError
from kwspi.modelinfo import read_info
from kwspi.train.config import SweepConfig
from kwspi.train.nets.counting import count
from kwspi.train.nets.model import build_model
from kwspi.train.nets.space import Arch

SPEAKERS = "testing"  # the held-out speakers of the training data (GSC's test split)


def model_row(path: Path, families_key: str | None) -> dict:
    """A row for one exported model; ``families_key`` names the metric of held-out voices."""
    info = read_info(path)
    arch = Arch.from_dict(info.arch)
    cfg = info.features
    counts = count(build_model(arch, cfg.n_mfcc, cfg.n_frames, len(info.labels)), (1, 1, cfg.n_mfcc, cfg.n_frames))
    metrics = info.metrics
    return {
        "model": path.stem,
        "kind": "dscnn" if arch.kind == "dscnn" else "nas",
        "arch": arch.name if arch.kind == "dscnn" else list(arch.cells),
        "width_mult": None if arch.kind == "dscnn" else arch.width_mult,
        "n_mfcc": cfg.n_mfcc,
        "macs": info.macs,
        "params": info.params,
        "weight_bytes": info.weight_bytes,
        "paper_kb": round(counts.paper_bytes / 1000, 1),
        "int8_bytes": path.stat().st_size,
        "accuracy_heldout_speakers": metrics.get(SPEAKERS, {}).get("accuracy"),
        "accuracy_heldout_families": metrics.get(families_key, {}).get("accuracy") if families_key else None,
        "n_heldout_speakers": metrics.get(SPEAKERS, {}).get("n"),
        "n_heldout_families": metrics.get(families_key, {}).get("n") if families_key else None,
    }


def dominating(row: dict, rows: list[dict], key: str) -> list[dict]:
    """NAS rows at or below ``row``'s MACs whose accuracy under ``key`` is at least as high."""
    return [r for r in rows if r["kind"] == "nas" and r["macs"] <= row["macs"]
            and r[key] is not None and row[key] is not None and r[key] >= row[key]]


def pareto_notes(rows: list[dict], key: str) -> list[str]:
    """One line per DS-CNN: which NAS models match it at no more MACs, or that none does."""
    notes = []
    for base in (r for r in rows if r["kind"] == "dscnn"):
        better = dominating(base, rows, key)
        head = f"{base['model']} ({base['macs'] / 1e6:.2f} M MACs, {_pct(base[key])})"
        if better:
            best = max(better, key=lambda r: r[key])
            notes.append(f"{head}: matched by {len(better)} NAS model(s) at no more MACs; best {best['model']} "
                         f"({best['macs'] / 1e6:.2f} M MACs, {_pct(best[key])}).")
        else:
            notes.append(f"{head}: no NAS model at or below its MACs is as accurate.")
    return notes


def _pct(x) -> str:
    return "-" if x is None else f"{100 * x:.2f}%"


def markdown_table(rows: list[dict]) -> str:
    head = ("| model | arch | MACs (M) | params | weight bytes | paper kB | int8 file (kB) "
            "| held-out speakers | held-out families |\n|---|---|---:|---:|---:|---:|---:|---:|---:|\n")
    body = ""
    for r in sorted(rows, key=lambda r: r["macs"]):
        arch = r["arch"] if isinstance(r["arch"], str) else f"ω={r['width_mult']:g}: " + " ".join(r["arch"])
        body += (f"| {r['model']} | {arch} | {r['macs'] / 1e6:.2f} | {r['params']:,} | {r['weight_bytes']:,} "
                 f"| {r['paper_kb']} | {r['int8_bytes'] / 1000:.1f} | {_pct(r['accuracy_heldout_speakers'])} "
                 f"| {_pct(r['accuracy_heldout_families'])} |\n")
    return head + body


def plot(rows: list[dict], path: Path, title: str) -> None:
    """Accuracy against MACs (log), held-out speakers and held-out families side by side."""
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")  # files only; a Pi or a server has no display
    import matplotlib.pyplot as plt

    keys = [("accuracy_heldout_speakers", "held-out speakers"),
            ("accuracy_heldout_families", "held-out voice families")]
    keys = [(k, label) for k, label in keys if any(r[k] is not None for r in rows)]
    fig, axes = plt.subplots(1, len(keys), figsize=(6 * len(keys), 4.5), squeeze=False)
    for ax, (key, label) in zip(axes[0], keys):
        for kind, marker, color in (("nas", "o", "tab:blue"), ("dscnn", "s", "tab:red")):
            pts = sorted((r["macs"] / 1e6, 100 * r[key], r["model"]) for r in rows
                         if r["kind"] == kind and r[key] is not None)
            if not pts:
                continue
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=marker, color=color,
                    linestyle="-" if kind == "nas" else "none", label="NAS (this sweep)" if kind == "nas" else "DS-CNN")
            for x, y, name in pts:
                ax.annotate(name.removeprefix("nas-"), (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        ax.xaxis.set_minor_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        ax.set_xlabel("MACs per 1 s window (M, log scale)")
        ax.set_ylabel(f"int8 accuracy, {label} (%)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(loc="lower right")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_report(rows: list[dict], results: Path, title: str, preamble: str) -> None:
    """results/sweep.json (rows), results/sweep.md (table, Pareto notes) and results/sweep.png."""
    from kwspi.atomic import write_text

    results.mkdir(parents=True, exist_ok=True)
    write_text(results / "sweep.json", json.dumps(rows, indent=1) + "\n")
    notes = {label: pareto_notes(rows, key) for key, label in
             [("accuracy_heldout_speakers", "held-out speakers"), ("accuracy_heldout_families", "held-out families")]}
    text = f"# {title}\n\n{preamble}\n\n![accuracy against MACs](sweep.png)\n\n{markdown_table(rows)}\n"
    for label, lines in notes.items():
        if lines:
            text += f"\nNAS against DS-CNN on {label}:\n\n" + "".join(f"- {line}\n" for line in lines)
    write_text(results / "sweep.md", text)
    plot(rows, results / "sweep.png", title)


def _joined(values) -> str:
    return ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values)


def report(cfg: SweepConfig, exported: list[Path]) -> Path:
    """Write the report of a sweep over its ``exported`` models; returns ``sweep.md``'s path."""
    if not exported:
        raise KwspiError(f"no exported models under {cfg.results / 'models'}: run the sweep first")
    families = f"{Path(cfg.eval_data[0]).name}/all" if cfg.eval_data else None
    rows = [model_row(path, families) for path in exported]
    # What was computed, not how it ran: the same page whichever executor ran the steps.
    how = {f.name: f.default for f in dataclasses.fields(cfg) if f.name in SweepConfig.EXECUTION}
    command = shlex.join(["kwspi", *dataclasses.replace(cfg, **how).to_argv()])
    preamble = (f"Data: {cfg.dataset_name or cfg.data}. Betas {_joined(cfg.betas)}, widths {_joined(cfg.width_mults)}, "
                f"cepstra {_joined(cfg.n_mfccs)}, target {cfg.target_macs:g} MACs, {cfg.warmup_epochs} warm-up epochs "
                f"(lr {cfg.warmup_lr:g}, shared by every beta) and {cfg.search_epochs} search epochs per beta, "
                f"{cfg.retrain_epochs} retraining epochs for every model (from the inherited weights for NAS, from "
                f"scratch for DS-CNN), batch {cfg.batch_size}, seed {cfg.seed}. Accuracy is of the int8 ONNX files in "
                f"models/, measured at export. Made by:\n\n```\n{command}\n```")
    write_report(rows, cfg.results, f"NAS vs DS-CNN on {cfg.data}", preamble)
    return cfg.results / "sweep.md"
