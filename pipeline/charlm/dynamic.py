"""Dynamic evaluation (Krause et al., 2018): the model keeps learning while it reads.

The text is read front to back in segments. Each segment is scored with the current
weights first, and only then is one SGD step taken on its loss, so every character is
predicted before the model has seen it. A decay pulls the weights back toward the
trained ones, so what was learnt from a passage fades as the text moves on. The step
size and decay are chosen on the end of the training text, never on the text scored.
"""
from __future__ import annotations

import copy
import logging

import torch
import torch.nn.functional as F

from ..core.config import DynamicEvalParams
from .model import CharLSTM

log = logging.getLogger(__name__)


def dynamic_loss(model: CharLSTM, text: torch.Tensor, device: torch.device, lr: float,
                 decay: float, seq_len: int) -> float:
    """Mean next-character loss (nats) of `text` read with dynamic evaluation. `model`
    itself is left as it was: a copy adapts."""
    adapted = copy.deepcopy(model).to(device)
    adapted.eval()  # no dropout: the adaptation is plain gradient steps on the text
    params = [p for p in adapted.parameters()]
    trained = [p.detach().clone() for p in params]
    total, state = 0.0, None
    for start in range(0, len(text) - 1, seq_len):
        end = min(start + seq_len, len(text) - 1)
        x = text[start:end][None, :].to(device)
        y = text[start + 1:end + 1].to(device)
        logits, state = adapted(x, state)
        state = tuple(s.detach() for s in state)
        loss = F.cross_entropy(logits[0].float(), y, reduction="sum")
        total += loss.item()
        grads = torch.autograd.grad(loss / len(y), params)
        with torch.no_grad():
            for p, g, p0 in zip(params, grads, trained):
                p.sub_(g, alpha=lr).add_(p0 - p, alpha=decay)
    return total / (len(text) - 1)


def tune_and_evaluate(model: CharLSTM, train: torch.Tensor, val: torch.Tensor,
                      device: torch.device, p: DynamicEvalParams) -> dict:
    """Pick the step size and decay on the last `p.tune_chars` of the training text,
    then score `val` with them. Returns the held-out loss and the settings chosen."""
    tune = train[-(p.tune_chars + 1):]
    static = dynamic_loss(model, tune, device, 0.0, 0.0, p.seq_len)
    results = {}
    for lr in p.lrs:
        for decay in p.decays:
            results[(lr, decay)] = dynamic_loss(model, tune, device, lr, decay, p.seq_len)
            log.info("dynamic evaluation, lr %g decay %g: %.4f nats/char on the end of the "
                     "training text (static %.4f)", lr, decay, results[(lr, decay)], static)
    lr, decay = min(results, key=results.get)
    return {"val_loss_dynamic": dynamic_loss(model, val, device, lr, decay, p.seq_len),
            "dynamic_lr": lr, "dynamic_decay": decay,
            "tune_loss_static": static, "tune_loss_dynamic": results[(lr, decay)]}
