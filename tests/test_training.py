"""The shared training loop (pipeline.training.loop.fit) on the toy task of
tests/toy_training.py: determinism, resuming, weight averaging, divergence, the best
epoch and early stopping."""
from __future__ import annotations

import re

import pytest
import torch

from pipeline.core.errors import PipelineError, TrainingDiverged
from pipeline.training.loop import fit
from pipeline.training.runtime import setup_runtime
from tests.toy_training import (CPU, Killed, ToyRNN, ToyTask, assert_same_state, config,
                                differs, to_bytes, train)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# --------------------------------------------------------------------------- determinism
def test_same_seed_same_weights_and_bytes():
    m1, _, r1 = train(seed=3)
    m2, _, r2 = train(seed=3)
    assert_same_state(m1.state_dict(), m2.state_dict())
    assert_same_state(r1.best_state, r2.best_state)
    assert to_bytes(r1.best_state) == to_bytes(r2.best_state)
    assert r1.history == r2.history
    assert r1.best_period == r2.best_period

    m3, _, r3 = train(seed=4)
    assert differs(m1.state_dict(), m3.state_dict())
    assert differs(r1.best_state, r3.best_state)


def test_training_changes_the_weights_and_learns():
    setup_runtime(3, "cpu", num_threads=1)
    initial = {k: v.clone() for k, v in ToyRNN().state_dict().items()}
    model, task, result = train(seed=3, n_periods=4, steps=10)
    assert differs(initial, model.state_dict())
    losses = [row["val_loss"] for row in result.history]
    assert losses[-1] < losses[0]
    assert [row["epoch"] for row in result.history] == [1, 2, 3, 4]
    assert [row["step"] for row in result.history] == [10, 20, 30, 40]


def test_the_time_to_quality_curve_has_every_evaluation():
    logged = []
    _, _, result = train(seed=3, n_periods=4, steps=10, log=lambda m, s: logged.append((s, m)))
    assert [row["step"] for row in result.timeline] == [10, 20, 30, 40]
    assert [row["val_loss"] for row in result.timeline] == [
        row["val_loss"] for row in result.history]
    seconds = [row["seconds"] for row in result.timeline]
    assert seconds == sorted(seconds) and seconds[0] >= 0  # tenths: the toy takes less
    # ... and in the tracked metrics, at the step of each evaluation.
    walls = [(s, m["wall_seconds"]) for s, m in logged if "wall_seconds" in m]
    assert [s for s, _ in walls] == [10, 20, 30, 40]
    assert [round(w, 1) for _, w in walls] == seconds


# --------------------------------------------------------------------------- resume
# The average of the last 3 epochs starts in epoch 2: the checkpoint must hold it.
@pytest.mark.parametrize("scheduler, average", [("none", None), ("cosine", None), ("cosine", 3)])
def test_resume_after_kill_equals_uninterrupted(tmp_path, scheduler, average):
    ckpt_a, ckpt_b = tmp_path / "a" / "checkpoint.pt", tmp_path / "b" / "checkpoint.pt"
    cfg = config(scheduler=scheduler, average_last_periods=average)
    model_a, _, res_a = train(seed=5, cfg=cfg, checkpoint=ckpt_a)

    # Run B dies in epoch 3 (steps 11..15), after the checkpoint of epoch 2.
    with pytest.raises(Killed):
        train(seed=5, cfg=cfg, checkpoint=ckpt_b, kill_at_step=13)
    saved = torch.load(ckpt_b, map_location="cpu", weights_only=True)
    assert saved["loop"]["next_period"] == 2 and saved["loop"]["step"] == 10 and saved["fingerprint"] == "fp"

    # A fresh process: other RNG state and other initial weights; same params and data.
    model_b, task_b, res_b = train(seed=5, cfg=cfg, checkpoint=ckpt_b, init_seed=999)
    assert task_b.periods_seen == [2, 3]  # resumed, not restarted
    assert res_b.history == res_a.history
    assert res_b.best_period == res_a.best_period
    assert res_b.best_step == res_a.best_step
    assert res_b.best_metrics == res_a.best_metrics
    # The time-to-quality curve goes on from the checkpoint: the killed run's first two
    # evaluations, then the resumed ones, seconds still adding up.
    assert [row["step"] for row in res_b.timeline] == [row["step"] for row in res_a.history]
    seconds = [row["seconds"] for row in res_b.timeline]
    assert seconds == sorted(seconds) and seconds[0] >= 0  # tenths: the toy takes less
    assert_same_state(res_b.best_state, res_a.best_state)
    assert to_bytes(res_b.best_state) == to_bytes(res_a.best_state)
    assert_same_state(model_b.state_dict(), model_a.state_dict())


# --------------------------------------------------------------------------- weight average
def test_averaged_weights_are_what_the_last_epochs_evaluate_and_keep():
    averaged_model, task, averaged = train(seed=5, cfg=config(average_last_periods=2))
    raw_model, _, raw = train(seed=5)
    # Averaging reads the weights and changes none: the trained weights are the same...
    assert_same_state(averaged_model.state_dict(), raw_model.state_dict())
    # ...the first two epochs score the weights as they are, the last two their average.
    assert averaged.history[:2] == raw.history[:2]
    assert all(a != b for a, b in zip(averaged.history[2:], raw.history[2:]))
    assert_same_state(task.captured[averaged.best_period], averaged.best_state)
    assert differs(task.captured[4], raw_model.state_dict())


def test_the_average_is_the_mean_of_the_weights_after_each_step():
    seen = {}  # loss call c sees the weights after step c - 1
    record = lambda model, call: seen.update(
        {call - 1: {k: v.detach().clone() for k, v in model.state_dict().items()}})
    model, task, result = train(seed=5, cfg=config(average_last_periods=1), on_loss=record)
    assert task.steps == 5 and task.n_periods == 4  # the last epoch: steps 16-20
    after = [seen[16], seen[17], seen[18], seen[19], model.state_dict()]
    mean = {k: torch.stack([w[k] for w in after]).mean(0) for k in after[0]}
    for k, v in task.captured[4].items():
        torch.testing.assert_close(v, mean[k], rtol=0, atol=1e-6)


def test_checkpoint_of_other_fingerprint_is_ignored(tmp_path):
    ckpt = tmp_path / "checkpoint.pt"
    _, _, reference = train(seed=5)
    with pytest.raises(Killed):
        train(seed=5, checkpoint=ckpt, fingerprint="old-params", kill_at_step=13)
    assert torch.load(ckpt, weights_only=True)["loop"]["next_period"] == 2

    _, task, res = train(seed=5, checkpoint=ckpt, fingerprint="new-params")
    assert task.periods_seen == [0, 1, 2, 3]  # started from epoch 0
    assert [row["epoch"] for row in res.history] == [1, 2, 3, 4]
    assert res.history == reference.history
    assert_same_state(res.best_state, reference.best_state)


def test_a_checkpoint_that_would_run_code_is_refused(tmp_path):
    # A checkpoint is read as data: one carrying a pickled callable is not loaded at all.
    ckpt = tmp_path / "checkpoint.pt"
    with pytest.raises(Killed):
        train(seed=5, checkpoint=ckpt, fingerprint="fp", kill_at_step=13)
    torch.save({**torch.load(ckpt, weights_only=True), "hook": print}, ckpt)
    with pytest.raises(PipelineError, match="refusing to resume") as info:
        train(seed=5, checkpoint=ckpt, fingerprint="fp")
    assert str(ckpt) in str(info.value) and "Delete it" in str(info.value)


def test_a_cut_off_checkpoint_is_named_not_resumed(tmp_path):
    ckpt = tmp_path / "checkpoint.pt"
    with pytest.raises(Killed):
        train(seed=5, checkpoint=ckpt, fingerprint="fp", kill_at_step=13)
    ckpt.write_bytes(ckpt.read_bytes()[:1000])
    with pytest.raises(PipelineError, match="not a readable checkpoint") as info:
        train(seed=5, checkpoint=ckpt, fingerprint="fp")
    assert str(ckpt) in str(info.value)


def test_no_checkpoint_written_without_a_path(tmp_path):
    _, _, res = train(seed=5, checkpoint=None)
    assert res.best_period >= 1
    assert list(tmp_path.iterdir()) == []


def test_resume_after_early_stop_does_not_train_further(tmp_path):
    """BUG (pipeline/training.py, fit): when patience stops a run, fit still writes a
    checkpoint for that epoch (next_period = the stop epoch + 1) and does not record that
    it stopped. The runner deletes the checkpoint only after all the MLflow work that
    follows fit; if that fails or is killed, `dvc repro` resumes the checkpoint and trains
    *past* the early stop, giving another model than the finished run. Expected: a re-run
    on the left-over checkpoint gives the same result as the run that stopped early."""
    ckpt = tmp_path / "checkpoint.pt"
    scripted = [0.5, 0.9, 0.7, 0.95, 0.6, 0.6]
    cfg = config(patience=1)
    _, _, first = train(seed=5, cfg=cfg, checkpoint=ckpt, n_periods=6, scripted=scripted)
    assert first.stopped_early and first.best_period == 2 and len(first.history) == 3

    # The checkpoint is still there (the stage failed after fit): re-run the stage.
    _, _, again = train(seed=5, cfg=cfg, checkpoint=ckpt, n_periods=6, scripted=scripted)
    assert again.best_period == first.best_period
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
    epoch_1based = (nan_step - 1) // 5 + 1
    assert f"epoch {epoch_1based}/" in message


def test_nan_loss_stops_before_evaluation():
    # The NaN is in epoch 1: the loop raises before epoch 1 is ever evaluated.
    model, task = ToyRNN(), ToyTask(seed=1, nan_at_step=2)
    with pytest.raises(TrainingDiverged):
        fit(model, task, config(log_every=1), CPU)
    assert task.captured == {}


# --------------------------------------------------------------------------- best period
def test_best_period_and_best_state():
    model, task, res = train(seed=2, n_periods=3, scripted=[0.5, 0.9, 0.7])
    assert res.best_period == 2
    assert res.best_step == 10
    assert res.best_metrics == {"val_accuracy": 0.9}
    assert_same_state(res.best_state, task.captured[2])
    assert differs(res.best_state, task.captured[3])  # not simply the last weights
    assert_same_state(model.state_dict(), task.captured[3])
    assert not res.stopped_early
    assert [row["val_accuracy"] for row in res.history] == [0.5, 0.9, 0.7]


def test_best_period_mode_min():
    task_kw = dict(n_periods=3, scripted=[0.5, 0.9, 0.7])
    setup_runtime(2, "cpu", num_threads=1)
    model, task = ToyRNN(), ToyTask(2, **task_kw)
    task.mode = "min"
    res = fit(model, task, config(), CPU)
    assert res.best_period == 1
    assert_same_state(res.best_state, task.captured[1])


def test_patience_stops_early():
    model, task, res = train(seed=2, cfg=config(patience=1), n_periods=6,
                             scripted=[0.5, 0.9, 0.7, 0.95, 0.99, 0.999])
    assert res.stopped_early
    assert task.periods_seen == [0, 1, 2]
    assert len(res.history) == 3
    assert res.best_period == 2
    assert_same_state(res.best_state, task.captured[2])


def test_patience_not_reached_runs_all_periods():
    _, task, res = train(seed=2, cfg=config(patience=2), n_periods=5,
                         scripted=[0.5, 0.9, 0.7, 0.95, 0.6])
    assert not res.stopped_early
    assert task.periods_seen == [0, 1, 2, 3, 4]
    assert res.best_period == 4


def test_ties_do_not_improve():
    _, task, res = train(seed=2, n_periods=3, scripted=[0.8, 0.8, 0.8])
    assert res.best_period == 1
    assert_same_state(res.best_state, task.captured[1])


def test_a_tie_goes_to_the_lower_validation_loss():
    _, task, res = train(seed=2, n_periods=3, scripted=[(0.8, 0.5), (0.9, 0.4), (0.9, 0.3)])
    assert res.best_period == 3
    assert_same_state(res.best_state, task.captured[3])
    _, _, res = train(seed=2, n_periods=3, scripted=[(0.8, 0.5), (0.9, 0.3), (0.9, 0.4)])
    assert res.best_period == 2


def test_a_tie_won_on_loss_resets_patience():
    _, task, res = train(seed=2, cfg=config(patience=1), n_periods=4,
                         scripted=[(0.9, 0.5), (0.9, 0.4), (0.9, 0.45), (0.95, 0.2)])
    assert res.stopped_early
    assert task.periods_seen == [0, 1, 2]
    assert res.best_period == 2
