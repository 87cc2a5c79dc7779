"""The studies' speaker subset: the training speakers asked for, every test clip, stable."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from conftest import make_gsc
from kwspi import gsc

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "studies"))
import common  # noqa: E402


def test_subset_keeps_n_training_speakers_and_every_test_clip(tmp_path):
    src = make_gsc(tmp_path / "src", words=gsc.KEYWORDS + ("bed",), n_speakers=12, layout="v2")
    dst = common.make_subset(src, tmp_path / "subset", train_speakers=3)

    clips = [c for cs in gsc.scan(dst).values() for c in cs]
    splits = gsc.split_of_clips(dst, clips)
    assert len({gsc.speaker_of(c) for c in splits["training"]}) == 3
    assert splits["validation"] == []
    src_clips = [c for cs in gsc.scan(src).values() for c in cs]
    assert sorted(splits["testing"]) == sorted(gsc.split_of_clips(src, src_clips)["testing"])
    assert gsc.noise_files(dst)

    before = {p: p.stat().st_mtime_ns for p in dst.rglob("*")}
    common.make_subset(src, dst, train_speakers=3)  # a rerun leaves the folder (and its cache key) alone
    assert {p: p.stat().st_mtime_ns for p in dst.rglob("*")} == before


def test_holds_down_to_stops_at_the_first_width_that_falls_off():
    import quant_bits

    acc = {None: 95.0, 8: 95.0, 7: 94.5, 6: 93.0, 5: 94.8, 4: 10.0}
    assert quant_bits.holds_down_to(acc, 1.0) == 7  # 5 bits recovers, but 6 already fell off
    assert quant_bits.holds_down_to(acc, 100.0) == 4
    assert quant_bits.holds_down_to({None: 95.0, 8: 80.0}, 1.0) is None


def test_subset_ignores_words_added_to_the_source_later(tmp_path):
    src = make_gsc(tmp_path / "src", words=gsc.KEYWORDS + ("bed",), n_speakers=12, layout="v2")
    dst = common.make_subset(src, tmp_path / "subset", train_speakers=3)
    before = sorted(p.relative_to(dst) for p in dst.rglob("*.wav"))
    extra = make_gsc(tmp_path / "extra", words=("awful",), n_speakers=12, layout="v2")
    (src / "awful").symlink_to(extra / "awful")
    (dst / "stray").mkdir()
    (dst / "stray" / "x.wav").symlink_to(next((extra / "awful").glob("*.wav")))

    common.make_subset(src, dst, train_speakers=3)
    assert sorted(p.relative_to(dst) for p in dst.rglob("*.wav")) == before
    assert not (dst / "stray").exists()


def test_voices_plans_a_baseline_one_fold_per_held_out_engine_and_the_curve():
    import voices

    mixes = voices.plan_mixes()
    tags = [m.tag for m in mixes]
    assert tags[0] == "espeak" and mixes[0].kind == "baseline"
    folds = [m for m in mixes if m.kind == "fold"]
    assert [m.unheard() for m in folds] == [(h,) for h in voices.HELD_OUT]  # each fold misses exactly one
    assert all("espeak" in m.engines for m in mixes)
    assert len(tags) == len(set(tags))  # no run is trained twice
    # The curve reuses the folds without Piper and without Kokoro as its last two steps.
    order = [m.tag for m in voices.curve_mixes(mixes)]
    assert order == ["espeak", "espeak+mbrola", "espeak+mbrola+rhvoice", "espeak+mbrola+rhvoice+piper",
                     "espeak+mbrola+rhvoice+kokoro"]
    assert [m.tag for m in voices.plan_mixes(curve=False)] == tags[:1 + len(voices.HELD_OUT)]


def _voices_row(mix, seed, accs, right=5):
    return {"mix": mix, "seed": seed, "train_clips": 1000,
            "unheard": {e: {"accuracy": a} for e, a in accs.items()}, "real": {"all": {"right": right, "of": 41}}}


def test_voices_fold_table_gives_each_fold_its_mean_and_its_worst_beside_the_baseline():
    import voices

    engines, held = ("espeak", "mbrola", "kokoro"), ("mbrola", "kokoro")
    rows = [_voices_row("espeak", 0, {"mbrola": 0.5, "kokoro": 0.3}, right=2),
            _voices_row("espeak+kokoro", 0, {"mbrola": 0.8}), _voices_row("espeak+kokoro", 1, {"mbrola": 0.6}),
            _voices_row("espeak+mbrola", 0, {"kokoro": 0.4}), _voices_row("espeak+mbrola", 1, {"kokoro": 0.5})]
    lines = voices.fold_table(rows, held, engines).splitlines()
    assert lines[2].startswith("| MBROLA | espeak-ng, Kokoro | 70.0 (80.0, 60.0) | 50.0 |")
    assert lines[3].startswith("| Kokoro | espeak-ng, MBROLA | 45.0 (40.0, 50.0) | 30.0 |")
    assert lines[4] == "| **mean** | | **57.5** | 40.0 |"
    assert lines[5] == "| **worst** | | **45.0** (Kokoro) | 30.0 (Kokoro) |"
    assert "MBROLA fold 5/41, 5/41" in lines[6] and lines[6].endswith("| 2/41 |")


def test_voices_curve_table_marks_the_engines_a_step_trained_on(tmp_path):
    import voices

    mixes = voices.plan_mixes()
    rows = [_voices_row(m.tag, 0, {e: 0.5 for e in m.unheard()}) for m in mixes]
    lines = voices.curve_table(rows, voices.curve_mixes(mixes)).splitlines()
    assert len(lines) == 2 + 5
    assert lines[2] == "| espeak-ng | 1,000 | 50.0 | 50.0 | 5/41 |"
    assert lines[5].startswith("| espeak-ng + MBROLA + RHVoice + Piper | 1,000 | 50.0 | trained on |")
    assert lines[6].startswith("| espeak-ng + MBROLA + RHVoice + Kokoro | 1,000 | trained on | 50.0 |")


def test_voices_control_is_the_first_engine_alone_with_its_own_pool_and_column():
    import voices

    mixes = voices.plan_mixes(control=210)
    control = [m for m in mixes if m.kind == "control"]
    assert [(m.tag, m.unheard()) for m in control] == [("espeak-210sp", voices.HELD_OUT)]
    assert "espeak-210sp" not in [m.tag for m in voices.curve_mixes(mixes)]
    rows = [_voices_row(m.tag, 0, {e: 0.5 for e in m.unheard()}) for m in mixes]
    rows[mixes.index(control[0])]["unheard"] = {e: {"accuracy": 0.6} for e in voices.HELD_OUT}
    lines = voices.fold_table(rows, control=210).splitlines()
    assert lines[0].endswith("| espeak-ng-only model on it | espeak-ng-only, 210 speakers, on it |")
    assert lines[2].endswith("| 50.0 | 50.0 | 60.0 |")
    assert lines[-3] == "| **mean** | | **50.0** | 50.0 | 60.0 |"


def test_every_name_a_study_imports_from_kwspi_exists():
    """A study imports kwspi inside main() to stay light, so a renamed function breaks it
    only when someone runs it for hours of work; this reads every ``from kwspi... import``."""
    import ast
    import importlib

    studies = Path(__file__).resolve().parent.parent / "studies"
    for script in sorted(studies.rglob("*.py")):
        for node in ast.walk(ast.parse(script.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("kwspi"):
                module = importlib.import_module(node.module)
                for alias in node.names:
                    if not hasattr(module, alias.name):  # a submodule is there once imported
                        importlib.import_module(f"{node.module}.{alias.name}")


def test_recipe_ingredients_change_only_their_settings_and_pools(tmp_path):
    import recipe
    from kwspi.train.config import DataConfig, TrainConfig, TrainRun

    ing = recipe.Ingredient.parse('both:train.lr=0.05,data.augment=["speed","eq"]+pool=ctx+shared=people')
    assert ing.name == "both" and ing.pools == (Path("ctx"),) and ing.shared == (Path("people"),)
    run = TrainRun(arch="dscnn-s", out=tmp_path, data=DataConfig(data=tmp_path), train=TrainConfig(seed=3))
    changed = ing.apply(run)
    assert changed.train == TrainConfig(seed=3, lr=0.05)
    assert changed.data == DataConfig(data=tmp_path, augment=("speed", "eq"))
    assert recipe.Ingredient.parse("one:data.augment=speed").apply(run).data.augment == ("speed",)
    with pytest.raises(SystemExit, match="no field 'lr_typo'"):
        recipe.Ingredient.parse("bad:train.lr_typo=1").apply(run)
    with pytest.raises(SystemExit, match="NAME:CHANGE"):
        recipe.Ingredient.parse("nothing")


def test_recipe_adds_a_pool_only_for_the_engines_a_fold_trains_on(tmp_path):
    import recipe
    import voices

    pools = {}
    for e in voices.ENGINES:
        pools[e] = make_gsc(tmp_path / "voices" / e, words=("yes",), n_speakers=1, layout="v2")
        make_gsc(tmp_path / "ctx" / e, words=("yes",), n_speakers=1, layout="v2")
        for wav in (tmp_path / "ctx" / e).rglob("*.wav"):
            wav.rename(wav.with_name(f"{e}-ctx-{wav.name}"))
        for wav in pools[e].rglob("*.wav"):
            wav.rename(wav.with_name(f"{e}-{wav.name}"))

    class Args:
        work = tmp_path / "work"

    ing = recipe.Ingredient.parse(f"ctx:+pool={tmp_path / 'ctx'}")
    recipe.build_mixes(Args, [ing], pools)
    for fold in recipe.folds():
        names = {p.name.split("-")[0] + ("-ctx" if "-ctx-" in p.name else "")
                 for p in recipe.mix_dir(Args, ing, fold).glob("yes/*.wav")}
        assert names == set(fold.engines) | {f"{e}-ctx" for e in fold.engines}
    people = recipe.Ingredient.parse(f"people:+shared={tmp_path / 'ctx' / 'kokoro'}")
    recipe.build_mixes(Args, [people], pools)
    for fold in recipe.folds():  # a shared folder goes to every fold, the one without Kokoro too
        assert any("kokoro-ctx-" in p.name for p in recipe.mix_dir(Args, people, fold).glob("yes/*.wav"))


def test_recipe_figures_are_the_folds_mean_and_worst():
    import recipe

    def row(engine, seed, acc):
        return {"ingredient": "tf", "held_out": engine, "seed": seed, "unheard": {"accuracy": acc, "n": 100},
                "real": {"all": {"right": 4 + seed, "of": 41}}}

    rows = [row("mbrola", 0, 0.6), row("mbrola", 1, 0.8), row("kokoro", 0, 0.5), row("kokoro", 1, 0.4),
            {"ingredient": "baseline", "held_out": "kokoro", "seed": 0, "unheard": {"accuracy": 0.1, "n": 1},
             "real": None}]
    figures = recipe.figures(rows, "tf")
    folds = figures["held-out engines (leave-one-engine-out folds of this recipe)"]
    assert folds["per_engine"] == {"mbrola": 0.7, "kokoro": 0.45}
    assert folds["mean"] == 0.575 and folds["worst"] == 0.45 and folds["worst_engine"] == "kokoro"
    assert figures["real voices (fold models, never trained on)"] == {"right": 4.5, "of": 41}


def test_recipe_stream_figures_use_the_unmined_negatives_and_the_worst_engine():
    import recipe

    def row(engine, seed, fa, other, recall):
        sweep = [{"threshold": 0.5, "fa_per_hour": fa * 2, "recall": recall + 0.1, "other_fa_per_hour": other * 2},
                 {"threshold": 0.8, "fa_per_hour": fa, "recall": recall, "other_fa_per_hour": other},
                 {"threshold": 0.99, "fa_per_hour": 30.0, "recall": 0.05, "other_fa_per_hour": 50.0}]
        return {"ingredient": "m", "held_out": engine, "seed": seed, "unheard": {"accuracy": 0.5, "n": 10},
                "real": None,
                "stream": {"thresholds": {"yes": 0.8, "no": 0.8}, "fa_per_hour": fa, "other_fa_per_hour": other,
                           "recall": recall, "bar": 60.0, "keywords_spoken": 100, "sweep": sweep}}

    rows = [row("mbrola", 0, 300.0, 200.0, 0.4), row("mbrola", 1, 100.0, 100.0, 0.2),
            row("kokoro", 0, 500.0, 400.0, 0.3), row("kokoro", 1, 500.0, 400.0, 0.3)]
    got = recipe.figures(rows, "m")[recipe.STREAM_FIGURES]
    assert got["negatives"] == "keyword-free talk of text no model mined"
    assert got["per_engine"]["mbrola"] == {"fa_per_hour": 150.0, "recall": 0.3, "recall_at_bar": 0.05}
    assert got["fa_per_hour"] == 275.0 and got["fa_per_hour_worst"] == 400.0
    assert got["recall"] == 0.3 and got["recall_worst"] == 0.3 and got["thresholds"] == [0.8]
    at_half = recipe.figures(rows, "m", threshold=0.5)[recipe.STREAM_FIGURES]  # the threshold shipped
    assert at_half["thresholds"] == [0.5] and at_half["fa_per_hour"] == 550.0 and at_half["recall"] == 0.4
    for r in rows:  # without the unmined stream, the mined one counts
        del r["stream"]["other_fa_per_hour"]
    assert recipe.figures(rows, "m")[recipe.STREAM_FIGURES]["fa_per_hour"] == 350.0


def test_streams_cli_makes_each_engines_stream_once(tmp_path, capsys):
    import streams

    from kwspi.deploy.evaluation.truth import read_truth

    streams.main([str(tmp_path), "espeak:6", "--negative", "--seed", "3", "--text", "training"])
    wav = tmp_path / "espeak.wav"
    truth = read_truth(wav.with_suffix(".csv"))
    assert truth and not [t for t in truth if t.label in gsc.KEYWORDS]
    made = wav.stat().st_mtime_ns
    streams.main([str(tmp_path), "espeak:6", "--negative"])
    assert wav.stat().st_mtime_ns == made and capsys.readouterr().out.endswith("espeak.wav: already there\n")
    with pytest.raises(SystemExit):
        streams.main([str(tmp_path), "espeak"])
    assert "want ENGINE:SECONDS" in capsys.readouterr().err


def test_fold_steps_of_two_nets_in_one_work_folder_keep_their_own_records(tmp_path):
    import recipe

    def args(arch):
        return type("Args", (), {"work": tmp_path, "arch": arch, "epochs": 1, "batch_size": 10, "lr": 0.1,
                                 "views": 1})

    fold = recipe.folds()[0]
    a, b = (recipe.fold_steps(args(arch), recipe.BASELINE, fold, 0, tmp_path / "mix")
            for arch in ("dscnn-s", "dscnn-m"))
    assert not {s.name for s in a} & {s.name for s in b}
    assert {s.name for s in a} == {s.name for s in recipe.fold_steps(args("dscnn-s"), recipe.BASELINE, fold, 0,
                                                                       tmp_path / "mix")}


def test_fold_steps_of_two_arch_files_with_one_name_keep_their_own_records(tmp_path):
    # Session 9: two searched nets both saved as arch.json shared a fold's records.
    import recipe

    def args(arch):
        return type("Args", (), {"work": tmp_path, "arch": arch, "epochs": 1, "batch_size": 10, "lr": 0.1,
                                 "views": 1})

    files = []
    for run, cells in (("a", ["k3e1"]), ("b", ["k5e6"]), ("c", ["k3e1"])):
        (tmp_path / run).mkdir()
        files.append(tmp_path / run / "arch.json")
        files[-1].write_text(json.dumps({"kind": "mbconv", "cells": cells, "width_mult": 0.75}))
    fold = recipe.folds()[0]
    a, b, c = ({s.name for s in recipe.fold_steps(args(f), recipe.BASELINE, fold, 0, tmp_path / "mix")}
               for f in files)
    assert not a & b
    assert a == c  # the same net under the same name keeps its records wherever the file lies
    assert all(name.startswith("arch-") for name in a)
