import json
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from kwspi.errors import KwspiError
from kwspi.modelinfo import read_info
from kwspi.train.cli import sweep
from kwspi.train.config import SweepConfig
from kwspi.settings import REQUIRED, Config, setting
from kwspi.train.executors import LocalExecutor
from kwspi.train.sweep import Step, plan, run_steps, step_keys, step_state, write_record
from kwspi.train.sweep_report import markdown_table, pareto_notes, plot
from conftest import make_gsc


def cfg(**kw):
    return SweepConfig(data=Path("d"), runs=Path("r"), results=Path("res"), **kw)


def test_plan_shares_one_warmup_per_width_and_cepstra():
    steps = plan(cfg(betas=(0.0, 16.0), width_mults=(0.5,), n_mfccs=(10, 20), baselines=("dscnn-s",)))
    names = [s.name for s in steps]
    assert len(names) == len(set(names)) and len({s.done for s in steps}) == len(steps)
    warmups = [s for s in steps if s.name.startswith("warmup")]
    assert [s.name for s in warmups] == ["warmup-w0.5-c10", "warmup-w0.5-c20"]
    for s in steps:  # a step comes after every step it needs
        assert all(names.index(a) < names.index(s.name) for a in s.after)
    search = next(s for s in steps if s.name == "nas-w0.5-c20-b16/search")
    assert search.after == ("warmup-w0.5-c20",)
    assert search.config.warmup_from == Path("r/warmup-w0.5-c20/supernet.pt") and search.config.search.beta == 16
    assert search.argv[search.argv.index("--beta") + 1] == "16.0" and "--search-epochs" in search.argv
    retrain = next(s for s in steps if s.name == "nas-w0.5-c20-b16/train")
    assert retrain.config.init_from == Path("r/nas-w0.5-c20-b16/search/inherited.pt")
    assert retrain.argv[retrain.argv.index("--init-from") + 1] == str(retrain.config.init_from)
    # two numbers of cepstra: one baseline each, named apart
    assert {s.name for s in steps if s.name.startswith("dscnn")} == {
        "dscnn-s-c10/train", "dscnn-s-c10/export", "dscnn-s-c20/train", "dscnn-s-c20/export"}
    export = next(s for s in steps if s.name == "dscnn-s-c20/export")
    assert export.done == Path("res/models/dscnn-s-c20.onnx") and export.after == ("dscnn-s-c20/train",)


def test_plan_names_one_cepstra_baselines_as_the_issue_does():
    steps = plan(cfg(betas=(), baselines=("dscnn-s", "dscnn-l")))
    assert [s.done.name for s in steps if s.name.endswith("export")] == ["dscnn-s.onnx", "dscnn-l.onnx"]
    with pytest.raises(KwspiError, match="dscnn-x"):
        cfg(baselines=("dscnn-x",))


def touch_command(argv):
    """A stand-in for `kwspi ARGV`: ("touch", path) writes path; ("fail",) exits 1;
    ("touch", "--out", DIR, ...) writes DIR/done and notes each run in DIR/runs."""
    if argv[0] == "fail":
        return [sys.executable, "-c", "raise SystemExit(1)"]
    if argv[1] == "--out":
        out = Path(argv[2])
        return [sys.executable, "-c", f"import pathlib; d = pathlib.Path({str(out)!r}); d.mkdir(exist_ok=True); "
                                      "(d / 'done').write_text('x'); open(d / 'runs', 'a').write('run\\n')"]
    return [sys.executable, "-c", f"import time; time.sleep(0.2); open({argv[1]!r}, 'w').write('x')"]


@dataclass(frozen=True)
class Touch(Config):
    """A config whose command writes OUT/done: a step with a run folder, as search and train have."""

    COMMAND = "touch"
    out: Path = setting(REQUIRED, "Run folder.")
    size: int = setting(1, "A setting that changes the key.")


def test_run_steps_runs_in_order_skips_what_is_done_and_stops_behind_a_failure(tmp_path):
    p = {n: tmp_path / n for n in "abcdef"}
    p["a"].write_text("done before")
    steps = [Step("a", ("touch", str(p["a"])), p["a"]),
             Step("b", ("touch", str(p["b"])), p["b"], ("a",)),
             Step("c", ("touch", str(p["c"])), p["c"], ("b",)),
             Step("d", ("fail",), p["d"]),
             Step("e", ("touch", str(p["e"])), p["e"], ("d",)),
             Step("f", ("touch", str(p["f"])), p["f"])]
    records = tmp_path / "steps"
    write_record(records, steps[0], step_keys(steps)["a"])  # a finished in an earlier run
    lines = []
    failed = run_steps(steps, tmp_path / "logs", LocalExecutor(2, command=touch_command), records, lines.append)
    assert sorted(failed) == ["d", "e"]
    assert p["a"].read_text() == "done before"  # skipped, not rerun
    assert p["b"].exists() and p["c"].exists() and p["f"].exists() and not p["e"].exists()
    started = [line.split("] ")[1].split(" (local, ")[0] for line in lines if line.startswith("[")]
    assert started.index("b") < started.index("c") and "a" not in started and "e" not in started
    assert (tmp_path / "logs" / "d.log").exists()
    assert {r.stem for r in records.glob("*.json")} == {"a", "b", "c", "f"}  # failures leave no record
    record = json.loads((records / "b.json").read_text())
    assert record["command"] == ["kwspi", "touch", str(p["b"])] and record["key"] == step_keys(steps)["b"]


def test_a_changed_config_reruns_its_step_and_those_after_it_and_a_killed_step_resumes(tmp_path):
    def steps(size):
        first = Step.of("first", Touch(out=tmp_path / "first", size=size), tmp_path / "first" / "done")
        return [first, Step.of("second", Touch(out=tmp_path / "second"), tmp_path / "second" / "done", ("first",))]

    def run(plan):
        lines = []
        assert run_steps(plan, tmp_path / "logs", LocalExecutor(1, command=touch_command), echo=lines.append) == []
        return lines

    run(steps(1))
    assert run(steps(1)) == ["2 of 2 steps already done"]
    records = tmp_path / "steps"
    states = lambda plan: [step_state(s, step_keys(plan)[s.name], records) for s in plan]  # noqa: E731
    assert states(steps(2)) == ["changed", "changed"]  # the second's input changed with the first's config
    lines = run(steps(2))
    assert sum("ran with other settings" in line for line in lines) == 2
    for name in ("first", "second"):  # the old runs are kept aside, the new ones start afresh
        old = json.loads((records / f"{name}.json").read_text())
        assert (tmp_path / name / "runs").read_text() == "run\n"
        assert len(list(tmp_path.glob(f"{name}.stale-*"))) == 1
    assert old["config"]["out"] == str(tmp_path / "second") and states(steps(2)) == ["done", "done"]
    (records / "second.json").unlink()  # killed before it finished: no record, so it runs again and resumes
    assert states(steps(2)) == ["done", "to run"]
    run(steps(2))
    assert (tmp_path / "second" / "runs").read_text() == "run\nrun\n"  # in the same folder, not moved aside


def test_dry_run_prints_every_step_its_command_and_what_it_asks_for_and_runs_nothing(tmp_path):
    data = make_gsc(tmp_path / "gsc", words=("yes", "no"), n_speakers=6)
    result = CliRunner().invoke(sweep, ["--data", str(data), "--runs", str(tmp_path / "runs"), "--betas", "4",
                                        "--baselines", "dscnn-s", "--executor", "ray", "--gpus-per-step", "1",
                                        "--cpus-per-step", "4", "--dry-run"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "warmup-w0.5-c10 [to run] asks for 1 GPU, 4 CPUs"
    assert lines[1].startswith(f"    kwspi search --out {tmp_path / 'runs' / 'warmup-w0.5-c10'} --data {data}")
    assert "nas-w0.5-c10-b4/export [to run] asks for 4 CPUs; after nas-w0.5-c10-b4/train" in lines  # no GPU
    assert lines[-1] == "6 steps on the ray executor; nothing run (--dry-run)"
    assert not (tmp_path / "runs").exists()


def test_execution_settings_are_checked_in_one_line():
    for kw, flag in [({"address": "auto"}, "--address"), ({"partition": "gpu"}, "--partition"),
                     ({"gpus_per_step": 1}, "--gpus-per-step")]:
        with pytest.raises(KwspiError, match=flag):
            cfg(**kw)


def rows():
    def row(model, kind, macs, spk, fam):
        return {"model": model, "kind": kind, "arch": "dscnn-s" if kind == "dscnn" else ["k3e1"] * 12,
                "width_mult": None if kind == "dscnn" else 0.5, "n_mfcc": 10, "macs": macs, "params": 1000,
                "weight_bytes": 1000, "paper_kb": 2.1, "int8_bytes": 5000, "accuracy_heldout_speakers": spk,
                "accuracy_heldout_families": fam}
    return [row("dscnn-s", "dscnn", 2.7e6, 0.97, 0.90), row("dscnn-m", "dscnn", 9.8e6, 0.99, 0.95),
            row("nas-a", "nas", 2.0e6, 0.975, 0.89), row("nas-b", "nas", 12e6, 0.995, 0.97)]


def test_pareto_notes_name_the_nas_models_that_match_each_baseline():
    notes = pareto_notes(rows(), "accuracy_heldout_speakers")
    assert notes[0].startswith("dscnn-s (2.70 M MACs, 97.00%): matched by 1 NAS model")
    assert "best nas-a" in notes[0]
    assert notes[1].startswith("dscnn-m") and "no NAS model at or below its MACs" in notes[1]  # nas-b costs more
    fam = pareto_notes(rows(), "accuracy_heldout_families")
    assert "no NAS model" in fam[0]  # nas-a is cheaper but less accurate on unheard voices


def test_table_is_sorted_by_macs_and_the_plot_is_a_png(tmp_path):
    table = markdown_table(rows()).splitlines()
    assert [line.split("|")[1].strip() for line in table[2:]] == ["nas-a", "dscnn-s", "dscnn-m", "nas-b"]
    plot(rows(), tmp_path / "p.png", "t")
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_tiny_sweep_end_to_end(tmp_path):
    data = make_gsc(tmp_path / "gsc", words=("yes", "no", "bed"), n_speakers=12)
    heldout = make_gsc(tmp_path / "heldout", words=("yes", "no"), n_speakers=4)
    args = ["--data", str(data), "--runs", str(tmp_path / "runs"), "--results", str(tmp_path / "res"),
            "--betas", "16", "--width-mults", "0.125", "--baselines", "dscnn-s", "--keywords", "yes,no",
            "--warmup-epochs", "1", "--search-epochs", "1", "--retrain-epochs", "1", "--batch-size", "10",
            "--eval-data", str(heldout), "-j", "2"]
    result = CliRunner().invoke(sweep, args)
    assert result.exit_code == 0, result.output + "".join(
        p.read_text()[-2000:] for p in (tmp_path / "runs" / "logs").glob("*.log"))
    got = json.loads((tmp_path / "res" / "sweep.json").read_text())
    assert sorted(r["model"] for r in got) == ["dscnn-s", "nas-w0.125-c10-b16"]
    nas = next(r for r in got if r["kind"] == "nas")
    searched = json.loads((tmp_path / "runs" / "nas-w0.125-c10-b16" / "search" / "arch.json").read_text())
    assert nas["arch"] == searched["cells"]
    info = read_info(tmp_path / "res" / "models" / "nas-w0.125-c10-b16.onnx")
    assert info.macs == nas["macs"] and "heldout/all" in info.metrics
    assert all(r["accuracy_heldout_families"] is not None for r in got)
    assert (tmp_path / "res" / "sweep.png").exists() and "| dscnn-s |" in (tmp_path / "res" / "sweep.md").read_text()
    again = CliRunner().invoke(sweep, args)  # everything is done: nothing runs again
    assert again.exit_code == 0 and "6 of 6 steps already done" in again.output
