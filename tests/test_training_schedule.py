"""The shared training loop's logging, optimiser and learning-rate schedule, and the
runtime set-up, on the toy task of tests/toy_training.py."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from pipeline.training.runtime import setup_runtime
from pipeline.training.loop import fit, make_optimizer
from tests.toy_training import CPU, ToyRNN, ToyTask, config, train

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# --------------------------------------------------------------------------- logging
def _collect():
    calls = []
    return calls, (lambda metrics, step: calls.append((dict(metrics), step)))


def test_logger_gets_grad_norm_lr_and_windows():
    calls, log = _collect()
    train(seed=1, cfg=config(log_every=2, clip_grad_norm=1e6), n_periods=2, log=log)
    step_logs = [(m, s) for m, s in calls if "grad_norm" in m]
    epoch_logs = [(m, s) for m, s in calls if "epoch" in m]
    # windows of log_every steps, and a short window at the end of each epoch (5 steps)
    assert [s for _, s in step_logs] == [2, 4, 5, 7, 9, 10]
    assert [(m["epoch"], s) for m, s in epoch_logs] == [(1, 5), (2, 10)]
    for m, _ in step_logs:
        assert {"train_loss_step", "grad_norm", "grad_norm_max", "clipped_fraction", "lr",
                "values_per_s"} <= m.keys()
        assert m["grad_norm"] > 0 and math.isfinite(m["grad_norm"])
        assert m["grad_norm_max"] >= m["grad_norm"] - 1e-12
        assert m["lr"] == pytest.approx(0.01)
        assert m["clipped_fraction"] == 0.0  # nothing clipped with a huge bound
    for m, _ in epoch_logs:
        assert "train_loss" in m and "val_loss" in m


def test_clipped_fraction_is_one_with_a_tiny_bound():
    calls, log = _collect()
    clip = 1e-9
    train(seed=1, cfg=config(log_every=2, clip_grad_norm=clip), n_periods=2, log=log)
    step_logs = [m for m, _ in calls if "grad_norm" in m]
    assert step_logs
    for m in step_logs:
        assert m["clipped_fraction"] == 1.0
        assert m["grad_norm"] > clip  # the norm before clipping is logged


# --------------------------------------------------------------------------- scheduler
def test_cosine_schedule_logged_lr():
    calls, log = _collect()
    lr, epochs, steps = 0.02, 3, 5
    total = epochs * steps
    train(seed=1, cfg=config(lr=lr, scheduler="cosine", log_every=1), n_periods=epochs,
          steps=steps, log=log)
    logged = {s: m["lr"] for m, s in calls if "grad_norm" in m}
    assert sorted(logged) == list(range(1, total + 1))
    for s, value in logged.items():
        # after s scheduler steps the lr is lr * (1 + cos(pi s / T)) / 2
        assert value == pytest.approx(lr * 0.5 * (1 + math.cos(math.pi * s / total)), abs=1e-12)
    assert logged[total] == pytest.approx(0.0, abs=1e-12)
    assert logged[1] > 0.98 * lr
    assert all(a > b for a, b in zip(list(logged.values()), list(logged.values())[1:]))


def test_cosine_first_step_uses_the_configured_lr():
    # Adam's very first update is lr * g / (|g| + eps) ~ lr per weight: the size of the
    # first update shows the lr in force at step 1 (cfg.lr, not an already-decayed one).
    lr = 0.01
    snapshots = {}

    def on_loss(model, call):
        if call in (1, 2):
            snapshots[call] = {k: v.detach().clone() for k, v in model.named_parameters()}

    setup_runtime(1, "cpu", num_threads=1)
    model = ToyRNN(dropout=0.0)
    task = ToyTask(1, n_periods=1, steps=3, on_loss=on_loss)
    fit(model, task, config(lr=lr, scheduler="cosine", clip_grad_norm=1e6), CPU)
    deltas = torch.cat([(snapshots[2][k] - snapshots[1][k]).abs().flatten() for k in snapshots[1]])
    moved = deltas[deltas > lr / 2]
    assert len(moved) > 0.9 * len(deltas)
    assert moved.median().item() == pytest.approx(lr, rel=1e-3)


def test_make_optimizer_schedules():
    model = nn.Linear(2, 1)
    for name, expect_end in (("cosine", 0.0), ("none", 0.1)):
        opt, sched = make_optimizer(model, config(lr=0.1, scheduler=name), total_steps=10)
        assert opt.param_groups[0]["lr"] == pytest.approx(0.1)
        for i in range(10):
            opt.step()
            sched.step()
            if i == 4 and name == "cosine":
                assert opt.param_groups[0]["lr"] == pytest.approx(0.05)
        assert opt.param_groups[0]["lr"] == pytest.approx(expect_end, abs=1e-12)


def test_lr_scales_give_prefixed_parameters_their_own_scheduled_rate():
    model = ToyRNN()
    opt, sched = make_optimizer(model, config(lr=0.1, scheduler="cosine",
                                              lr_scales={"lstm.": 0.25}), total_steps=10)
    rate = {id(p): g["lr"] for g in opt.param_groups for p in g["params"]}
    assert rate[id(model.lstm.weight_hh_l0)] == pytest.approx(0.025)
    assert rate[id(model.head.weight)] == pytest.approx(0.1)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1)  # the logged rate: unscaled
    assert sorted(map(id, model.parameters())) == sorted(rate)  # every parameter, once
    for _ in range(5):
        opt.step()
        sched.step()
    rate = {id(p): g["lr"] for g in opt.param_groups for p in g["params"]}
    assert rate[id(model.lstm.weight_hh_l0)] == pytest.approx(0.0125)  # same cosine
    assert rate[id(model.head.weight)] == pytest.approx(0.05)


def test_a_slower_encoder_moves_less():
    moved = {}
    for scale in (1.0, 0.1):
        model = ToyRNN(dropout=0.0)
        start = model.lstm.weight_hh_l0.detach().clone()
        fit(model, ToyTask(seed=0, n_periods=1), config(lr_scales={"lstm.": scale}), CPU)
        moved[scale] = (model.lstm.weight_hh_l0.detach() - start).abs().sum().item()
    assert moved[0.1] < moved[1.0] / 3


DENORMALS_SCRIPT = """
import numpy as np, torch
import pipeline.stages.train_sentiment  # what a training stage imports before set-up
from pipeline.training.runtime import setup_runtime
tiny = torch.from_numpy(np.full(1_000_000, 1e-39, dtype=np.float32))  # denormal, exact
setup_runtime(1, "cpu", num_threads=2)
print(int((tiny * 0.5).count_nonzero()), torch.get_num_threads())
"""


def test_stages_flush_denormals_on_every_thread():
    """setup_runtime flushes denormal floats to zero (they made a cold sentiment epoch
    3x slower) on every thread of the pool: the pool inherits the flag when it starts,
    which must be after the flag is set. In a fresh process, like a stage."""
    import subprocess
    import sys
    from pathlib import Path
    proc = subprocess.run([sys.executable, "-c", DENORMALS_SCRIPT], capture_output=True,
                          text=True, cwd=Path(__file__).resolve().parents[1], timeout=120)
    assert proc.returncode == 0, proc.stderr
    nonzero, threads = map(int, proc.stdout.split())
    assert threads == 2
    # Half the products (one thread's share) would be left denormal by a pool that
    # missed the flag; none by a thread that has it.
    assert nonzero == 0
