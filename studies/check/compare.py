#!/usr/bin/env python3
"""Compare two output folders of reproduce.sh (e.g. the pre-refactor reference and a rerun).

    python3 compare.py REF_OUT NEW_OUT            # the reported numbers
    VENV/bin/python compare.py REF_OUT NEW_OUT --deep   # also data, run logs, checkpoints, ONNX

Default (the numbers that matter): every sweep.json (rows matched by model: arch, MACs, params,
weight bytes, int8 bytes, accuracy per split, ...) and every study JSON in results*/ (scale, sizes,
rows matched by bits / n_mfcc / recipe). Timing fields (train_cpu_seconds, seconds) and the
'command' strings are ignored; paths below each OUTDIR are written as <OUT> before comparing.

--deep adds: sha256 of every data/ and heldout/ file; every runs/**/*.json and *.jsonl (per epoch
loss, accuracy, lr, arch probabilities of the search); every *.pt (tensors compared exactly, with
max |diff| when they differ; needs torch); every *.onnx (bytes, and on a mismatch the initializers
and metadata; needs onnx). Files present on one side only are listed as 'only in' (a refactor may
rename internal files); they do not count as differences unless --strict.

Floats are compared exactly unless --rtol/--atol are given. Exit status 1 if anything differs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import re
import sys
from pathlib import Path

IGNORED_KEYS = {"command", "train_cpu_seconds", "seconds"}
ROW_KEYS = ("model", "recipe", "bits", "n_mfcc")


class Report:
    def __init__(self, rtol: float, atol: float, max_lines: int):
        self.rtol, self.atol, self.max_lines = rtol, atol, max_lines
        self.equal = self.differs = self.only = 0
        self.max_rel = 0.0
        self.max_abs = 0.0

    def item(self, name: str, diffs: list[str]) -> None:
        if diffs:
            self.differs += 1
            print(f"DIFFERS  {name}")
            for d in diffs[: self.max_lines]:
                print(f"           {d}")
            if len(diffs) > self.max_lines:
                print(f"           ... and {len(diffs) - self.max_lines} more")
        else:
            self.equal += 1
            print(f"equal    {name}")

    def only_in(self, name: str, side: str) -> None:
        self.only += 1
        print(f"ONLY IN  {side}: {name}")

    def close(self, a: float, b: float) -> bool:
        if a == b or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b)):
            return True
        d = abs(a - b)
        self.max_abs = max(self.max_abs, d)
        if a != 0 or b != 0:
            self.max_rel = max(self.max_rel, d / max(abs(a), abs(b)))
        return d <= self.atol + self.rtol * max(abs(a), abs(b))


def normalise(value, root: Path):
    if isinstance(value, str):
        return value.replace(str(root), "<OUT>")
    return value


def row_key(rows: list) -> str | None:
    if rows and all(isinstance(r, dict) for r in rows):
        for k in ROW_KEYS:
            if all(k in r for r in rows) and len({json.dumps(r[k]) for r in rows}) == len(rows):
                return k
    return None


def diff(a, b, rep: Report, roots: tuple[Path, Path], path: str = "") -> list[str]:
    """Differences between two JSON-like values, as 'path: a -> b' lines."""
    out: list[str] = []
    a, b = normalise(a, roots[0]), normalise(b, roots[1])
    if isinstance(a, bool) or isinstance(b, bool) or a is None or b is None or isinstance(a, str) or isinstance(b, str):
        if a != b:
            out.append(f"{path or '.'}: {a!r} -> {b!r}")
    elif isinstance(a, (int, float)) and isinstance(b, (int, float)):
        if not rep.close(a, b):
            extra = f" (diff {b - a:+.3g}, rel {abs(b - a) / max(abs(a), abs(b)):.2g})" if a != b else ""
            out.append(f"{path or '.'}: {a!r} -> {b!r}{extra}")
    elif isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b), key=str):
            if k in IGNORED_KEYS:
                continue
            p = f"{path}.{k}" if path else str(k)
            if k not in a:
                out.append(f"{p}: missing -> {b[k]!r}")
            elif k not in b:
                out.append(f"{p}: {a[k]!r} -> missing")
            else:
                out += diff(a[k], b[k], rep, roots, p)
    elif isinstance(a, list) and isinstance(b, list):
        key = row_key(a)
        if key is not None and row_key(b) == key:
            ia = {json.dumps(r[key]): r for r in a}
            ib = {json.dumps(r[key]): r for r in b}
            for k in list(ia) + [k for k in ib if k not in ia]:
                p = f"{path}[{key}={k}]"
                if k not in ib:
                    out.append(f"{p}: row missing in new")
                elif k not in ia:
                    out.append(f"{p}: row only in new")
                else:
                    out += diff(ia[k], ib[k], rep, roots, p)
            if [json.dumps(r[key]) for r in a] != [json.dumps(r[key]) for r in b] and set(ia) == set(ib):
                out.append(f"{path}: row order {list(ia)} -> {list(ib)}")
        else:
            if len(a) != len(b):
                out.append(f"{path}: length {len(a)} -> {len(b)}")
            for i, (x, y) in enumerate(zip(a, b)):
                out += diff(x, y, rep, roots, f"{path}[{i}]")
    elif type(a) is not type(b):
        out.append(f"{path}: {type(a).__name__} {a!r} -> {type(b).__name__} {b!r}")
    return out


def load_json(p: Path):
    if p.suffix == ".jsonl":
        return [json.loads(line) for line in p.read_text().splitlines() if line.strip()]
    return json.loads(p.read_text())


def sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


CACHE_DIR = re.compile(r"\.kwspi-cache/[0-9a-f]+/")


def pair(ref: Path, new: Path, pattern_dirs: list[str], suffixes: tuple[str, ...]) -> tuple[list, list, list]:
    """Files under the given top folders with the suffixes, as (key, ref path, new path) for
    those in both, and keys on one side only. Feature caches are keyed without the hashed
    folder name (.kwspi-cache/<hash of the data folder's path>/), which differs per OUTDIR."""
    def listing(root: Path) -> dict[str, Path]:
        found = {}
        for top in pattern_dirs:
            for p in root.glob(top):
                for q in ([p] if p.is_file() else p.rglob("*") if p.is_dir() else []):
                    if q.is_file() and q.name.endswith(suffixes):
                        found[CACHE_DIR.sub(".kwspi-cache/*/", q.relative_to(root).as_posix())] = q
        return found
    a, b = listing(ref), listing(new)
    return ([(k, a[k], b[k]) for k in sorted(a.keys() & b.keys())],
            sorted(a.keys() - b.keys()), sorted(b.keys() - a.keys()))


def compare_torch(pa: Path, pb: Path, rep: Report, roots) -> list[str]:
    import torch

    def walk(x, y, path):
        if isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor):
            if x.shape != y.shape or x.dtype != y.dtype:
                return [f"{path}: {x.dtype}{list(x.shape)} -> {y.dtype}{list(y.shape)}"]
            if torch.equal(x, y):
                return []
            if x.is_floating_point():
                d = (x.double() - y.double()).abs().max().item()
                scale = max(x.double().abs().max().item(), y.double().abs().max().item(), 1e-300)
                rep.max_abs, rep.max_rel = max(rep.max_abs, d), max(rep.max_rel, d / scale)
                if d <= rep.atol + rep.rtol * scale:
                    return []
                return [f"{path}: tensor max|diff| {d:.3g} (max|x| {scale:.3g})"]
            return [f"{path}: {int((x != y).sum())} of {x.numel()} elements differ"]
        if isinstance(x, dict) and isinstance(y, dict):
            out = []
            for k in sorted(set(x) | set(y), key=str):
                if k in IGNORED_KEYS:
                    continue
                if k not in x or k not in y:
                    out.append(f"{path}.{k}: {'missing' if k not in x else 'present'} -> "
                               f"{'missing' if k not in y else 'present'}")
                else:
                    out += walk(x[k], y[k], f"{path}.{k}")
            return out
        if isinstance(x, (list, tuple)) and isinstance(y, (list, tuple)):
            out = [] if len(x) == len(y) else [f"{path}: length {len(x)} -> {len(y)}"]
            for i, (u, v) in enumerate(zip(x, y)):
                out += walk(u, v, f"{path}[{i}]")
            return out
        return diff(x, y, rep, roots, path)

    return walk(torch.load(pa, map_location="cpu", weights_only=False),
                torch.load(pb, map_location="cpu", weights_only=False), "")


def compare_onnx(pa: Path, pb: Path, rep: Report, roots) -> list[str]:
    if sha(pa) == sha(pb):
        return []
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError:
        return ["bytes differ (install onnx for details)"]
    ma, mb = onnx.load(str(pa)), onnx.load(str(pb))
    out = []
    ia = {t.name: numpy_helper.to_array(t) for t in ma.graph.initializer}
    ib = {t.name: numpy_helper.to_array(t) for t in mb.graph.initializer}
    for k in sorted(set(ia) | set(ib)):
        if k not in ia or k not in ib:
            out.append(f"initializer {k}: {'missing' if k not in ia else 'present'} -> "
                       f"{'missing' if k not in ib else 'present'}")
        elif ia[k].shape != ib[k].shape or ia[k].dtype != ib[k].dtype:
            out.append(f"initializer {k}: {ia[k].dtype}{ia[k].shape} -> {ib[k].dtype}{ib[k].shape}")
        elif not (ia[k] == ib[k]).all():
            d = float(abs(ia[k].astype("float64") - ib[k].astype("float64")).max())
            out.append(f"initializer {k}: max|diff| {d:.3g}")
    meta_a = {p.key: p.value for p in ma.metadata_props}
    meta_b = {p.key: p.value for p in mb.metadata_props}
    for k in sorted(set(meta_a) | set(meta_b)):
        va, vb = meta_a.get(k), meta_b.get(k)
        try:
            va, vb = json.loads(va), json.loads(vb)
        except (TypeError, ValueError):
            pass
        out += diff(va, vb, rep, roots, f"metadata.{k}")
    if not out:
        out.append("bytes differ, but initializers and metadata are equal (graph/producer differs)")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("ref", type=Path)
    ap.add_argument("new", type=Path)
    ap.add_argument("--deep", action="store_true", help="also data, runs/**/*.json(l), *.pt and *.onnx")
    ap.add_argument("--strict", action="store_true", help="files on one side only count as differences")
    ap.add_argument("--rtol", type=float, default=0.0)
    ap.add_argument("--atol", type=float, default=0.0)
    ap.add_argument("--max-lines", type=int, default=20, help="difference lines shown per file")
    args = ap.parse_args()
    ref, new = args.ref.resolve(), args.new.resolve()
    rep = Report(args.rtol, args.atol, args.max_lines)
    roots = (ref, new)

    def files(dirs, suffixes, compare):
        both, only_a, only_b = pair(ref, new, dirs, suffixes)
        for rel, a, b in both:
            try:
                rep.item(rel, compare(a, b))
            except Exception as e:  # noqa: BLE001 - report and go on
                rep.item(rel, [f"could not compare: {type(e).__name__}: {e}"])
        for rel in only_a:
            rep.only_in(rel, str(args.ref))
        for rel in only_b:
            rep.only_in(rel, str(args.new))
        return len(both)

    print("# results (sweep.json and the studies' JSON)")
    n = files(["results*"], (".json",), lambda a, b: diff(load_json(a), load_json(b), rep, roots))
    if n == 0:
        print(f"no results*/**/*.json found in both {ref} and {new}")
        return 2
    if args.deep:
        print("# data (sha256)")
        files(["data", "heldout"], ("",), lambda a, b: [] if sha(a) == sha(b) else ["bytes differ"])
        print("# runs: json / jsonl")
        files(["runs"], (".json", ".jsonl"), lambda a, b: diff(load_json(a), load_json(b), rep, roots))
        print("# runs: feature caches (.npy, sha256)")
        files(["runs"], (".npy",), lambda a, b: [] if sha(a) == sha(b) else ["bytes differ"])
        print("# checkpoints (.pt)")
        try:
            import torch  # noqa: F401
            files(["runs"], (".pt",), lambda a, b: compare_torch(a, b, rep, roots))
        except ImportError:
            files(["runs"], (".pt",), lambda a, b: [] if sha(a) == sha(b) else ["bytes differ (no torch)"])
        print("# ONNX models")
        files(["results*", "runs"], (".onnx",), lambda a, b: compare_onnx(a, b, rep, roots))

    failed = rep.differs + (rep.only if args.strict else 0)
    print(f"\nsummary: {rep.equal} equal, {rep.differs} differ, {rep.only} on one side only; "
          f"largest float difference seen: abs {rep.max_abs:.3g}, rel {rep.max_rel:.3g}"
          + (f" (tolerance rtol={args.rtol} atol={args.atol})" if args.rtol or args.atol else ""))
    print("RESULT:", "DIFFERS" if failed else "EQUAL")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
