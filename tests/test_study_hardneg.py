"""studies/streams.py and studies/hardneg.py: the stream yardstick and mining without a leak."""

from __future__ import annotations

import sys
from pathlib import Path

from conftest import make_gsc

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "studies"))


def test_operating_point_is_the_lowest_threshold_under_the_bar_with_the_keyword_streams_recall():
    import streams

    sweep = [{"threshold": t, "fa_per_hour": fa, "recall": r}
             for t, fa, r in ((0.9, 50.0, 0.6), (0.5, 300.0, 0.9), (0.8, 60.0, 0.7), (0.95, 0.0, 0.2))]
    assert streams.operating_point(sweep, 60.0) == {"threshold": 0.8, "fa_per_hour": 60.0, "recall": 0.7}
    assert streams.operating_point(sweep, 0.0)["threshold"] == 0.95
    assert streams.operating_point(sweep[:3], 10.0) is None


def test_stream_table_gives_each_fold_and_the_mean_and_worst():
    import streams

    def row(name, engine, seed, fa, recall, at):
        return {"ingredient": name, "held_out": engine, "seed": seed,
                "stream": {"bar": 60.0, "fa_per_hour": fa, "recall": recall,
                           "at_bar": None if at is None else {"recall": at}}}

    rows = [row("baseline", "mbrola", 0, 400.0, 0.6, 0.2), row("baseline", "mbrola", 1, 200.0, 0.4, None),
            row("baseline", "kokoro", 0, 100.0, 0.8, 0.5), {"ingredient": "x", "held_out": "kokoro", "seed": 0}]
    text = streams.table(rows, ["baseline", "x"], ["mbrola", "kokoro"], {"mbrola": "MBROLA", "kokoro": "Kokoro"})
    line = next(ln for ln in text.splitlines() if ln.startswith("| baseline"))
    # MBROLA: 300 FA/h, recall 0.50, at the bar 0.10 (no threshold there counts as recall 0)
    assert line == "| baseline | 300 · 0.50 · 0.10 | 100 · 0.80 · 0.50 | 200 · 0.65 · 0.30 | 300 · 0.50 · 0.10 |"
    assert "| x |" not in text  # no stream scored: no line


def test_pooled_weights_recall_by_keywords_and_false_alarms_by_hours():
    import streams

    def score(hours, words, rows):
        return {"neg_hours": hours, "keywords_spoken": words,
                "sweep": [{"threshold": t, "fa_per_hour": fa, "recall": r} for t, fa, r in rows]}

    a = score(0.5, 30, [(0.5, 100.0, 0.9), (0.9, 20.0, 0.5)])
    b = score(0.25, 10, [(0.5, 400.0, 0.5), (0.9, 80.0, 0.1)])
    got = streams.pooled([a, b])
    assert got == [{"threshold": 0.5, "fa_per_hour": 200.0, "recall": 0.8},
                   {"threshold": 0.9, "fa_per_hour": 40.0, "recall": 0.4}]
    assert streams.recall_at(got, 60.0) == 0.4


def test_stream_scores_a_model_on_an_engines_two_streams(tmp_path):
    import streams
    from kwspi.modelinfo import bundled_model_path

    streams.make_stream(tmp_path / "neg" / "espeak.wav", "espeak", 6, negative=True)
    streams.make_stream(tmp_path / "pos" / "espeak.wav", "espeak", 6, negative=False)
    pair = streams.stream_pair(tmp_path / "neg", tmp_path / "pos", "espeak")
    assert pair and streams.stream_pair(tmp_path / "neg", tmp_path / "pos", "piper") is None
    streams.make_stream(tmp_path / "other" / "espeak.wav", "espeak", 6, negative=True, other_text=True)
    said = {line.split(",")[0] for line in (tmp_path / "neg" / "espeak.csv").read_text().splitlines()[1:]}
    other = {line.split(",")[0] for line in (tmp_path / "other" / "espeak.csv").read_text().splitlines()[1:]}
    assert other and said and other != said
    got = streams.score_streams(bundled_model_path(), *pair, bar=1e6, other=tmp_path / "other" / "espeak.wav")
    assert got["keywords_spoken"] >= 1 and 0 <= got["recall"] <= 1 and got["fa_per_hour"] >= 0
    assert got["at_bar"]["threshold"] == 0.3  # every threshold is under a bar that high
    assert got["other_fa_per_hour"] >= 0 and all("other_fa_per_hour" in r for r in got["sweep"])


def test_a_fold_mines_only_the_streams_of_the_engines_it_trains_on(tmp_path):
    import hardneg
    import recipe
    import voices

    for e in voices.ENGINES:
        (tmp_path / f"{e}.wav").write_bytes(b"")

    class Args:
        neg_streams = tmp_path

    for fold in recipe.folds():
        got = {p.stem for p in hardneg.negative_streams(Args, fold)}
        assert got == set(fold.engines) and fold.unheard()[0] not in got


def test_each_round_is_mined_by_the_round_before_and_names_its_settings():
    import hardneg
    import recipe

    unk = recipe.Ingredient.parse("unk3:data.unknown_fraction=0.3")
    todo = hardneg.variants(2, [unk], with_rounds=2)
    assert [v.name for v in todo] == ["mine1", "mine2", "mine1+unk3", "mine2+unk3"]
    assert todo[0].miner() == recipe.BASELINE and todo[2].miner() == recipe.BASELINE
    assert todo[1].miner().name == "mine1" and todo[3].miner().name == "mine1+unk3"
    assert todo[2].apply(_run(tmp=Path("."))).data.unknown_fraction == 0.3

    class Args:
        work = Path("w")
        arch, epochs, batch_size, lr, views = "dscnn-s", 1, 10, 0.1, 1

    fold = recipe.folds()[0]
    plain, chained = todo[1].clips(Args, fold, 0), todo[3].clips(Args, fold, 0)
    assert plain[0] == chained[0] == todo[2].clips(Args, fold, 0)[0]  # round 1: one set of clips for all
    assert plain[1] != chained[1] and "round2+unk3" in str(chained[1])

    # Another clip count is another recipe: its own name, its own clips in every round, and
    # each of its rounds mined by the same count's round before.
    both = hardneg.variants(2, [], counts=(hardneg.MAX_CLIPS, 2000))
    assert [v.name for v in both] == ["mine1", "mine2", "mine1x2000", "mine2x2000"]
    assert both[3].miner() == both[2]
    assert not set(both[1].clips(Args, fold, 0)) & set(both[3].clips(Args, fold, 0))


def _run(tmp):
    from kwspi.train.config import DataConfig, TrainRun

    return TrainRun(arch="dscnn-s", out=tmp, data=DataConfig(data=tmp))


def test_a_mined_recipe_trains_on_the_fold_and_the_clips_of_each_of_its_rounds(tmp_path):
    import hardneg
    import recipe
    import voices

    pools = {}
    for e in voices.ENGINES:
        pools[e] = make_gsc(tmp_path / "voices" / e, words=("yes",), n_speakers=1, layout="v2")
        for wav in pools[e].rglob("*.wav"):
            wav.rename(wav.with_name(f"{e}-{wav.name}"))

    class Args:
        work = tmp_path / "work"
        arch, epochs, batch_size, lr, views = "dscnn-s", 1, 10, 0.1, 1

    fold = recipe.folds()[0]
    for r in (1, 2):
        make_gsc(hardneg.mined_dir(Args, fold, 0, r), words=("mined",), n_speakers=1, layout="v2")
        for wav in hardneg.mined_dir(Args, fold, 0, r).rglob("*.wav"):
            wav.rename(wav.with_name(f"r{r}-{wav.name}"))
    two = hardneg.Mined(recipe.BASELINE, 2)
    mix = hardneg.build_mix(Args, two, fold, 0, pools)
    assert {p.name.split("-")[0] for p in mix.glob("mined/*.wav")} == {"r1", "r2"}
    assert {p.name.split("-")[0] for p in mix.glob("yes/*.wav")} == set(fold.engines)
    steps = recipe.fold_steps(Args, two, fold, 0, mix)
    tag = f"dscnn-s-e1-b10-lr0.1-v1/mine2/{fold.tag}-seed0"
    assert [s.name for s in steps] == [f"{tag}/train", f"{tag}/export"]
    assert str(mix) in steps[0].argv

    # A recipe with folders of its own trains on them when mined too: the ingredient's pool of
    # the fold's engines (never the held-out engine's) and its shared folder.
    for e in voices.ENGINES:
        for wav in make_gsc(tmp_path / "tf" / e, words=("yes",), n_speakers=1, layout="v2").rglob("*.wav"):
            wav.rename(wav.with_name(f"tf{e}-{wav.name}"))
    make_gsc(tmp_path / "shared", words=("other",), n_speakers=1, layout="v2")
    tf = recipe.Ingredient.parse(f"tf:+pool={tmp_path / 'tf'},+shared={tmp_path / 'shared'}")
    mix = hardneg.build_mix(Args, hardneg.Mined(tf, 1), fold, 0, pools)
    assert {p.name.split("-")[0] for p in mix.glob("yes/*.wav")} == set(fold.engines) | {f"tf{e}" for e in fold.engines}
    assert {p.parent.name for p in mix.glob("*/*.wav")} >= {"mined", "other"}
    assert not list(mix.glob(f"yes/tf{fold.unheard()[0]}-*"))


def test_a_fold_without_the_stream_of_an_engine_it_trains_on_stops(tmp_path):
    import hardneg
    import pytest
    import recipe

    class Args:
        neg_streams = tmp_path

    with pytest.raises(SystemExit, match="no keyword-free stream"):
        hardneg.negative_streams(Args, recipe.folds()[0])


def test_recall_at_a_bar_is_read_from_the_sweep_and_is_zero_where_no_threshold_gets_there():
    import streams

    sweep = [{"threshold": 0.5, "fa_per_hour": 500.0, "recall": 0.6}, {"threshold": 0.9, "fa_per_hour": 100.0,
                                                                      "recall": 0.3}]
    assert streams.recall_at(sweep, 600) == 0.6 and streams.recall_at(sweep, 100) == 0.3
    assert streams.recall_at(sweep, 50) == 0.0

    def row(engine, seed, recall):
        return {"ingredient": "a", "held_out": engine, "seed": seed,
                "stream": {"sweep": [{"threshold": 0.9, "fa_per_hour": 100.0, "recall": recall}]}}

    text = streams.bar_table([row("mbrola", 0, 0.2), row("mbrola", 1, 0.4), row("kokoro", 0, 0.1)], ["a"],
                             ["mbrola", "kokoro"], bars=(50, 100))
    assert text.splitlines()[-1] == "| a | 0.00 (0.00) · 0.00/0.00 | 0.20 (0.10) · 0.15/0.40 |"


def test_clips_mined_under_another_score_bar_are_not_reused(tmp_path):
    import hardneg
    import pytest
    import recipe

    from kwspi.deploy.evaluation.mining import MANIFEST

    class Args:
        work = tmp_path
        arch, epochs, batch_size, lr, views = "dscnn-s", 1, 10, 0.1, 1
        min_score = 0.5

    fold, v = recipe.folds()[0], hardneg.Mined(recipe.BASELINE, 1)
    out = v.clips(Args, fold, 0)[-1]
    out.mkdir(parents=True)
    (out / MANIFEST).write_text("")
    (out / "mining.json").write_text('{"clips": 3, "min_score": 0.3}')
    with pytest.raises(SystemExit, match="--min-score 0.3"):
        hardneg.mine_round(Args, fold, 0, v)
    Args.min_score = 0.3
    assert hardneg.mine_round(Args, fold, 0, v)["clips"] == 3
