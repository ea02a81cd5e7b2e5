"""Dynamic evaluation of the char LM (pipeline/charlm/dynamic.py): every character is
scored before the model learns from it, the trained model is left as it was, and the
settings are chosen on the training text only."""
from __future__ import annotations

import pytest
import torch

from pipeline.charlm.dynamic import dynamic_loss, tune_and_evaluate
from pipeline.charlm.evaluation import stateful_loss
from pipeline.charlm.model import CharLSTM
from pipeline.core.config import DynamicEvalParams

pytestmark = pytest.mark.usefixtures("one_torch_thread")
CPU = torch.device("cpu")


def _model() -> CharLSTM:
    torch.manual_seed(0)
    return CharLSTM(vocab_size=6, embed_dim=5, hidden_size=12, num_layers=2, dropout=0.3)


def _periodic(n: int) -> torch.Tensor:
    return torch.tensor([0, 1, 2, 3, 4, 5, 4, 3, 2, 1] * (n // 10))


def test_without_steps_it_is_the_static_loss():
    model, text = _model(), _periodic(300)
    torch.testing.assert_close(dynamic_loss(model, text, CPU, 0.0, 0.0, seq_len=17),
                               stateful_loss(model, text, CPU), rtol=1e-5, atol=1e-6)


def test_it_learns_while_reading_and_leaves_the_model_alone():
    model, text = _model(), _periodic(600)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    static = dynamic_loss(model, text, CPU, 0.0, 0.0, seq_len=10)
    adapted = dynamic_loss(model, text, CPU, 2.0, 0.0, seq_len=10)
    assert adapted < static - 0.05  # an untrained model picks up the period as it reads
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_each_segment_is_scored_before_the_step_on_it():
    # The first segment is scored by the trained weights, whatever the step size: a
    # text of one segment scores the same with and without steps.
    model, text = _model(), _periodic(20)
    assert dynamic_loss(model, text, CPU, 5.0, 0.0, seq_len=50) == pytest.approx(
        dynamic_loss(model, text, CPU, 0.0, 0.0, seq_len=50))


def test_the_settings_come_from_the_training_text_alone():
    model, train = _model(), _periodic(800)
    p = DynamicEvalParams(seq_len=20, lrs=(0.001, 0.5), decays=(0.0, 0.1), tune_chars=400)
    tune = train[-401:]
    expected = min(((lr, d) for lr in p.lrs for d in p.decays),
                   key=lambda s: dynamic_loss(model, tune, CPU, s[0], s[1], p.seq_len))
    results = [tune_and_evaluate(model, train, val, CPU, p)
               for val in (_periodic(200), torch.randint(0, 6, (200,)))]
    for r in results:
        assert (r["dynamic_lr"], r["dynamic_decay"]) == expected
        assert r["tune_loss_dynamic"] < r["tune_loss_static"]
    # The held-out figures differ (other text), the choice did not.
    assert results[0]["val_loss_dynamic"] != results[1]["val_loss_dynamic"]
