"""The threshold sweep of ``kwspi eval-stream`` drawn as a PNG.

Left: recall against false alarms per hour, one point per threshold (the curve users pick
an operating point on). Right: both against the threshold. A stream without keywords (the
negative stream) has no recall, so only false alarms per hour are drawn.

matplotlib is imported when a plot is asked for, never at import: the Pi runtime has none.
"""

from __future__ import annotations

from pathlib import Path

from kwspi.atomic import atomic_write
from kwspi.errors import MissingDependency

#: False alarms per hour are drawn on a symlog axis: zero must show, and rates span 0 to 1000s.
LINEAR_BELOW = 1.0
THRESHOLD_TICKS = (0.3, 0.5, 0.8, 0.9, 0.95, 0.99, 0.999)


def _pyplot():
    try:
        import matplotlib
    except ModuleNotFoundError:
        raise MissingDependency("--plot needs matplotlib: pip install matplotlib "
                                "(or pip install 'kwspi[train]')") from None
    matplotlib.use("Agg")  # files only; no display on a Pi or a server
    import matplotlib.pyplot as plt

    return plt


def plot_sweep(sweep: dict, path, title: str) -> Path:
    """Draw ``sweep`` (:func:`~kwspi.deploy.evaluation.stream.sweep`'s dict) to ``path`` (PNG)."""
    plt = _pyplot()
    rows = sweep["rows"]
    th = [r["threshold"] for r in rows]
    fa = [r["fa_per_hour"] for r in rows]
    has_recall = any(r["recall"] is not None for r in rows)
    fig, axes = plt.subplots(1, 2 if has_recall else 1, figsize=(11 if has_recall else 6, 4.2), squeeze=False)
    if has_recall:
        ax = axes[0][0]
        recall = [r["recall"] for r in rows]
        ax.plot(fa, recall, "o-")
        shown = set()
        for x, y, t in zip(fa, recall, th):
            if (x, y) not in shown:  # thresholds that change nothing would print over each other
                shown.add((x, y))
                ax.annotate(f"{t:g}", (x, y), textcoords="offset points", xytext=(4, -10), fontsize=7)
        ax.axvline(sweep["target_fa_per_hour"], color="grey", ls="--", lw=1, label="target")
        ax.set_xscale("symlog", linthresh=LINEAR_BELOW)
        ax.set_xlim(left=0)
        ax.set_xlabel("false alarms per hour")
        ax.set_ylabel("recall")
        ax.set_ylim(0, 1.02)
        ax.grid(True, alpha=0.3)
        ax.legend(loc="lower right")
    ax = axes[0][-1]
    ax.plot(th, fa, "o-", color="C3", label="false alarms per hour")
    ax.axhline(sweep["target_fa_per_hour"], color="grey", ls="--", lw=1)
    ax.set_yscale("symlog", linthresh=LINEAR_BELOW)
    ax.set_xscale("logit")  # spreads out the thresholds crowded just under 1
    ax.set_xticks([t for t in THRESHOLD_TICKS if th[0] <= t <= th[-1]])
    ax.xaxis.set_major_formatter(plt.FormatStrFormatter("%g"))
    ax.xaxis.set_minor_formatter(plt.NullFormatter())
    ax.set_ylim(bottom=0)
    ax.set_xlabel("threshold (every keyword)")
    ax.set_ylabel("false alarms per hour")
    ax.grid(True, alpha=0.3)
    handles = ax.get_legend_handles_labels()[0]
    if has_recall:
        twin = ax.twinx()
        handles += twin.plot(th, [r["recall"] for r in rows], "s-", color="C0", label="recall")
        twin.set_ylabel("recall")
        twin.set_ylim(0, 1.02)
    ax.legend(handles=handles, loc="upper right", fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png", dpi=110)
    plt.close(fig)
    return path
