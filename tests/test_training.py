"""The shared training loop (pipeline.training.fit) on small synthetic tasks.

The toy task is deliberately shaped like the real ones: a recurrent model read as
truncated-BPTT streams whose LSTM state the task carries from batch to batch (task
state that a checkpoint must hold), per-round batches that are a function of
(seed, round), and dropout plus input noise drawn from the global RNG (RNG state that
a checkpoint must hold).
"""
from __future__ import annotations

import io
import math
import re

import pytest
import torch
from torch import nn

from pipeline.runtime import setup_runtime
from pipeline.training import LoopConfig, TrainingDiverged, fit, make_optimizer

CPU = torch.device("cpu")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


class Killed(Exception):
    """Stands in for the process being killed."""


class ToyRNN(nn.Module):
    def __init__(self, hidden: int = 8, dropout: float = 0.2):
        super().__init__()
        self.lstm = nn.LSTM(1, hidden, batch_first=True)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, 1)

    def forward(self, x, state=None):
        out, state = self.lstm(x.unsqueeze(-1), state)
        return self.head(self.drop(out)).squeeze(-1), state


class ToyTask:
    """Predict the next value of a noisy sine wave, read as `streams` contiguous streams."""
    metric, mode, item_name = "val_loss", "min", "values"

    def __init__(self, seed: int, n_rounds: int = 4, steps: int = 5, streams: int = 4,
                 seq_len: int = 10, kill_at_step: int | None = None,
                 nan_at_step: int | None = None, loss_scale: float = 1.0,
                 scripted: list[float] | None = None, on_loss=None):
        g = torch.Generator().manual_seed(1234)  # the data set is fixed; `seed` is the run's
        series = torch.sin(torch.arange(1201, dtype=torch.float32) * 0.15)
        series = series + 0.1 * torch.randn(1201, generator=g)
        per = (1000 - 1) // streams
        self.x = series[:per * streams].view(streams, per)
        self.y = series[1:per * streams + 1].view(streams, per)
        self.val = series[1000:]
        self.seed, self.n_rounds, self.steps, self.seq_len = seed, n_rounds, steps, seq_len
        self.windows = per // seq_len
        self.kill_at_step, self.nan_at_step = kill_at_step, nan_at_step
        self.loss_scale, self.on_loss = loss_scale, on_loss
        self.scripted = scripted
        if scripted is not None:
            self.metric, self.mode = "val_accuracy", "max"
        self.state = None
        self.calls = 0            # loss() calls in this process
        self.rounds_seen: list[int] = []
        self.captured: dict[int, dict] = {}  # round (1-based) -> weights at evaluate()
        self.current_round = None

    # --- Task protocol
    def rounds(self) -> int:
        return self.n_rounds

    def steps_in_round(self, r: int) -> int:
        return self.steps

    def batches(self, r: int):
        self.rounds_seen.append(r)
        self.current_round = r
        g = torch.Generator().manual_seed(self.seed * 100_003 + r)
        for k in range(r * self.steps, (r + 1) * self.steps):
            start = (k % self.windows) * self.seq_len
            scale = 0.5 + torch.rand((), generator=g)  # per-(seed, round) randomness
            yield (scale * self.x[:, start:start + self.seq_len],
                   scale * self.y[:, start:start + self.seq_len],
                   k % self.windows == 0)

    def loss(self, model, batch):
        self.calls += 1
        if self.on_loss is not None:
            self.on_loss(model, self.calls)
        if self.kill_at_step is not None and self.calls == self.kill_at_step:
            raise Killed(f"killed at loss call {self.calls}")
        x, y, new_pass = batch
        x = x + 0.01 * torch.randn(x.shape)  # global RNG
        pred, state = model(x, None if new_pass else self.state)
        self.state = tuple(s.detach() for s in state)
        loss = ((pred - y) ** 2).mean() * self.loss_scale
        if self.nan_at_step is not None and self.calls == self.nan_at_step:
            loss = loss * float("nan")
        return loss, y.numel()

    def evaluate(self, model):
        assert not model.training
        r = self.current_round + 1
        self.captured[r] = {k: v.detach().clone() for k, v in model.state_dict().items()}
        if self.scripted is not None:
            return {"val_accuracy": self.scripted[r - 1]}
        pred, _ = model(self.val[None, :-1])
        return {"val_loss": ((pred[0] - self.val[1:]) ** 2).mean().item()}

    def state_dict(self) -> dict:
        return {"state": self.state}

    def load_state_dict(self, state: dict) -> None:
        self.state = state["state"]


def config(**kw) -> LoopConfig:
    args = dict(lr=0.01, weight_decay=0.0, scheduler="none", clip_grad_norm=1.0, patience=None,
                checkpoint_every=1, log_every=2)
    args.update(kw)
    return LoopConfig(**args)


def train(seed: int, cfg: LoopConfig | None = None, checkpoint=None, fingerprint: str = "fp",
          init_seed: int | None = None, log=None, **task_kw):
    """A fresh 'process': seed the runtime, build model and task, train. `init_seed`
    seeds the runtime differently from the run's seed (another process state)."""
    setup_runtime(seed if init_seed is None else init_seed, "cpu", num_threads=1)
    model = ToyRNN()
    task = ToyTask(seed, **task_kw)
    result = fit(model, task, cfg or config(), CPU, checkpoint=checkpoint,
                 fingerprint=fingerprint,
                 log_metrics=log if log is not None else (lambda m, s: None))
    return model, task, result


def to_bytes(state: dict) -> bytes:
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()


def assert_same_state(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def differs(a: dict, b: dict) -> bool:
    return any(not torch.equal(a[k], b[k]) for k in a)


# --------------------------------------------------------------------------- determinism
def test_same_seed_same_weights_and_bytes():
    m1, _, r1 = train(seed=3)
    m2, _, r2 = train(seed=3)
    assert_same_state(m1.state_dict(), m2.state_dict())
    assert_same_state(r1.best_state, r2.best_state)
    assert to_bytes(r1.best_state) == to_bytes(r2.best_state)
    assert r1.history == r2.history
    assert r1.best_round == r2.best_round

    m3, _, r3 = train(seed=4)
    assert differs(m1.state_dict(), m3.state_dict())
    assert differs(r1.best_state, r3.best_state)


def test_training_changes_the_weights_and_learns():
    setup_runtime(3, "cpu", num_threads=1)
    initial = {k: v.clone() for k, v in ToyRNN().state_dict().items()}
    model, task, result = train(seed=3, n_rounds=4, steps=10)
    assert differs(initial, model.state_dict())
    losses = [row["val_loss"] for row in result.history]
    assert losses[-1] < losses[0]
    assert [row["round"] for row in result.history] == [1, 2, 3, 4]
    assert [row["step"] for row in result.history] == [10, 20, 30, 40]


# --------------------------------------------------------------------------- resume
# The average of the last 3 rounds starts in round 2: the checkpoint must hold it.
@pytest.mark.parametrize("scheduler, average", [("none", None), ("cosine", None), ("cosine", 3)])
def test_resume_after_kill_equals_uninterrupted(tmp_path, scheduler, average):
    ckpt_a, ckpt_b = tmp_path / "a" / "checkpoint.pt", tmp_path / "b" / "checkpoint.pt"
    cfg = config(scheduler=scheduler, average_last_rounds=average)
    model_a, _, res_a = train(seed=5, cfg=cfg, checkpoint=ckpt_a)

    # Run B dies in round 3 (steps 11..15), after the checkpoint of round 2.
    with pytest.raises(Killed):
        train(seed=5, cfg=cfg, checkpoint=ckpt_b, kill_at_step=13)
    saved = torch.load(ckpt_b, map_location="cpu", weights_only=False)
    assert saved["loop"]["next_round"] == 2 and saved["loop"]["step"] == 10 and saved["fingerprint"] == "fp"

    # A fresh process: other RNG state and other initial weights; same params and data.
    model_b, task_b, res_b = train(seed=5, cfg=cfg, checkpoint=ckpt_b, init_seed=999)
    assert task_b.rounds_seen == [2, 3]  # resumed, not restarted
    assert res_b.history == res_a.history
    assert res_b.best_round == res_a.best_round
    assert res_b.best_step == res_a.best_step
    assert res_b.best_metrics == res_a.best_metrics
    assert_same_state(res_b.best_state, res_a.best_state)
    assert to_bytes(res_b.best_state) == to_bytes(res_a.best_state)
    assert_same_state(model_b.state_dict(), model_a.state_dict())


# --------------------------------------------------------------------------- weight average
def test_averaged_weights_are_what_the_last_rounds_evaluate_and_keep():
    averaged_model, task, averaged = train(seed=5, cfg=config(average_last_rounds=2))
    raw_model, _, raw = train(seed=5)
    # Averaging reads the weights and changes none: the trained weights are the same...
    assert_same_state(averaged_model.state_dict(), raw_model.state_dict())
    # ...the first two rounds score the weights as they are, the last two their average.
    assert averaged.history[:2] == raw.history[:2]
    assert all(a != b for a, b in zip(averaged.history[2:], raw.history[2:]))
    assert_same_state(task.captured[averaged.best_round], averaged.best_state)
    assert differs(task.captured[4], raw_model.state_dict())


def test_the_average_is_the_mean_of_the_weights_after_each_step():
    seen = {}  # loss call c sees the weights after step c - 1
    record = lambda model, call: seen.update(
        {call - 1: {k: v.detach().clone() for k, v in model.state_dict().items()}})
    model, task, result = train(seed=5, cfg=config(average_last_rounds=1), on_loss=record)
    assert task.steps == 5 and task.n_rounds == 4  # the last round: steps 16-20
    after = [seen[16], seen[17], seen[18], seen[19], model.state_dict()]
    mean = {k: torch.stack([w[k] for w in after]).mean(0) for k in after[0]}
    for k, v in task.captured[4].items():
        torch.testing.assert_close(v, mean[k], rtol=0, atol=1e-6)


def test_checkpoint_of_other_fingerprint_is_ignored(tmp_path):
    ckpt = tmp_path / "checkpoint.pt"
    _, _, reference = train(seed=5)
    with pytest.raises(Killed):
        train(seed=5, checkpoint=ckpt, fingerprint="old-params", kill_at_step=13)
    assert torch.load(ckpt, weights_only=False)["loop"]["next_round"] == 2

    _, task, res = train(seed=5, checkpoint=ckpt, fingerprint="new-params")
    assert task.rounds_seen == [0, 1, 2, 3]  # started from round 0
    assert [row["round"] for row in res.history] == [1, 2, 3, 4]
    assert res.history == reference.history
    assert_same_state(res.best_state, reference.best_state)


def test_no_checkpoint_written_without_a_path(tmp_path):
    _, _, res = train(seed=5, checkpoint=None)
    assert res.best_round >= 1
    assert list(tmp_path.iterdir()) == []


def test_resume_after_early_stop_does_not_train_further(tmp_path):
    """BUG (pipeline/training.py, fit): when patience stops a run, fit still writes a
    checkpoint for that round (next_round = the stop round + 1) and does not record that
    it stopped. The runner deletes the checkpoint only after all the MLflow work that
    follows fit; if that fails or is killed, `dvc repro` resumes the checkpoint and trains
    *past* the early stop, giving another model than the finished run. Expected: a re-run
    on the left-over checkpoint gives the same result as the run that stopped early."""
    ckpt = tmp_path / "checkpoint.pt"
    scripted = [0.5, 0.9, 0.7, 0.95, 0.6, 0.6]
    cfg = config(patience=1)
    _, _, first = train(seed=5, cfg=cfg, checkpoint=ckpt, n_rounds=6, scripted=scripted)
    assert first.stopped_early and first.best_round == 2 and len(first.history) == 3

    # The checkpoint is still there (the stage failed after fit): re-run the stage.
    _, _, again = train(seed=5, cfg=cfg, checkpoint=ckpt, n_rounds=6, scripted=scripted)
    assert again.best_round == first.best_round
    assert again.history == first.history
    assert again.stopped_early


# --------------------------------------------------------------------------- divergence
@pytest.mark.parametrize("nan_step, log_every", [(7, 3), (5, 3), (1, 50), (12, 1)])
def test_nan_loss_raises_naming_the_step(nan_step, log_every):
    with pytest.raises(TrainingDiverged) as info:
        train(seed=1, cfg=config(log_every=log_every), nan_at_step=nan_step)
    message = str(info.value)
    steps_named = [int(s) for s in re.findall(r"step (\d+)", message)]
    assert steps_named == [nan_step], message
    round_1based = (nan_step - 1) // 5 + 1
    assert f"round {round_1based}" in message


def test_nan_loss_stops_before_evaluation():
    # The NaN is in round 1: the loop raises before round 1 is ever evaluated.
    model, task = ToyRNN(), ToyTask(seed=1, nan_at_step=2)
    with pytest.raises(TrainingDiverged):
        fit(model, task, config(log_every=1), CPU)
    assert task.captured == {}


# --------------------------------------------------------------------------- best round
def test_best_round_and_best_state():
    model, task, res = train(seed=2, n_rounds=3, scripted=[0.5, 0.9, 0.7])
    assert res.best_round == 2
    assert res.best_step == 10
    assert res.best_metrics == {"val_accuracy": 0.9}
    assert_same_state(res.best_state, task.captured[2])
    assert differs(res.best_state, task.captured[3])  # not simply the last weights
    assert_same_state(model.state_dict(), task.captured[3])
    assert not res.stopped_early
    assert [row["val_accuracy"] for row in res.history] == [0.5, 0.9, 0.7]


def test_best_round_mode_min():
    task_kw = dict(n_rounds=3, scripted=[0.5, 0.9, 0.7])
    setup_runtime(2, "cpu", num_threads=1)
    model, task = ToyRNN(), ToyTask(2, **task_kw)
    task.mode = "min"
    res = fit(model, task, config(), CPU)
    assert res.best_round == 1
    assert_same_state(res.best_state, task.captured[1])


def test_patience_stops_early():
    model, task, res = train(seed=2, cfg=config(patience=1), n_rounds=6,
                             scripted=[0.5, 0.9, 0.7, 0.95, 0.99, 0.999])
    assert res.stopped_early
    assert task.rounds_seen == [0, 1, 2]
    assert len(res.history) == 3
    assert res.best_round == 2
    assert_same_state(res.best_state, task.captured[2])


def test_patience_not_reached_runs_all_rounds():
    _, task, res = train(seed=2, cfg=config(patience=2), n_rounds=5,
                         scripted=[0.5, 0.9, 0.7, 0.95, 0.6])
    assert not res.stopped_early
    assert task.rounds_seen == [0, 1, 2, 3, 4]
    assert res.best_round == 4


def test_ties_do_not_improve():
    _, task, res = train(seed=2, n_rounds=3, scripted=[0.8, 0.8, 0.8])
    assert res.best_round == 1
    assert_same_state(res.best_state, task.captured[1])


# --------------------------------------------------------------------------- logging
def _collect():
    calls = []
    return calls, (lambda metrics, step: calls.append((dict(metrics), step)))


def test_logger_gets_grad_norm_lr_and_windows():
    calls, log = _collect()
    train(seed=1, cfg=config(log_every=2, clip_grad_norm=1e6), n_rounds=2, log=log)
    step_logs = [(m, s) for m, s in calls if "grad_norm" in m]
    round_logs = [(m, s) for m, s in calls if "round" in m]
    # windows of log_every steps, and a short window at the end of each round (5 steps)
    assert [s for _, s in step_logs] == [2, 4, 5, 7, 9, 10]
    assert [(m["round"], s) for m, s in round_logs] == [(1, 5), (2, 10)]
    for m, _ in step_logs:
        assert {"train_loss_step", "grad_norm", "grad_norm_max", "clipped_fraction", "lr",
                "values_per_s"} <= m.keys()
        assert m["grad_norm"] > 0 and math.isfinite(m["grad_norm"])
        assert m["grad_norm_max"] >= m["grad_norm"] - 1e-12
        assert m["lr"] == pytest.approx(0.01)
        assert m["clipped_fraction"] == 0.0  # nothing clipped with a huge bound
    for m, _ in round_logs:
        assert "train_loss" in m and "val_loss" in m


def test_clipped_fraction_is_one_with_a_tiny_bound():
    calls, log = _collect()
    clip = 1e-9
    train(seed=1, cfg=config(log_every=2, clip_grad_norm=clip), n_rounds=2, log=log)
    step_logs = [m for m, _ in calls if "grad_norm" in m]
    assert step_logs
    for m in step_logs:
        assert m["clipped_fraction"] == 1.0
        assert m["grad_norm"] > clip  # the norm before clipping is logged


# --------------------------------------------------------------------------- scheduler
def test_cosine_schedule_logged_lr():
    calls, log = _collect()
    lr, rounds, steps = 0.02, 3, 5
    total = rounds * steps
    train(seed=1, cfg=config(lr=lr, scheduler="cosine", log_every=1), n_rounds=rounds,
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
    task = ToyTask(1, n_rounds=1, steps=3, on_loss=on_loss)
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
        fit(model, ToyTask(seed=0, n_rounds=1), config(lr_scales={"lstm.": scale}), CPU)
        moved[scale] = (model.lstm.weight_hh_l0.detach() - start).abs().sum().item()
    assert moved[0.1] < moved[1.0] / 3


DENORMALS_SCRIPT = """
import numpy as np, torch
import pipeline.stages.train_sentiment  # what a training stage imports before set-up
from pipeline.runtime import setup_runtime
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
