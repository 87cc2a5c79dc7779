"""Every setting of a training-side run, written once: the configs the CLI is a view of.

A run is a config. ``kwspi train`` is a :class:`TrainRun`, ``kwspi search`` a
:class:`SearchRun`, ``kwspi export`` an :class:`ExportRun` and ``kwspi sweep`` a
:class:`SweepConfig`; :mod:`kwspi.train.run` carries them out, and a checkpoint stores the
config it ran with. How a field becomes an option, a command line and JSON is
:mod:`kwspi.settings`. Torch-free: the CLI imports this module to draw ``--help``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import click

from kwspi import gsc
from kwspi.errors import KwspiError
from kwspi.features import CMVN_MODES, FeatureConfig
from kwspi.settings import (COUNT, DIR, EXISTING_DIR, EXISTING_FILE, FILE, NON_NEGATIVE, POSITIVE, POSITIVE_FLOAT,
                            REQUIRED, Config, setting)
from kwspi.train.speech.augment import EXTRA_AUGMENTATIONS, AugmentConfig, with_extras

#: The weight-quantization schemes: per tensor in [-1, 1] (the paper), per output channel (the export).
QUANT_SCHEMES = ("paper", "channel")
BASELINES = ("dscnn-s", "dscnn-m", "dscnn-l")
#: What the domain-adversarial head predicts of a clip: a column of the data's speakers.csv.
DOMAIN_LABELS = ("engine", "voice")
#: Where sweep steps run (:mod:`kwspi.train.executors`).
EXECUTORS = ("local", "ray", "slurm", "submitit-local")


# --- the parts of a run -------------------------------------------------------------------


@dataclass(frozen=True)
class WeightQuant:
    """Fake-quantize weights to ``bits`` bits with ``scheme`` (see :mod:`kwspi.train.nets.quant`)."""

    bits: int = 8
    scheme: str = "channel"

    def __post_init__(self):
        if not 1 <= self.bits <= 8:
            raise ValueError(f"bits must be in 1..8, got {self.bits}")
        if self.scheme not in QUANT_SCHEMES:
            raise ValueError(f"scheme must be one of {QUANT_SCHEMES}, got {self.scheme!r}")
        if self.scheme == "channel" and self.bits < 2:
            raise ValueError("the channel scheme needs at least 2 bits (a symmetric grid with zero)")


_BITS_HELP = "Weight bits for quantization-aware training (STE)."
_FLOAT_FLAG = ("--float", "Float weights (no QAT).")
_SCHEME_HELP = "channel: per-channel symmetric, as the int8 export; paper: per tensor in [-1, 1]."


@dataclass(frozen=True)
class DataConfig(Config):
    """Which examples a run learns from, through which front end, augmented how."""

    data: Path = setting(REQUIRED, "Training data in Google Speech Commands layout.", type=EXISTING_DIR)
    n_mfcc: int = setting(10, "Cepstral coefficients (the paper tries 10, 20, 30, 40).", type=click.IntRange(1, 40))
    keywords: tuple[str, ...] = setting(gsc.KEYWORDS, "Comma-separated keywords.", show="the 10 GSC keywords")
    unknown_fraction: float = setting(
        gsc.TaskSpec.unknown_fraction, "Training examples of the unknown class per keyword example (the paper: "
        "0.1). More teaches the model what is not a keyword, e.g. confusable words, at the cost of keyword recall.",
        type=NON_NEGATIVE)
    augment: tuple[str, ...] = setting((), "Augmentations beyond the paper's, comma-separated: "
                                       + ", ".join(EXTRA_AUGMENTATIONS) + " (for voices and channels never heard).",
                                       metavar="NAMES", show="none")
    no_augment: bool = setting(False, "No time shift and no background noise.")
    views: int = setting(4, "Augmented views cached per clip; 0 computes fresh augmentation every epoch.",
                         type=COUNT)
    cache_dir: Path | None = setting(None, "Feature cache.", type=DIR, show="DATA/.kwspi-cache")
    cmvn: str = setting("none", "Per-window cepstral normalisation in the front end: mean subtracts each "
                        "coefficient's mean over the 1 s window, meanvar also divides by its deviation (the same "
                        "at runtime: it is part of the model's front end).", type=click.Choice(CMVN_MODES),
                        keyed_at_default=False)

    def __post_init__(self):
        if self.no_augment and self.augment:
            raise KwspiError("--no-augment and --augment exclude each other")
        self.augment_config  # validates the names

    @property
    def augment_config(self) -> AugmentConfig | None:
        """The training split's augmentation; ``None`` with ``no_augment``."""
        try:
            return None if self.no_augment else with_extras(self.augment)
        except ValueError as e:
            raise KwspiError(f"--augment: {e}") from None

    @property
    def task(self) -> gsc.TaskSpec:
        return gsc.TaskSpec(keywords=self.keywords, unknown_fraction=self.unknown_fraction)

    @property
    def features(self) -> FeatureConfig:
        return FeatureConfig(n_mfcc=self.n_mfcc, cmvn=self.cmvn)


@dataclass(frozen=True)
class TrainConfig(Config):
    """How to train: the paper's retraining recipe (research/paper.md 1.6): SGD Nesterov,
    lr 0.2 cosine to 0 per iteration, momentum 0.9, weight decay 4e-5, label smoothing 0.1,
    batch 100, 120 epochs, 8-bit STE weights."""

    epochs: int = setting(120, "Training epochs.", type=POSITIVE)
    batch_size: int = setting(100, "Examples per SGD step.", type=POSITIVE)
    lr: float = setting(0.2, "Initial learning rate (cosine decay to 0 per iteration).", type=POSITIVE_FLOAT)
    momentum: float = setting(0.9, "SGD momentum (Nesterov).", type=NON_NEGATIVE)
    weight_decay: float = setting(4e-5, "L2 weight decay on every parameter.", type=NON_NEGATIVE)
    label_smoothing: float = setting(0.1, "The paper's 0.1 caps a confident score near 0.91; 0 lets a detector's "
                                          "threshold use the whole range up to 1.", type=click.FloatRange(0, 1, max_open=True))
    seed: int = setting(0, "Seeds the unknown clips, the augmented views, the initial weights and the order.",
                        type=COUNT)
    weight_bits: int | None = setting(8, _BITS_HELP, flag="--bits", type=click.IntRange(1, 8), none_flag=_FLOAT_FLAG)
    quant_scheme: str = setting("channel", _SCHEME_HELP, type=click.Choice(QUANT_SCHEMES))
    device: str = setting("auto", "auto, cpu, cuda or cuda:N.")
    unknown_weight: float = setting(1.0, "Weight of the _unknown_ class in the loss; below 1 the net is less eager "
                                         "to call a keyword _unknown_ (most misses on new voices are that).",
                                    type=POSITIVE_FLOAT, keyed_at_default=False)
    domain_adversarial: float = setting(0.0, "Weight of a training-only head that predicts each clip's "
                                             "--domain-label from the net's features through gradient reversal, so "
                                             "the net unlearns what marks a synthesizer; 0: off.",
                                        type=NON_NEGATIVE, metavar="WEIGHT", keyed_at_default=False)
    domain_label: str = setting("engine", "What the domain head predicts, from DATA/speakers.csv (clips without a "
                                          "row have no domain loss).", type=click.Choice(DOMAIN_LABELS),
                                keyed_at_default=False)

    def __post_init__(self):
        self.weight_quant  # validates bits and scheme
        if self.unknown_weight <= 0 or self.domain_adversarial < 0:
            raise ValueError("unknown_weight must be positive and domain_adversarial non-negative")
        if self.domain_label not in DOMAIN_LABELS:
            raise ValueError(f"domain_label must be one of {DOMAIN_LABELS}, got {self.domain_label!r}")

    @property
    def weight_quant(self) -> WeightQuant | None:
        return None if self.weight_bits is None else WeightQuant(self.weight_bits, self.quant_scheme)


@dataclass(frozen=True)
class SearchConfig(Config):
    """How to search: the paper's ProxylessNAS recipe (research/paper.md 1.4)."""

    width_mult: float = setting(1.0, "Width multiplier w: cells have round8(72 w) channels, the head round8(144 w).",
                                type=click.FloatRange(0.1, 4))
    beta: float = setting(4.0, "Weight of the cost term; the paper sweeps 0, 1, 2, 4, 8, 16 (higher: cheaper nets).",
                          type=NON_NEGATIVE)
    target_macs: float = setting(20e6, "The MACs where the cost factor (ln E[MACs] / ln target)^beta is 1.",
                                 type=click.FloatRange(min=1, min_open=True))
    warmup_epochs: int = setting(40, "Epochs of weights only, on uniformly sampled paths.", type=COUNT)
    search_epochs: int = setting(120, "Joint epochs (weights and architecture) after the warm-up.", type=COUNT,
                                 alias="--epochs")
    batch_size: int = setting(100, "Examples per weight step (and per architecture step).", type=POSITIVE)
    warmup_lr: float = setting(0.05, "Peak learning rate of the warm-up (cosine to 0).", type=POSITIVE_FLOAT)
    lr: float = setting(0.2, "Peak weight learning rate of the joint phase (cosine to 0).", type=POSITIVE_FLOAT)
    momentum: float = setting(0.9, "SGD momentum (Nesterov).", type=NON_NEGATIVE)
    weight_decay: float = setting(4e-5, "L2 weight decay.", type=NON_NEGATIVE)
    label_smoothing: float = setting(0.1, "Label smoothing of the weight steps.", type=click.FloatRange(0, 1, max_open=True))
    arch_lr: float = setting(4e-3, "Peak architecture learning rate (Adam), reached at the last epoch.",
                             type=NON_NEGATIVE)
    arch_every: int = setting(5, "Weight steps per architecture step.", type=POSITIVE)
    seed: int = setting(0, "Seeds the unknown clips, the views, the weights, the order and the paths.", type=COUNT)
    weight_bits: int | None = setting(8, _BITS_HELP, flag="--bits", type=click.IntRange(1, 8), none_flag=_FLOAT_FLAG)
    quant_scheme: str = setting("paper", _SCHEME_HELP, type=click.Choice(QUANT_SCHEMES))
    device: str = setting("auto", "auto, cpu, cuda or cuda:N.")

    def __post_init__(self):
        if self.beta < 0 or self.target_macs <= 1:
            raise ValueError(f"need beta >= 0 and target_macs > 1, got {self.beta}, {self.target_macs}")
        if self.warmup_epochs < 0 or self.search_epochs < 0 or self.batch_size < 1 or self.arch_every < 1:
            raise ValueError("epochs must be >= 0, batch_size and arch_every >= 1")
        self.weight_quant  # validates bits and scheme

    @property
    def epochs(self) -> int:
        return self.warmup_epochs + self.search_epochs

    @property
    def weight_quant(self) -> WeightQuant | None:
        return None if self.weight_bits is None else WeightQuant(self.weight_bits, self.quant_scheme)


# --- runs: one per command ----------------------------------------------------------------


@dataclass(frozen=True)
class TrainRun(Config):
    """``kwspi train``: one network trained into a run folder."""

    COMMAND = "train"

    arch: str = setting(REQUIRED, argument=True, metavar="ARCH")
    out: Path = setting(REQUIRED, "Run folder: checkpoint.pt (every epoch), arch.json, metrics.json.", type=DIR)
    data: DataConfig = REQUIRED
    train: TrainConfig = TrainConfig()
    init_from: Path | None = setting(None, "Start from these weights, e.g. OUT/inherited.pt of `kwspi search` "
                                           "(the paper's retraining).", type=EXISTING_FILE)
    resume: bool = setting(False, "Continue the run in --out where it stopped.")


@dataclass(frozen=True)
class SearchRun(Config):
    """``kwspi search``: one architecture search into a run folder."""

    COMMAND = "search"

    out: Path = setting(REQUIRED, "Run folder: supernet.pt, search.jsonl, arch.json (every epoch), inherited.pt "
                                  "(at the end).", type=DIR)
    data: DataConfig = REQUIRED
    search: SearchConfig = SearchConfig()
    warmup_from: Path | None = setting(None, "Start from the supernet.pt of a finished warm-up (a search run with "
                                             "--search-epochs 0) instead of warming up again; its warm-up options "
                                             "and seed must match.", type=EXISTING_FILE)
    resume: bool = setting(False, "Continue the search in --out where it stopped.")


@dataclass(frozen=True)
class ExportRun(Config):
    """``kwspi export``: a checkpoint to a self-describing int8 ONNX model, measured."""

    COMMAND = "export"

    checkpoint: Path = setting(REQUIRED, argument=True, type=FILE, metavar="CHECKPOINT")
    out: Path = setting(REQUIRED, "The int8 ONNX file.", type=FILE)
    data: Path | None = setting(None, "Calibration and evaluation data.", type=EXISTING_DIR,
                                show="the training data the checkpoint names")
    eval_data: tuple[Path, ...] = setting((), "More folders to measure (every clip), e.g. voices never trained on; "
                                              "repeatable.", type=EXISTING_DIR, repeat=True)
    float_out: Path | None = setting(None, "Also write the float ONNX model here.", type=FILE)
    arch: str | None = setting(None, "Refuse the checkpoint unless it has this architecture.")
    calibration_size: int = setting(400, "Training windows (silence and noise included) that calibrate the int8 "
                                         "activations.", type=click.IntRange(min=10))
    threshold: float = setting(0.8, "Recommended detection threshold written into the model.", type=click.FloatRange(0, 1))
    dataset_name: str | None = setting(None, "How the model describes its training data.")
    bank_size: int = setting(300, "Labelled training embeddings stored in the model, so `kwspi enroll` keeps "
                                  "other voices and negatives in mind (0: none).", type=click.IntRange(min=0),
                             keyed_at_default=False)
    bank_speech_share: float = setting(
        0.75, "Share of the bank that is other speech (`_unknown_`, drawn from every clip of a word that is no "
        "keyword; the rest even over the other labels): three quarters, against an even bank's twelfth, kept an "
        "enrolled model's false alarms on other voices near the base model's (results/enroll.md).",
        type=click.FloatRange(0, 1), keyed_at_default=False)
    figures: Path | None = setting(None, "A JSON file of more figures for the metadata's metrics, by name: what "
                                         "this checkpoint cannot measure on itself, such as the leave-one-engine-out "
                                         "scores of its recipe (studies/recipe.py --figures).", type=EXISTING_FILE,
                                   keyed_at_default=False)


@dataclass(frozen=True)
class SweepConfig(Config):
    """``kwspi sweep``: what to sweep and how long each step trains."""

    COMMAND = "sweep"

    data: Path = setting(REQUIRED, "Data in Google Speech Commands layout (every step trains on its training split).",
                         type=EXISTING_DIR)
    runs: Path = setting(Path("runs/sweep"), "Where the searches, trainings and logs go.", type=DIR)
    results: Path = setting(Path("results"), "Where sweep.md, sweep.png, sweep.json and models/*.onnx go.",
                            type=DIR)
    betas: tuple[float, ...] = setting((0.0, 4.0, 16.0), "Betas to search with ('' for none).", type=float)
    width_mults: tuple[float, ...] = setting((0.5,), "Width multipliers of the supernet.", type=float)
    n_mfccs: tuple[int, ...] = setting((10,), "Numbers of cepstra (10, 20, 30, 40 in the paper).", type=int)
    baselines: tuple[str, ...] = setting(BASELINES, "DS-CNN baselines trained with the same retraining budget "
                                                    "('' for none).")
    target_macs: float = setting(5e6, "The MACs where the cost factor is 1 (the paper: 20e6 for its larger nets).",
                                 type=click.FloatRange(min=1, min_open=True))
    warmup_epochs: int = setting(10, "Warm-up epochs, shared by every beta (the paper: 40).", type=POSITIVE)
    warmup_lr: float = setting(0.05, "Peak warm-up learning rate (the paper: 0.05).", type=POSITIVE_FLOAT)
    search_epochs: int = setting(10, "Joint epochs per beta (the paper: 120).", type=POSITIVE)
    retrain_epochs: int = setting(15, "Training epochs of every found net and every baseline.", type=POSITIVE)
    batch_size: int = setting(100, "Examples per step, in every search and training.", type=POSITIVE)
    seed: int = setting(0, "The seed of every step.", type=COUNT)
    keywords: tuple[str, ...] = setting(gsc.KEYWORDS, "Comma-separated keywords.", show="the 10 GSC keywords")
    eval_data: tuple[Path, ...] = setting((), "A folder of voices never trained on, measured in full (repeatable; "
                                              "the first is the table's 'held-out families' column).",
                                          type=EXISTING_DIR, repeat=True)
    dataset_name: str | None = setting(None, "How the models describe their training data.")
    jobs: int | None = setting(None, "Steps run at once.", short="-j", type=POSITIVE,
                               show="locally one per GPU, or 1 on a CPU; on Ray and SLURM all that fit")
    report_only: bool = setting(False, "Only rebuild the report from the models already exported.")
    executor: str = setting("local", "Where steps run: local (processes here), ray (a Ray cluster, or one started "
                                     "here), slurm (a SLURM job per step, through submitit), submitit-local (the "
                                     "slurm path on this machine, to check it without a cluster).",
                            type=click.Choice(EXECUTORS))
    address: str | None = setting(None, "Ray: the cluster to join (auto, or HOST:PORT).",
                                  show="a Ray instance started here")
    partition: str | None = setting(None, "SLURM: the partition every job goes to.", show="the cluster's default")
    gpus_per_step: int = setting(0, "Ray and SLURM: GPUs each step asks for (0: CPUs only).", type=COUNT)
    cpus_per_step: int | None = setting(None, "CPUs each step asks for, and its threads.", type=POSITIVE,
                                        show="the CPUs / jobs here, 1 on Ray and SLURM")
    step_minutes: int = setting(24 * 60, "SLURM: the time limit of each job; a step cut off resumes from its "
                                         "checkpoint when the sweep runs again.", type=POSITIVE)
    dry_run: bool = setting(False, "Print the steps, their command lines and the resources each asks for; "
                                   "run nothing.")

    #: How a sweep runs, not what it computes: the report's command line leaves them out.
    EXECUTION = ("jobs", "report_only", "executor", "address", "partition", "gpus_per_step", "cpus_per_step",
                 "step_minutes", "dry_run")

    def __post_init__(self):
        if self.address is not None and self.executor != "ray":
            raise KwspiError("--address is for --executor ray")
        if self.partition is not None and self.executor != "slurm":
            raise KwspiError("--partition is for --executor slurm")
        if self.gpus_per_step and self.executor == "local":
            raise KwspiError("--gpus-per-step is for ray and slurm; the local executor gives each step one GPU")
        if not (self.betas or self.baselines):
            raise KwspiError("nothing to sweep: give at least one beta or one baseline")
        unknown = sorted(set(self.baselines) - set(BASELINES))
        if unknown:
            raise KwspiError(f"unknown baselines {', '.join(unknown)}; choose from {', '.join(BASELINES)}")
