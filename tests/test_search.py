import json
import logging
import math
from dataclasses import replace

import pytest
import torch
from click.testing import CliRunner

from kwspi.errors import KwspiError
from kwspi.features import FeatureConfig
from kwspi.train.nets.counting import count
from kwspi.train.nets.model import KwsNet
from kwspi.train.config import SearchConfig
from kwspi.train.search import (MIN_ARCH_TRAVEL, arch_loss, arch_lr, arch_travel, fork_warmup,
                                load_search_checkpoint, recalibrate_bn, search)
from kwspi.train.cli import search as search_command
from kwspi.train.nets.space import load_arch
from kwspi.train.nets.supernet import SuperNet
from kwspi.train.config import TrainConfig
from kwspi.train.fit import load_checkpoint
from kwspi.train.run import check_same_run, restore
from conftest import make_gsc

N_MFCC, N_FRAMES = 10, 21
TINY = SearchConfig(width_mult=0.125, target_macs=1e5, warmup_epochs=1, search_epochs=2, batch_size=20,
                    arch_every=1, arch_lr=0.5)


def toy(n, seed):
    """Two classes: a bump in the top or the bottom half of the cepstra."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    X = torch.randn(n, 1, N_MFCC, N_FRAMES, generator=g) * 0.3
    X[y == 0, :, :5] += 1.0
    X[y == 1, :, 5:] += 1.0
    return X, y


def tiny_search(cfg, out, n=40, **kw):
    torch.manual_seed(0)
    net = SuperNet(N_MFCC, N_FRAMES, 2, cfg.width_mult)
    X, y = toy(n, 0)
    history = search(net, lambda e: (X, y), toy(40, 1), cfg, out, meta={}, **kw)
    return net, history


def test_arch_loss_by_hand():
    assert arch_loss(torch.tensor(2.0), torch.tensor(1e7), 20e6, 0).item() == pytest.approx(2.0)  # beta 0: CE
    # ln(e^4) / ln(e^2) = 2, 2^2 = 4, times CE 2 -> 8
    assert arch_loss(torch.tensor(2.0), torch.tensor(math.e**4), math.e**2, 2).item() == pytest.approx(8.0)
    # ln(1e6) / ln(1e3) = 2 -> 1.5 * 2 = 3; at the target the factor is 1 for any beta
    assert arch_loss(1.5, 1e6, 1e3, 1).item() == pytest.approx(3.0)
    assert arch_loss(1.5, 20e6, 20e6, 16).item() == pytest.approx(1.5)
    # d/dE = CE * beta * (ln E / ln T)^(beta - 1) / (E ln T) = 2 * 2 * 2 / (e^4 * 2) = 4 / e^4
    e = torch.tensor(math.e**4, dtype=torch.float64, requires_grad=True)
    arch_loss(torch.tensor(2.0), e, math.e**2, 2).backward()
    assert e.grad.item() == pytest.approx(4 / math.e**4)


def test_arch_lr_ramps_from_zero_to_the_peak():
    assert arch_lr(0, 100, 4e-3) == pytest.approx(0.0)
    assert arch_lr(50, 100, 4e-3) == pytest.approx(4e-3 * (1 - math.sqrt(0.5)))  # 1 + cos(1.25 pi)
    assert arch_lr(100, 100, 4e-3) == pytest.approx(4e-3)


def test_arch_travel_sums_the_ramp_over_the_steps_the_search_takes():
    # The ramp's mean over a search is 1 - 2/pi of its peak: the paper's run on GSC v0.01
    # (227 batches an epoch, a step every 5, 119 joint epochs with steps) against the sum.
    paper = SearchConfig()
    assert arch_travel(paper, 22_700) == pytest.approx(45 * 119 * 4e-3 * (1 - 2 / math.pi), rel=0.02)
    assert arch_travel(paper, 22_700) > MIN_ARCH_TRAVEL > arch_travel(replace(paper, search_epochs=10), 3556)
    assert arch_travel(replace(paper, search_epochs=1), 22_700) == 0  # the first joint epoch takes no step
    assert arch_travel(replace(paper, arch_every=1), 1000) == pytest.approx(5 * arch_travel(paper, 1000), rel=0.05)


def test_a_search_whose_architecture_cannot_move_says_so(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="kwspi.train.search"):
        tiny_search(replace(TINY, arch_lr=1e-4), tmp_path / "stuck")
    assert "--arch-lr" in caplog.text and "too little" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="kwspi.train.search"):
        tiny_search(replace(TINY, search_epochs=1), tmp_path / "no-step")  # one joint epoch: no step at all
    assert "too little" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="kwspi.train.search"):
        tiny_search(replace(TINY, arch_lr=2.0), tmp_path / "moves")
    assert "too little" not in caplog.text


def test_config_rejects_nonsense():
    with pytest.raises(ValueError):
        SearchConfig(beta=-1)
    with pytest.raises(ValueError):
        SearchConfig(arch_every=0)
    assert SearchConfig().epochs == 160 and SearchConfig().weight_quant.scheme == "paper"


def test_a_higher_beta_finds_a_cheaper_network(tmp_path):
    final = {}
    for beta in (0.0, 16.0):
        net, history = tiny_search(replace(TINY, beta=beta), tmp_path / str(beta))
        final[beta] = history[-1]["expected_macs"]
        assert history[0]["arch_loss"] is None and history[-1]["arch_loss"] is not None
    start = history[0]["expected_macs"]
    assert final[16.0] < 0.95 * start and final[16.0] < final[0.0]


def test_resume_gives_the_same_logits_and_weights(tmp_path):
    cfg = replace(TINY, search_epochs=3)
    straight, full = tiny_search(cfg, tmp_path / "a")

    def crash_after_third_epoch(epoch, record):
        if epoch == 2:  # after the first epoch with architecture steps: Adam has state
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        tiny_search(cfg, tmp_path / "b", on_epoch=crash_after_third_epoch)
    state = load_search_checkpoint(tmp_path / "b" / "supernet.pt")
    assert state["epoch"] == 3 and state["arch_optimizer"]["state"]
    torch.manual_seed(99)  # a fresh process would start from other random weights
    resumed, history = tiny_search(cfg, tmp_path / "b", resume=True)
    untimed = [{k: v for k, v in r.items() if k != "seconds"} for r in history]
    assert untimed == [{k: v for k, v in r.items() if k != "seconds"} for r in full]
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)

    lines = (tmp_path / "b" / "search.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3, 4]
    record = json.loads(lines[-1])
    assert len(record["probs"]) == 12 and all(sum(p) == pytest.approx(1, abs=1e-4) for p in record["probs"])
    arch = load_arch(str(tmp_path / "b" / "arch.json"))
    assert arch == resumed.derive() and list(arch.cells) == record["arch"]
    assert count(KwsNet(arch, N_MFCC, 2), (1, 1, N_MFCC, N_FRAMES)).macs == record["argmax_macs"]
    inherited = load_checkpoint(tmp_path / "b" / "inherited.pt")
    assert inherited["epoch"] == 0 and inherited["arch"] == arch.to_dict()


def test_a_forked_warmup_is_the_run_that_warmed_up_itself(tmp_path):
    """One warm-up serves a whole sweep: forking it into beta 16 gives the straight beta-16 run."""
    cfg = replace(TINY, beta=16.0)
    straight, full = tiny_search(cfg, tmp_path / "straight")
    tiny_search(replace(TINY, beta=0.0, search_epochs=0, arch_lr=0.0), tmp_path / "warm")
    warm = load_search_checkpoint(tmp_path / "warm" / "supernet.pt")
    (tmp_path / "fork").mkdir()
    torch.save(fork_warmup(warm, cfg, "warm"), tmp_path / "fork" / "supernet.pt")
    torch.manual_seed(99)
    forked, history = tiny_search(cfg, tmp_path / "fork", resume=True)
    assert [r["expected_macs"] for r in history] == [r["expected_macs"] for r in full]
    for (name, a), b in zip(straight.state_dict().items(), forked.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)

    with pytest.raises(KwspiError, match="seed"):
        fork_warmup(warm, replace(cfg, seed=1), "warm")
    with pytest.raises(KwspiError, match="finished warm-up of 2"):
        fork_warmup(warm, replace(cfg, warmup_epochs=2), "warm")


def test_recalibrated_bn_statistics_are_those_of_the_path_on_the_given_batches():
    torch.manual_seed(0)
    net = SuperNet(N_MFCC, N_FRAMES, 2, 0.125)
    X, _ = toy(40, 0)
    path = net.sample(torch.Generator().manual_seed(1))
    net.sample(torch.Generator().manual_seed(2))  # another path is current; the given one must be used
    with torch.no_grad():
        net.train()(X)  # stale statistics from another input
        recalibrate_bn(net, X, 10, "cpu", path)
        stem_in = net.stem[0](net.norm(X))  # what the stem's BN sees
    torch.testing.assert_close(net.stem[1].running_mean, stem_in.mean(dim=(0, 2, 3)), atol=1e-5, rtol=1e-5)
    assert net.stem[1].momentum == 0.1 and tuple(c.sampled for c in net.cells) == path


def test_search_help_has_an_example():
    result = CliRunner().invoke(search_command, ["--help"])
    assert result.exit_code == 0 and "Example:" in result.output
    assert search_command.short_help == "Search an architecture (ProxylessNAS) under a MACs target."


def test_cli_search_writes_an_architecture_that_train_can_continue(tmp_path):
    data = make_gsc(tmp_path / "gsc", words=("yes", "no", "bed"), n_speakers=12)
    out = tmp_path / "run"
    args = ["--data", str(data), "--out", str(out), "--width-mult", "0.125", "--warmup-epochs", "1",
            "--search-epochs", "2", "--batch-size", "10", "--views", "1", "--keywords", "yes,no", "--seed", "3"]
    result = CliRunner().invoke(search_command, args)
    assert result.exit_code == 0, result.output
    assert "inherited weights" in result.output
    arch = load_arch(str(out / "arch.json"))
    model, cfg, labels, state = restore(out / "inherited.pt", str(out / "arch.json"))
    assert labels == ("yes", "no", "_silence_", "_unknown_") and cfg == FeatureConfig(n_mfcc=10)
    tcfg = TrainConfig(seed=3, batch_size=10, quant_scheme="paper")  # `kwspi train ... --resume` with these
    check_same_run(state, arch, cfg, tcfg, out / "inherited.pt")

    again = CliRunner().invoke(search_command, args)
    assert again.exit_code != 0 and isinstance(again.exception, KwspiError) and "--resume" in str(again.exception)
    changed = CliRunner().invoke(search_command, args + ["--beta", "8", "--resume"])
    assert isinstance(changed.exception, KwspiError) and "beta" in str(changed.exception)


def test_train_init_from_starts_at_the_inherited_weights(tmp_path):
    data = make_gsc(tmp_path / "gsc", words=("yes", "no", "bed"), n_speakers=12)
    out = tmp_path / "run"
    args = ["--data", str(data), "--out", str(out), "--width-mult", "0.125", "--warmup-epochs", "1",
            "--search-epochs", "1", "--batch-size", "10", "--views", "1", "--keywords", "yes,no"]
    assert CliRunner().invoke(search_command, args).exit_code == 0
    inherited = restore(out / "inherited.pt")[0]
    from kwspi.cli import main

    common = ["--data", str(data), "--keywords", "yes,no", "--views", "1", "--epochs", "1", "--batch-size", "10",
              "--quant-scheme", "paper", "--init-from", str(out / "inherited.pt")]
    # A learning rate of ~0 leaves the weights where they started: the inherited ones.
    result = CliRunner().invoke(main, ["train", str(out / "arch.json"), "--out", str(tmp_path / "t"),
                                       "--lr", "1e-12", *common])
    assert result.exit_code == 0, result.output
    retrained = restore(tmp_path / "t" / "checkpoint.pt")[0]
    for (name, a), b in zip(inherited.state_dict().items(), retrained.state_dict().values()):
        if "running" not in name and "num_batches" not in name:  # BN statistics move even at lr 0
            torch.testing.assert_close(a, b, atol=1e-6, rtol=0, msg=name)
    wrong = CliRunner().invoke(main, ["train", "dscnn-s", "--out", str(tmp_path / "w"), *common])
    assert wrong.exit_code == 2 and "another architecture" in wrong.output
