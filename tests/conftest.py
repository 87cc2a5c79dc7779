"""Fixtures that generate small data sets in Google Speech Commands' exact layout.

Nothing is downloaded: clips are tone bursts (a different pitch per word) in noise, which
is enough to exercise loaders, splits, caches and a training step.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from kwspi import gsc
from kwspi.wavio import write_wav


def _speaker_ids(n: int) -> list[str]:
    """``n`` speaker ids, a sixth of them (at least one) in each of validation and testing."""
    want = {"validation": max(1, n // 6), "testing": max(1, n // 6)}
    want["training"] = n - want["validation"] - want["testing"]
    ids, i = [], 0
    while len(ids) < n:
        spk = hashlib.sha1(f"spk{i}".encode()).hexdigest()[:8]
        split = gsc.which_set(f"{spk}_nohash_0.wav")
        if want[split] > 0:
            want[split] -= 1
            ids.append(spk)
        i += 1
    return ids


def make_gsc(
    root: Path,
    words=gsc.WORDS_V1,
    n_speakers: int = 12,
    clips_per_speaker: int = 1,
    layout: str = "v1",
    rate: int = 16000,
) -> Path:
    """Write a GSC-layout folder under ``root`` and return it.

    ``layout="v1"``: no list files (the hash rule splits it). ``layout="v2"``: with
    ``validation_list.txt`` and ``testing_list.txt`` written from the hash rule, as in v0.02.
    """
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    lists = {"validation": [], "testing": []}
    t = np.arange(rate) / rate
    for wi, word in enumerate(words):
        (root / word).mkdir(exist_ok=True)
        for spk in _speaker_ids(n_speakers):
            for n in range(clips_per_speaker):
                start = int(rng.integers(0, rate // 2))
                burst = np.zeros(rate)
                length = rate // 3
                burst[start:start + length] = 0.5 * np.sin(2 * np.pi * (200 + 60 * wi) * t[:length])
                clip = burst + 0.01 * rng.standard_normal(rate)
                rel = f"{word}/{spk}_nohash_{n}.wav"
                write_wav(root / rel, clip.astype(np.float32), rate)
                split = gsc.which_set(rel)
                if split in lists:
                    lists[split].append(rel)
    noise = root / gsc.BACKGROUND_NOISE_DIR
    noise.mkdir(exist_ok=True)
    write_wav(noise / "white_noise.wav", (0.3 * rng.standard_normal(5 * rate)).astype(np.float32), rate)
    write_wav(noise / "hum.wav", (0.3 * np.sin(2 * np.pi * 50 * np.arange(5 * rate) / rate)).astype(np.float32), rate)
    if layout == "v2":
        (root / gsc.VALIDATION_LIST).write_text("".join(f"{p}\n" for p in lists["validation"]))
        (root / gsc.TESTING_LIST).write_text("".join(f"{p}\n" for p in lists["testing"]))
    return root


@pytest.fixture
def gsc_v1(tmp_path) -> Path:
    """A v0.01-layout folder (hash-rule split) with all 30 words."""
    return make_gsc(tmp_path / "gsc_v1")


@pytest.fixture
def gsc_v2(tmp_path) -> Path:
    """A v0.02-layout folder with list files and all 35 words."""
    return make_gsc(tmp_path / "gsc_v2", words=gsc.WORDS_V2, layout="v2")


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """Train tests on one thread: with two on two busy cores torch ran about 6x slower."""
    try:
        import torch
    except ImportError:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
