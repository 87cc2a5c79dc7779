"""Teach a model its user's voice on the Pi: the final layer re-fit in numpy, no torch.

Where the adapted layer lives: in the new model's metadata (``kwspi.head``, float32), not in
the graph. The int8 graph is copied byte for byte (:func:`kwspi.modelfile.with_metadata`);
:class:`~kwspi.deploy.model.LoadedModel` reads its ``embedding`` output and applies
``W e + b`` itself when a head is present. Rewriting the quantized Gemm inside the graph
would need the ``onnx`` package on the Pi and a second quantization of the new weights; a
12 x 64 matrix product in numpy costs nothing beside the network.

The fit (:func:`fit_head`): multinomial logistic regression on embeddings, started from and
pulled toward the exported layer (``classifier``) by an L2 term, over two kinds of
examples, each with its share of the loss:

- the user's takes, each placed at several positions in the window and mixed with slices of
  the room at a few signal-to-noise ratios (:func:`examples`), the room itself as
  ``_silence_``, and every window of the user's other speech as ``_unknown_``;
- the bank the exported model carries: labelled embeddings of the training data, three
  quarters of them other speech (``kwspi export --bank-speech-share``), so that other speakers
  and negatives are not forgotten. The bank's speech is what keeps false alarms down: with an
  even bank (a twelfth other speech) an enrolled model raised 3.6 times as many as with this
  one (results/enroll.md).

Thresholds (:func:`thresholds`): per keyword, never below the model's own, raised until the
new layer fires on no more of everything else than the exported layer did. Figures
(:func:`leave_one_take_out`): each take in turn is held out of the fit and scored before and
after, so the user sees what changed on takes the fit has not seen.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from kwspi import gsc
from kwspi.clips import to_pcm16
from kwspi.features import SAMPLE_RATE, clip_features
from kwspi.metrics import softmax
from kwspi.modelfile import with_metadata
from kwspi.modelinfo import ModelInfo, decode_array, encode_array, run_batched
from kwspi.progress import Progress, silent

from kwspi.deploy.model import LoadedModel
from kwspi.deploy.takes import TakeError, Takes, read_takes

#: Signal-to-noise ratios (dB) at which each take is also mixed with the room.
SNRS_DB = (20.0, 10.0)


@dataclass(frozen=True)
class EnrollConfig:
    """How enrollment turns takes into a head.

    ``shifts``: positions of each take in the window. ``speech_hop_s``: the stride of the
    windows cut from the user's other speech when it is longer than a window. ``l2``: pull
    toward the exported layer (per unit of loss). ``bank_share``: the bank's share of the
    loss (the user's data has the rest). ``iterations``: gradient steps. ``seed``: room
    slices and bank order.
    """

    shifts: int = 5
    speech_hop_s: float = 0.25
    l2: float = 0.001
    bank_share: float = 0.5
    iterations: int = 400
    seed: int = 0


class EnrollError(TakeError):
    """A base model or takes that enrollment cannot use."""


# --- examples --------------------------------------------------------------------------------


def _placed(take: np.ndarray, offset: int, n: int) -> np.ndarray:
    x = np.zeros(n, np.float32)
    x[offset:offset + len(take)] = take[: n - offset]
    return x


def _room_slice(room: np.ndarray, n: int, rng) -> np.ndarray:
    if len(room) < n:
        return np.resize(room, n)
    start = int(rng.integers(0, len(room) - n + 1))
    return room[start:start + n]


def windows(take: np.ndarray, room: np.ndarray, cfg: EnrollConfig, rng) -> list[np.ndarray]:
    """One-window clips of ``take``: at ``cfg.shifts`` positions (speech longer than a window:
    every window of it, ``cfg.speech_hop_s`` apart), each clean and mixed with a slice of the
    room at every ratio of :data:`SNRS_DB` (the room empty: clean only)."""
    n = SAMPLE_RATE
    if len(take) > n:
        hop = max(int(cfg.speech_hop_s * n), 1)
        placed = [take[i:i + n] for i in range(0, len(take) - n + 1, hop)]
    else:
        offsets = np.linspace(0, n - len(take), cfg.shifts).astype(int) if cfg.shifts > 1 else [(n - len(take)) // 2]
        placed = [_placed(take, int(offset), n) for offset in offsets]
    out = []
    rms = np.sqrt(np.mean(take.astype(np.float64) ** 2)) + 1e-9
    for x in placed:
        out.append(x)
        for snr in SNRS_DB if len(room) else ():
            noise = _room_slice(room, n, rng).astype(np.float64)
            scale = rms / (np.sqrt(np.mean(noise ** 2)) + 1e-9) / 10 ** (snr / 20)
            out.append(np.clip(x + scale * noise, -1, 1).astype(np.float32))
    return out


def room_windows(room: np.ndarray, hop_s: float = 0.5) -> list[np.ndarray]:
    """The room as one-window clips every ``hop_s`` seconds."""
    n, hop = SAMPLE_RATE, int(hop_s * SAMPLE_RATE)
    return [room[i:i + n] for i in range(0, len(room) - n + 1, hop)]


def embed(model: LoadedModel, clips: list[np.ndarray]) -> np.ndarray:
    """Embeddings ``[n, size]`` of one-window clips, as the int8 graph computes them."""
    name = model.info.embedding["output"]
    size = int(model.info.embedding["size"])
    if not clips:
        return np.zeros((0, size))
    cfg = model.features
    X = np.stack([clip_features(to_pcm16(c), cfg) for c in clips])  # 16-bit, as training read its clips
    return run_batched(model.session, name, X[:, None].astype(np.float32)).astype(np.float64)


@dataclass(frozen=True)
class Examples:
    """Embeddings and labels of the user's data: ``take`` says which take (its index within
    its word) each row came from, -1 for the room and other words."""

    X: np.ndarray
    y: np.ndarray
    take: np.ndarray


def examples(model: LoadedModel, takes: Takes, cfg: EnrollConfig) -> Examples:
    """The user's takes, room and other words as labelled embeddings."""
    labels = model.info.labels
    rng = np.random.default_rng(cfg.seed)
    clips, y, which = [], [], []
    for word, got in takes.words.items():
        for i, take in enumerate(got):
            w = windows(take, takes.room, cfg, rng)
            clips += w
            y += [labels.index(word)] * len(w)
            which += [i] * len(w)
    extra = [(gsc.SILENCE, room_windows(takes.room))] + [(gsc.UNKNOWN, windows(u, takes.room, cfg, rng))
                                                         for u in takes.unknown]
    for label, w in extra:
        if label in labels:
            clips += w
            y += [labels.index(label)] * len(w)
            which += [-1] * len(w)
    return Examples(embed(model, clips), np.asarray(y, np.int64), np.asarray(which, np.int64))


# --- the fit ---------------------------------------------------------------------------------


def fit_head(X: np.ndarray, y: np.ndarray, weights: np.ndarray, W0: np.ndarray, b0: np.ndarray, l2: float,
             iterations: int) -> tuple[np.ndarray, np.ndarray]:
    """``(W, b)`` minimising ``sum_i weights_i CE(W x_i + b, y_i) + l2/2 ||[W b] - [W0 b0]||^2``
    by Nesterov's accelerated gradient, started at ``(W0, b0)``. Convex, so the step is
    1/L with L bounded by the weighted second moment of the inputs."""
    A = np.hstack([X, np.ones((len(X), 1))])
    theta0 = np.hstack([W0, b0[:, None]])
    onehot = np.eye(len(b0))[y]
    lipschitz = 0.5 * np.linalg.eigvalsh((A * weights[:, None]).T @ A)[-1] + l2
    step = 1.0 / lipschitz
    theta, previous = theta0.copy(), theta0.copy()
    for k in range(iterations):
        look = theta + (k / (k + 3)) * (theta - previous)
        p = softmax(A @ look.T)
        grad = ((p - onehot) * weights[:, None]).T @ A + l2 * (look - theta0)
        previous, theta = theta, look - step * grad
    return theta[:, :-1], theta[:, -1]


def _bank(info: ModelInfo) -> tuple[np.ndarray, np.ndarray]:
    if not info.bank:
        return np.zeros((0, int(info.embedding["size"]))), np.zeros(0, np.int64)
    return (decode_array(info.bank["embeddings"]).astype(np.float64),
            decode_array(info.bank["labels"]).astype(np.int64))


def weights(n_user: int, n_bank: int, bank_share: float) -> np.ndarray:
    """Each row's weight in the fit, the user's rows then the bank's: ``bank_share`` of the
    whole for the bank, the rest for the user. Weighing each label as the bank does instead
    cost 5 points of the gain for no fewer false alarms (results/enroll.md)."""
    share = bank_share if n_bank else 0.0
    return np.concatenate([np.full(n_user, (1 - share) / max(n_user, 1)), np.full(n_bank, share / max(n_bank, 1))])


def adapt(ex: Examples, bank: tuple[np.ndarray, np.ndarray], base: tuple[np.ndarray, np.ndarray],
          cfg: EnrollConfig, rows=None) -> tuple[np.ndarray, np.ndarray]:
    """The head re-fit on the user's ``rows`` of ``ex`` (all by default) and the bank."""
    rows = np.ones(len(ex.y), bool) if rows is None else rows
    X = np.vstack([ex.X[rows], bank[0]])
    y = np.concatenate([ex.y[rows], bank[1]])
    return fit_head(X, y, weights(int(rows.sum()), len(bank[1]), cfg.bank_share), *base, cfg.l2, cfg.iterations)


def accuracy(head, X: np.ndarray, y: np.ndarray) -> float | None:
    if len(y) == 0:
        return None
    W, b = head
    return float(np.mean((X @ W.T + b).argmax(1) == y))


def leave_one_take_out(ex: Examples, bank, base, cfg: EnrollConfig) -> dict:
    """Accuracy on each take held out in turn (take ``j`` of every word with two or more),
    before (the exported layer) and after (the layer fit without it), over all folds."""
    keyword = ex.take >= 0
    counts = {int(c): int(ex.take[keyword & (ex.y == c)].max()) + 1 for c in np.unique(ex.y[keyword])}
    hits = {"before": 0, "after": 0}
    n = 0
    for j in range(max(counts.values(), default=0)):
        held = keyword & (ex.take == j) & np.isin(ex.y, [c for c, k in counts.items() if k >= 2])
        if not held.any():
            continue
        after = adapt(ex, bank, base, cfg, ~held)
        hits["before"] += int(round(accuracy(base, ex.X[held], ex.y[held]) * held.sum()))
        hits["after"] += int(round(accuracy(after, ex.X[held], ex.y[held]) * held.sum()))
        n += int(held.sum())
    if n == 0:
        return {}
    return {"before": round(hits["before"] / n, 4), "after": round(hits["after"] / n, 4), "windows": n}


def thresholds(head, base, ex: Examples, bank, info: ModelInfo) -> dict[str, float]:
    """Per enrolled keyword: the lowest threshold, never below the model's own, at which the
    re-fit head fires on no larger a share of everything that is not that keyword (the bank's
    other labels, the room, the user's other words and other keywords) than the base layer did
    at the model's threshold. The bank stands in for other voices' speech; on voices unlike
    the bank's it is a weak stand-in: in results/enroll.md no threshold moved, and false alarms
    per hour still rose by 71 %."""
    X = np.vstack([ex.X, bank[0]])
    y = np.concatenate([ex.y, bank[1]])
    after, before = (softmax(X @ W.T + b) for W, b in (head, base))
    out = dict(info.thresholds)
    for k in np.unique(ex.y[ex.take >= 0]):
        label = info.labels[k]
        floor = info.threshold(label)
        others = y != k
        allowed = int(np.sum(before[others, k] >= floor))
        # the (allowed + 1)-th loudest other score: firing above it lets at most `allowed` through
        loudest = np.sort(after[others, k])[::-1]
        t = float(loudest[allowed]) + 1e-3 if allowed < len(loudest) else floor
        out[label] = round(float(np.clip(max(floor, t), 0.05, 0.99)), 4)
    return out


# --- the API ---------------------------------------------------------------------------------


def base_head(model: LoadedModel) -> tuple[np.ndarray, np.ndarray]:
    """The exported final layer, or a one-line error for a model without an embedding output."""
    info = model.info
    if not (info.embedding and info.classifier):
        raise EnrollError(f"{model.path}: has no embedding output to enroll with; re-export it with `kwspi export` "
                          "(models exported before enrollment existed lack it)")
    return (decode_array(info.classifier["weight"], model.path).astype(np.float64),
            decode_array(info.classifier["bias"], model.path).astype(np.float64))


def enroll_takes(base, takes: Takes, cfg: EnrollConfig = EnrollConfig(), progress: Progress = silent) -> bytes:
    """The model file ``base`` (a path) adapted to ``takes``, as bytes."""
    base = Path(base)
    model = LoadedModel.load(base)
    head0 = base_head(model)
    if not takes.words:
        raise EnrollError("no takes to enroll")
    with progress("enrolling", 3) as advance:
        ex = examples(model, takes, cfg)
        advance(1)
        bank = _bank(model.info)
        held_out = leave_one_take_out(ex, bank, head0, cfg)
        advance(1)
        head = adapt(ex, bank, head0, cfg)
        advance(1)
    data = base.read_bytes()
    info = replace(
        model.info,
        head={"weight": encode_array(head[0], "<f4"), "bias": encode_array(head[1], "<f4")},
        thresholds=thresholds(head, head0, ex, bank, model.info),
        enrollment={"base": base.name, "base_sha256": hashlib.sha256(data).hexdigest()[:16],
                    "takes": takes.counts(), "room_s": round(len(takes.room) / SAMPLE_RATE, 1),
                    "unknown_takes": len(takes.unknown), "held_out_takes": held_out,
                    "bank": {"before": _rounded(accuracy(head0, *bank)), "after": _rounded(accuracy(head, *bank)),
                             "n": len(bank[1])}},
    )
    return with_metadata(data, info.to_metadata())


def enroll(base, clips, cfg: EnrollConfig = EnrollConfig(), progress: Progress = silent) -> bytes:
    """The model file ``base`` adapted to the takes in the folder ``clips`` (GSC layout:
    ``yes/*.wav``, ..., optional ``_background_noise_/`` and ``_unknown_/``), as bytes."""
    labels = LoadedModel.load(base).info.labels
    return enroll_takes(base, read_takes(clips, labels), cfg, progress)


def _rounded(x: float | None):
    return None if x is None else round(x, 4)
