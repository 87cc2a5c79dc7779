"""The same tiny sweep on every executor gives the same table.

Two steps (a DS-CNN trained for one epoch on tiny data, then its export, which must wait for
it) run with the local executor, on a local Ray instance with 2 CPUs, and through submitit's
local executor (the SLURM path without SLURM). Every step asks for one CPU, so each trains
with one thread everywhere and the results are the same to the last bit.
"""

import json
import os
import shutil
import subprocess
import sys

import pytest
from click.testing import CliRunner

from kwspi.errors import KwspiError, MissingDependency
from kwspi.train.cli import sweep
from kwspi.train.config import DataConfig, ExportRun, SweepConfig, TrainRun
from kwspi.train.executors import RayExecutor, Resources, SubmititExecutor, make_executor, planned_resources
from kwspi.train.sweep import Step, run_steps
from conftest import make_gsc


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_gsc(tmp_path_factory.mktemp("gsc") / "gsc", words=("yes", "no", "bed"), n_speakers=8)


def run_sweep(data, root, *executor):
    args = ["--data", str(data), "--runs", str(root / "runs"), "--results", str(root / "res"), "--betas", "",
            "--baselines", "dscnn-s", "--keywords", "yes,no", "--retrain-epochs", "1", "--batch-size", "10",
            "--cpus-per-step", "1", *executor]
    result = CliRunner().invoke(sweep, args)
    logs = "".join(p.read_text()[-2000:] for p in (root / "runs" / "logs").glob("*.log"))
    assert result.exit_code == 0, result.output + logs
    name = executor[-1] if executor else "local"  # both steps ran there, the export after the training
    assert f"[1/2] dscnn-s/train ({name}, 1 CPU): kwspi train dscnn-s" in result.output
    assert f"[2/2] dscnn-s/export ({name}, 1 CPU): kwspi export" in result.output
    table = [line for line in (root / "res" / "sweep.md").read_text().splitlines() if line.startswith("|")]
    return json.loads((root / "res" / "sweep.json").read_text()), table  # sweep.md's preamble names the folders


@pytest.fixture(scope="module")
def local(data, tmp_path_factory):
    return run_sweep(data, tmp_path_factory.mktemp("local"))


@pytest.fixture(scope="module")
def ray_here():
    """A local Ray instance with 2 CPUs, which the ray executor joins instead of starting one."""
    ray = pytest.importorskip("ray", reason="the ray executor needs ray: pip install 'kwspi[cluster]'")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # tests reach no server
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_a_local_ray_instance_gives_the_local_executors_table(data, local, ray_here, tmp_path):
    assert run_sweep(data, tmp_path, "--executor", "ray") == local
    assert (tmp_path / "runs" / "logs" / "dscnn-s--train.log").read_text()  # the step's output, as locally
    records = sorted(p.name for p in (tmp_path / "runs" / "steps").iterdir())
    assert records == ["dscnn-s--export.json", "dscnn-s--train.json"]


def test_submitits_local_executor_gives_the_local_executors_table(data, local, tmp_path):
    pytest.importorskip("submitit", reason="the slurm executor needs submitit: pip install 'kwspi[cluster]'")
    assert run_sweep(data, tmp_path, "--executor", "submitit-local") == local
    assert list((tmp_path / "runs" / "logs" / "submitit").glob("*_log.out"))  # submitit's own logs, in the runs


@pytest.mark.parametrize("engine", ["ray", "submitit-local"])
def test_a_failed_step_is_reported_and_the_step_after_it_never_runs(engine, data, request, tmp_path):
    if engine == "ray":
        request.getfixturevalue("ray_here")
        executor = RayExecutor(cpus=1)
    else:
        pytest.importorskip("submitit", reason="the slurm executor needs submitit: pip install 'kwspi[cluster]'")
        executor = SubmititExecutor(tmp_path / "submitit", cluster="local")
    run = tmp_path / "runs" / "bad"
    steps = [Step.of("bad/train", TrainRun(arch="no-such-arch", out=run, data=DataConfig(data=data)),
                     run / "metrics.json"),
             Step.of("bad/export", ExportRun(checkpoint=run / "checkpoint.pt", out=tmp_path / "bad.onnx"),
                     tmp_path / "bad.onnx", ("bad/train",))]
    lines = []
    assert run_steps(steps, tmp_path / "logs", executor, echo=lines.append) == ["bad/train", "bad/export"]
    assert any("bad/train FAILED (exit 2)" in line for line in lines)  # kwspi's exit for a user error
    assert "no-such-arch" in (tmp_path / "logs" / "bad--train.log").read_text()  # the step's own error
    assert not (tmp_path / "logs" / "bad--export.log").exists() and not (tmp_path / "steps").exists()


def test_each_step_asks_for_its_resources_and_an_export_for_no_gpu():
    cfg = SweepConfig(data="d", executor="ray", gpus_per_step=1, cpus_per_step=4)
    assert planned_resources(cfg) == Resources(4, 1) and str(Resources(4, 1)) == "1 GPU, 4 CPUs"
    assert planned_resources(SweepConfig(data="d", jobs=2), gpus_here=2) == Resources(
        max(1, (os.cpu_count() or 1) // 2), 1)


def test_a_missing_engine_is_one_line_naming_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now fails as if it were not installed
    with pytest.raises(MissingDependency, match=r"^this executor needs ray: pip install 'kwspi\[cluster\]'$"):
        RayExecutor()


def test_slurm_without_slurm_is_one_line(tmp_path):
    pytest.importorskip("submitit", reason="the slurm executor needs submitit: pip install 'kwspi[cluster]'")
    if shutil.which("sbatch"):
        pytest.skip("this machine has SLURM")
    with pytest.raises(KwspiError, match="no SLURM here"):
        make_executor(SweepConfig(data="d", runs=tmp_path, executor="slurm"))
    assert isinstance(make_executor(SweepConfig(data="d", runs=tmp_path, executor="submitit-local")), SubmititExecutor)


PROBE = """
import sys
from click.testing import CliRunner
import kwspi.cli as c
result = CliRunner().invoke(c.main, {args!r})
assert result.exit_code == 0, result.output
print(",".join(sorted(m for m in ("torch", "ray", "submitit") if m in sys.modules)))
"""


def test_help_loads_no_engine_and_a_dry_run_starts_none(tmp_path):
    def loaded(args):
        out = subprocess.run([sys.executable, "-c", PROBE.format(args=args)], capture_output=True, text=True,
                             check=True)
        return out.stdout.strip()

    assert loaded(["--help"]) == "" and loaded(["sweep", "--help"]) == ""
    data = make_gsc(tmp_path / "gsc", words=("yes", "no"), n_speakers=6)
    dry = ["sweep", "--data", str(data), "--runs", str(tmp_path / "runs"), "--executor", "ray", "--dry-run"]
    assert loaded(dry) == ""  # the plan and its resources, without ray (nor torch: no local GPUs to count)
