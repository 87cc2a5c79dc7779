"""The feature cache with many writers: sweep steps on several machines sharing one folder."""

import hashlib
import multiprocessing
import os

import numpy as np

from kwspi import gsc
from kwspi.features import FeatureConfig
from kwspi.train.data import cache
from kwspi.train.data.dataset import load_split
from kwspi.train.speech.augment import AugmentConfig
from conftest import make_gsc

TASK = gsc.TaskSpec(keywords=("yes", "no"))


def load(root, cache_dir):
    return load_split(root, "training", FeatureConfig(), TASK, AugmentConfig(), views=2, seed=0,
                      cache_dir=cache_dir, workers=1)


def digest(fs) -> str:
    return hashlib.sha256(b"".join(np.ascontiguousarray(v).tobytes() for v in fs.views)).hexdigest()


def load_at_once(root, cache_dir, barrier, results):
    from kwspi.train.data import dataset

    def write_together(*args):
        barrier.wait()  # both found no cache and computed the split; now both write it at once
        write_cache(*args)

    write_cache, dataset.write_cache = dataset.write_cache, write_together
    fs = load(root, cache_dir)
    results.put((os.getpid(), fs.stats.computed, digest(fs)))


def test_two_processes_writing_one_split_at_once_leave_one_valid_cache(tmp_path):
    root = make_gsc(tmp_path / "gsc", words=("yes", "no", "bed"), n_speakers=8)
    shared = tmp_path / "shared-cache"
    ctx = multiprocessing.get_context("spawn")  # separate interpreters, as on separate machines
    barrier, results = ctx.Barrier(2, timeout=60), ctx.Queue()
    procs = [ctx.Process(target=load_at_once, args=(root, shared, barrier, results)) for _ in range(2)]
    for p in procs:
        p.start()
    got = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert all(computed > 0 for _, computed, _ in got)  # no lock: both computed it, as they would
    assert got[0][2] == got[1][2]  # the same features
    assert not list(shared.rglob("*.tmp"))  # every temp file published or removed
    again = load(root, shared)  # one valid cache: read back whole, nothing computed
    assert again.stats.computed == 0 and again.stats.from_cache == 2 and digest(again) == got[0][2]


def test_a_view_once_published_is_never_replaced_under_a_reader(tmp_path):
    plan = cache.CachePlan(tmp_path, "training-x-y", "aug", 0)
    kept = np.arange(3)
    views = {0: np.ones((3, 1, 10, 49), np.float32)}
    cache.write_cache(plan, views, kept, {})
    path = plan.view(0, kept.tolist())
    mapped = np.load(path, mmap_mode="r")
    inode = path.stat().st_ino
    cache.write_cache(plan, views, kept, {})  # a second writer of the same split
    assert path.stat().st_ino == inode and np.array_equal(mapped, views[0])
    path.write_bytes(b"\x93NUMPY torn")  # not what its name says: that one is replaced
    cache.write_cache(plan, views, kept, {})
    found, meta = cache.read_cached(plan, [0], FeatureConfig())
    assert np.array_equal(found[0], views[0]) and meta["kept"] == [0, 1, 2]
    other = plan.view(0, [0, 2])  # other kept examples: another name, never the same file
    assert other != path
