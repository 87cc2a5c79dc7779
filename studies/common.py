"""What the two studies share: a speaker subset, one training run, accuracy, result files.

The studies reproduce the shape of the paper's quantization and MFCC figures on a CPU, so
everything here is about doing few, small, reproducible runs:

- :func:`make_subset` builds a GSC-layout folder of symlinks holding the training clips of
  the first N training speakers (by a hash, so the choice is stable) and every test clip.
  ``kwspi.train.data.load_split`` then caches its features like any other data set, which
  matters for the 20/30/40-cepstra features that nothing has computed yet.
- :func:`train_run` runs ``kwspi train``'s run (:func:`kwspi.train.run.train_run`) in a
  folder named by the scale, resumed (or skipped when finished) on a second invocation, so
  an interrupted study loses at most one epoch.
- :func:`write_results` writes the JSON rows, the Markdown page and the plot side by side.
"""

from __future__ import annotations

import os

# One thread everywhere: the machine's two cores are shared, and OpenBLAS reads this when
# numpy loads, so it has to be set before the imports below.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import time  # noqa: E402
from dataclasses import asdict, dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

from kwspi import gsc  # noqa: E402
from kwspi.atomic import write_text  # noqa: E402
from kwspi.features import FeatureConfig  # noqa: E402
from kwspi.options import progress_bar  # noqa: E402
from kwspi.train import run  # noqa: E402
from kwspi.train.config import DataConfig, TrainConfig, TrainRun, WeightQuant  # noqa: E402
from kwspi.train.data import FeatureSet, load_split  # noqa: E402
from kwspi.train.fit import predict  # noqa: E402
from kwspi.train.nets.counting import count  # noqa: E402
from kwspi.train.nets.space import Arch, load_arch  # noqa: E402
from kwspi.train.speech.augment import AugmentConfig  # noqa: E402

log = logging.getLogger("studies")

REPO = Path(__file__).resolve().parent.parent
DEFAULT_ARCH = REPO / "kwspi" / "models" / "default.arch.json"


@dataclass(frozen=True)
class Scale:
    """How big the study is; written into every result file so a reader knows what was run."""

    data: str
    heldout: str | None
    train_speakers: int
    arch: dict
    epochs: int
    views: int
    batch_size: int
    lr: float
    seed: int


def study_arch(width_mult: float) -> Arch:
    """The bundled model's cells (the paper's 20-MFCC, beta = 8 net) at another width."""
    base = load_arch(str(DEFAULT_ARCH))
    return Arch(kind="mbconv", cells=base.cells, width_mult=width_mult)


def make_parser(doc: str, script: str) -> argparse.ArgumentParser:
    """The command line both studies share. The defaults are the scale the committed results
    ran at, and they must match between the studies for the shared 10-cepstra run."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=f"Example:\n  .venv/bin/python studies/{script} --data data/bundle --out results")
    parser.add_argument("--data", type=Path, default=Path("data/bundle"), help="GSC-layout training data")
    parser.add_argument("--heldout", type=Path, default=Path("data/heldout-families"),
                        help="extra folder measured on every clip (voices never trained on); 'none' to skip")
    parser.add_argument("--out", type=Path, default=Path("results"), help="folder for the .md, .png and .json")
    parser.add_argument("--work", type=Path, default=Path("runs/studies"),
                        help="subset folder and checkpoints (reused on a second run)")
    parser.add_argument("--train-speakers", type=int, default=600,
                        help="training speakers kept (all test speakers are kept)")
    parser.add_argument("--width", type=float, default=0.25, help="width multiplier of the network")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--views", type=int, default=2, help="cached augmented views per training clip")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--lr", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    return parser


def rerun_command(script: str, args, extra: str) -> str:
    """The command line that reproduces this run, every scale option spelled out."""
    return (f".venv/bin/python studies/{script} --data {args.data} --heldout {args.heldout} --out {args.out} "
            f"--train-speakers {args.train_speakers} --width {args.width} --epochs {args.epochs} "
            f"--views {args.views} --batch-size {args.batch_size} --lr {args.lr} --seed {args.seed} {extra}")


def start(args) -> Scale:
    """What every study's ``main`` does first: one torch thread, logging, the scale."""
    torch.set_num_threads(1)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    return scale_from_args(args)


def scale_from_args(args) -> Scale:
    heldout = None if str(args.heldout) == "none" else str(args.heldout)
    return Scale(str(args.data), heldout, args.train_speakers, study_arch(args.width).to_dict(),
                 args.epochs, args.views, args.batch_size, args.lr, args.seed)


# ---------------------------------------------------------------------------------------
# Data


def _rank(speaker: str) -> str:
    # A hash, not the file order, so the kept speakers spread over all voice families.
    return hashlib.sha1(f"kwspi-study:{speaker}".encode()).hexdigest()


def make_subset(src: Path, dst: Path, train_speakers: int) -> Path:
    """A GSC-layout folder of symlinks: ``train_speakers`` training speakers, every test clip.

    Only the 35 GSC words are taken, so words added to ``src`` later (the streaming work
    adds confusable words to the shared data folder) change neither the unknown class nor the
    test set; links that no longer belong are removed. Validation clips are left out (the
    studies report the last epoch, as the paper did), so only ``testing_list.txt`` is
    written. Rebuilding with the same arguments changes nothing, so the feature cache inside
    stays valid.
    """
    src, dst = src.resolve(), Path(dst)
    words = {w: clips for w, clips in gsc.scan(src).items() if w in gsc.WORDS_V2}
    clips = [c for cs in words.values() for c in cs]
    splits = gsc.split_of_clips(src, clips)
    speakers = sorted({gsc.speaker_of(c) for c in splits["training"]}, key=_rank)[:train_speakers]
    keep = set(speakers)
    chosen = [c for c in splits["training"] if gsc.speaker_of(c) in keep] + splits["testing"]
    wanted = set(chosen + [f"{gsc.BACKGROUND_NOISE_DIR}/{p.name}" for p in gsc.noise_files(src)])
    for link in dst.glob("[!.]*/*.wav") if dst.exists() else ():
        if link.relative_to(dst).as_posix() not in wanted:
            link.unlink()
            if not any(link.parent.iterdir()):
                link.parent.rmdir()
    for rel in sorted(wanted):
        link = dst / rel
        if not link.is_symlink():
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(src / rel)
    listing = "".join(f"{c}\n" for c in sorted(splits["testing"]))
    test_list = dst / gsc.TESTING_LIST
    if not test_list.exists() or test_list.read_text() != listing:
        write_text(test_list, listing)
    log.info("%s: %d training speakers, %d clips", dst, len(speakers), len(chosen))
    return dst


@dataclass
class Splits:
    root: Path
    train: FeatureSet
    test: FeatureSet
    heldout: FeatureSet | None


def load_splits(subset: Path, heldout: str | None, cfg: FeatureConfig, scale: Scale) -> Splits:
    """Augmented training views, the unaugmented test split and every held-out clip.

    One worker process: the features of a subset take a minute or two on one core, and the
    second core belongs to others.
    """
    task = gsc.TaskSpec()
    kw = dict(seed=scale.seed, progress=progress_bar, workers=1)
    train = load_split(subset, "training", cfg, task, AugmentConfig(), scale.views, **kw)
    test = load_split(subset, "testing", cfg, task, None, None, **kw)
    held = load_split(Path(heldout), gsc.ALL, cfg, task, None, None, **kw) if heldout else None
    return Splits(subset, train, test, held)


# ---------------------------------------------------------------------------------------
# Training and measuring


def run_folder(work: Path, scale: Scale, cfg: FeatureConfig, wq: WeightQuant | None, from_float: bool = False) -> Path:
    """Where one run lives. Both studies use this naming, so the n-mfcc study's 10-cepstra,
    8-bit run is the quant study's 8-bit QAT run, trained once."""
    a = Arch.from_dict(scale.arch)
    tag = (f"w{a.width_mult}-s{scale.train_speakers}-e{scale.epochs}-v{scale.views}-b{scale.batch_size}"
           f"-lr{scale.lr}-seed{scale.seed}")
    kind = "float" if wq is None else f"qat{wq.bits}-{wq.scheme}" + ("-from-float" if from_float else "")
    return work / "runs" / tag / f"mfcc{cfg.n_mfcc}-{kind}"


def train_run(subset: Path, cfg: FeatureConfig, scale: Scale, wq: WeightQuant | None, work: Path,
              init: torch.nn.Module | None = None):
    """Train (or resume, or just load) one network with ``kwspi train``'s run; returns
    ``(model, cpu_seconds)``.

    ``wq=None`` trains float weights. The recipe is the paper's (TrainConfig's defaults)
    apart from the epoch count. ``init``: start from this trained float network's weights
    instead of a fresh initialisation (the paper's QAT retraining started from trained weights).
    """
    folder = run_folder(work, scale, cfg, wq, from_float=init is not None)
    config = TrainRun(
        arch=Arch.from_dict(scale.arch).to_json(), out=folder, resume=True,
        data=DataConfig(data=subset, n_mfcc=cfg.n_mfcc, views=scale.views),
        train=TrainConfig(epochs=scale.epochs, batch_size=scale.batch_size, lr=scale.lr, seed=scale.seed,
                          weight_bits=wq.bits if wq else None, quant_scheme=wq.scheme if wq else "paper",
                          device="cpu"))
    # CPU time of this run across invocations, kept beside the checkpoint: a study that
    # reuses or resumes a run still reports what training it cost.
    timing = folder / "cpu.json"
    seconds = json.loads(timing.read_text())["seconds"] if timing.exists() else 0.0
    start = time.process_time()
    model, _ = run.train_run(config, progress_bar, init)
    seconds += time.process_time() - start
    write_text(timing, json.dumps({"seconds": round(seconds, 1)}) + "\n")
    return model.eval(), seconds


def accuracy(model, fs: FeatureSet | None) -> float | None:
    """Top-1 accuracy on an unaugmented set (``None`` when the set was not loaded)."""
    if fs is None:
        return None
    X, y = run.epoch_tensors(fs)
    return float((predict(model, X) == y.numpy()).mean())


def model_counts(model, cfg: FeatureConfig, bits: int = 8) -> dict:
    c = count(model, (1, 1, cfg.n_mfcc, cfg.n_frames))
    return {"macs": c.macs, "params": c.params, "weight_bytes": c.weight_bytes(bits),
            "paper_bytes": c.paper_bytes, "peak_activation_bytes": c.peak_activation_bytes}


def split_sizes(splits: Splits) -> dict:
    return {"train_examples": len(splits.train), "test_examples": len(splits.test),
            "heldout_examples": len(splits.heldout) if splits.heldout is not None else 0}


def pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}"


# ---------------------------------------------------------------------------------------
# Result files


def write_results(out: Path, name: str, markdown: str, figure, command: str, scale: Scale, sizes: dict,
                  cpu: float, rows: list[dict]) -> None:
    """``<out>/<name>.md``, ``.json`` (command, scale, sizes, rows) and ``.png``."""
    payload = {"study": name, "command": command, "scale": asdict(scale), "sizes": sizes,
               "train_cpu_seconds": round(cpu, 1), "rows": rows}
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / f"{name}.md", markdown)
    write_text(out / f"{name}.json", json.dumps(payload, indent=2) + "\n")
    figure.savefig(out / f"{name}.png", dpi=120, bbox_inches="tight")
    log.info("wrote %s/%s.{md,json,png}", out, name)


def scale_lines(scale: Scale, sizes: dict, cpu_seconds: float) -> str:
    """The "Scale" section of a result page."""
    a = Arch.from_dict(scale.arch)
    return "\n".join([
        f"- data: `{scale.data}`, synthetic espeak-ng speech (never GSC): {scale.train_speakers} training speakers, "
        f"{sizes['train_examples']:,} training examples (10 keywords + 10% unknown + 10% silence), "
        f"{sizes['test_examples']:,} test examples (held-out speakers of the trained voice families)",
        f"- held-out families: `{scale.heldout}`, {sizes['heldout_examples']:,} clips of 2 voice families "
        "never trained on" if scale.heldout else "- held-out families: not measured",
        f"- network: the bundled model's cells ({', '.join(a.cells)}) at width {a.width_mult}",
        f"- training: {scale.epochs} epochs, {scale.views} cached augmented views, batch {scale.batch_size}, "
        f"SGD Nesterov lr {scale.lr} cosine, label smoothing 0.1, seed {scale.seed}, one run per row "
        "(the paper's sheets are single runs too)",
        f"- compute: {cpu_seconds / 60:.1f} CPU-minutes of training on one thread",
    ])
