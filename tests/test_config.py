"""A run is a config and the CLI is a view of it: one default per setting, command lines that
rebuild the config, JSON that round-trips and refuses what it does not know."""

import dataclasses
import hashlib
import logging
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import make_gsc
from kwspi import gsc
from kwspi.errors import KwspiError
from kwspi.options import config_from_options
from kwspi.settings import is_config, value_type
from kwspi.train import cli
from kwspi.train.speech import cli as speech_cli
from kwspi.train.config import DataConfig, ExportRun, SearchConfig, SearchRun, SweepConfig, TrainConfig, TrainRun
from kwspi.train.demo import DemoConfig
from kwspi.train.fit import load_checkpoint
from kwspi.train.speech.stream import StreamConfig
from kwspi.train.speech.synth import SynthConfig

RUNS = {cli.train: TrainRun, cli.search: SearchRun, cli.export: ExportRun, cli.sweep: SweepConfig}


def leaf_fields(cls):
    for f in dataclasses.fields(cls):
        if is_config(value_type(cls, f)):
            yield from leaf_fields(value_type(cls, f))
        else:
            yield f


def test_every_run_option_has_the_dataclass_default():
    for command, cls in RUNS.items():
        params = {p.name: p for p in command.params}
        fields = list(leaf_fields(cls))
        assert fields and {f.name for f in fields} <= set(params), command.name
        for f in fields:
            if f.default is dataclasses.MISSING:
                assert params[f.name].required, (command.name, f.name)
                continue
            default = params[f.name].default
            if isinstance(f.default, tuple) and not params[f.name].multiple:
                default = tuple(type(f.default[0])(v) for v in default.split(",")) if default else ()
            elif params[f.name].multiple:
                default = tuple(default or ())
            assert default == f.default, (command.name, f.name, default, f.default)


@pytest.mark.parametrize("command, config, names", [
    (speech_cli.synth, SynthConfig(), {"n_speakers": "speakers", "repeats": "repeats", "seed": "seed",
                                "noise_seconds": "noise_seconds"}),
    (speech_cli.synth_stream, StreamConfig(), {"seconds": "seconds", "snr_db": "snr_db", "seed": "seed"}),
    (cli.demo, DemoConfig(), {"out_dir": "out_dir", "seconds": "seconds", "seed": "seed", "snr_db": "snr_db"}),
])
def test_data_command_defaults_come_from_their_configs(command, config, names):
    params = {p.name: p for p in command.params}
    for option, field in names.items():
        assert params[option].default == getattr(config, field), option


def parse(command, argv):
    """The config click builds from ``argv``, as the command itself would."""
    ctx = command.make_context(command.name, list(argv))
    return config_from_options(RUNS[command], dict(ctx.params))


@pytest.mark.parametrize("config", [
    TrainRun(arch="dscnn-s", out=Path("runs/a"), data=DataConfig(data=Path("."), n_mfcc=20, augment=("speed", "eq"),
                                                                 keywords=("yes", "no")),
             train=TrainConfig(epochs=3, lr=0.05, weight_bits=None, label_smoothing=0.0), resume=True),
    TrainRun(arch="dscnn-m", out=Path("runs/b"), data=DataConfig(data=Path("."), no_augment=True, views=0),
             train=TrainConfig(weight_bits=4, quant_scheme="paper", momentum=0.5)),
    TrainRun(arch="dscnn-s", out=Path("runs/c"), data=DataConfig(data=Path("."), cmvn="meanvar"),
             train=TrainConfig(unknown_weight=0.5, domain_adversarial=0.3, domain_label="voice")),
    SearchRun(out=Path("runs/s"), data=DataConfig(data=Path(".")),
              search=SearchConfig(beta=16.0, width_mult=0.25, target_macs=5e6, search_epochs=0, arch_lr=1e-3)),
    SweepConfig(data=Path("."), betas=(0.0, 2.5), width_mults=(0.25, 0.5), n_mfccs=(10, 20), baselines=(),
                eval_data=(Path("."), Path("tests")), jobs=2),
    ExportRun(checkpoint=Path("c.pt"), out=Path("m.onnx"), eval_data=(Path("."),), threshold=0.7,
              dataset_name="a b"),
])
def test_to_argv_gives_back_the_same_config(config):
    argv = config.to_argv()
    command = next(c for c, cls in RUNS.items() if isinstance(config, cls))
    assert argv[0] == command.name
    assert parse(command, argv[1:]) == config


def test_json_round_trips_and_refuses_unknown_settings():
    run = TrainRun(arch="dscnn-s", out=Path("x"), data=DataConfig(data=Path("d"), augment=("snr",)),
                   train=TrainConfig(weight_bits=None))
    assert TrainRun.from_json(run.to_json()) == run
    d = run.to_dict()
    d["train"]["learning_rate"] = 0.1
    with pytest.raises(KwspiError, match="learning_rate"):
        TrainRun.from_dict(d)


def test_settings_added_for_the_recipe_leave_the_keys_of_older_configs_unchanged():
    # The sweep keys a step by the hash of its config's JSON; these hashes were taken before
    # cmvn, unknown_weight, domain_adversarial and domain_label existed.
    run = TrainRun(arch="dscnn-s", out=Path("runs/x"), data=DataConfig(data=Path("data/x"), n_mfcc=20, views=2),
                   train=TrainConfig(epochs=12, seed=3))
    search = SearchRun(out=Path("runs/s"), data=DataConfig(data=Path("data/x")))
    key = lambda cfg: hashlib.sha256(cfg.to_json().encode()).hexdigest()[:16]
    assert (key(run), key(search)) == ("509bee06d267ef43", "ad1da0b9400ebd1c")
    older = run.to_dict()
    assert TrainRun.from_dict(older) == run
    for changed in (dataclasses.replace(run, train=dataclasses.replace(run.train, unknown_weight=0.5)),
                    dataclasses.replace(run, train=dataclasses.replace(run.train, domain_adversarial=0.1)),
                    dataclasses.replace(run, train=dataclasses.replace(run.train, domain_label="voice")),
                    dataclasses.replace(run, data=dataclasses.replace(run.data, cmvn="mean"))):
        assert key(changed) != key(run)
        assert TrainRun.from_json(changed.to_json()) == changed
    # And an export's key from before --bank-size and --figures: a sweep does not export again.
    export = ExportRun(checkpoint=Path("runs/x/checkpoint.pt"), out=Path("runs/x/model.onnx"))
    assert key(export) == "e0611cf834b587b7"
    assert key(dataclasses.replace(export, bank_size=0)) != key(export)


def test_bad_settings_are_one_line_errors():
    with pytest.raises(KwspiError, match="--augment"):
        DataConfig(data=Path("."), augment=("wobble",))
    with pytest.raises(KwspiError, match="exclude each other"):
        DataConfig(data=Path("."), augment=("speed",), no_augment=True)
    result = CliRunner().invoke(cli.train, ["dscnn-s", "--data", ".", "--out", "x", "--bits", "1"])
    assert result.exit_code != 0 and "channel scheme needs at least 2 bits" in str(result.exception)


def test_search_epochs_keeps_its_old_name_as_a_deprecated_alias(caplog):
    with caplog.at_level(logging.WARNING):
        cfg = parse(cli.search, ["--data", ".", "--out", "x", "--epochs", "7"])
    assert cfg.search.search_epochs == 7 and "--epochs is deprecated" in caplog.text


def test_train_with_fresh_augmentation_stores_its_config(tmp_path):
    data = make_gsc(tmp_path / "gsc", words=("yes", "no", "bed"), n_speakers=8)
    argv = ["dscnn-s", "--data", str(data), "--out", str(tmp_path / "run"), "--keywords", "yes,no", "--views", "0",
            "--epochs", "2", "--batch-size", "20"]
    result = CliRunner().invoke(cli.train, argv)
    assert result.exit_code == 0, result.output
    state = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert state["epoch"] == 2 and state["views"] == 0
    assert TrainRun.from_dict(state["run"]) == parse(cli.train, argv)
    assert state["labels"] == ["yes", "no", gsc.SILENCE, gsc.UNKNOWN]
