"""The word language model that can pretrain the classifier (`sentiment.pretrained: lm`):
the classifier's own embedding + LSTM, trained to predict the next word of the reviews
with truncated BPTT (training/lm.py), then handed over to the classifier."""
from __future__ import annotations

import math

import torch
from torch import nn

from ..core.config import PretrainParams, SentimentParams
from ..training.lm import LanguageModelTask, iterate_streams
from .model import ENCODER_PREFIXES
from .text import PAD_ID

EVAL_STREAMS = 64


class WordLM(nn.Module):
    """The sentiment model's encoder (embedding + LSTM: same shapes, same parameter names)
    trained to predict the next word of the training reviews: pretraining on the reviews'
    own text. An adaptive softmax (frequent words get full-width scores, rare words share
    narrow clusters) keeps a 68k-word output affordable on a CPU."""

    def __init__(self, vocab_size: int, embed_dim: int, hidden_size: int, num_layers: int = 1,
                 dropout: float = 0.0, cutoffs: tuple = (2000, 10000)):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=PAD_ID)
        self.lstm = nn.LSTM(embed_dim, hidden_size, num_layers, batch_first=True,
                            dropout=dropout if num_layers > 1 else 0.0)
        self.dropout = nn.Dropout(dropout)
        # Cutoffs past a small (smoke-run) vocabulary are dropped.
        cutoffs = [c for c in cutoffs if c < vocab_size - 1] or [max(1, vocab_size // 2)]
        self.softmax = nn.AdaptiveLogSoftmaxWithLoss(hidden_size, vocab_size, cutoffs,
                                                     div_value=4.0)

    def forward(self, x: torch.Tensor, targets: torch.Tensor, state=None):
        """Summed negative log-likelihood of `targets` (the next words), and the state."""
        out, state = self.lstm(self.dropout(self.embedding(x)), state)
        out = self.dropout(out)
        nll = -self.softmax(out.reshape(-1, out.shape[-1]).float(), targets.reshape(-1)).output
        return nll.sum(), state

    def encoder_state_dict(self) -> dict[str, torch.Tensor]:
        """The weights the sentiment model starts from."""
        return {k: v.detach().cpu() for k, v in self.state_dict().items()
                if k.startswith(ENCODER_PREFIXES)}


def build_word_lm(vocab_size: int, sentiment: SentimentParams,
                  pretrain: PretrainParams) -> WordLM:
    return WordLM(vocab_size, sentiment.embed_dim, sentiment.hidden_size, sentiment.num_layers,
                  pretrain.dropout, pretrain.cutoffs)


class WordLMTask(LanguageModelTask):
    """The validation loss (nats/word) picks the best evaluation."""
    item_name = "words"

    def window_loss(self, model, inputs, targets, state):
        return model(inputs, targets, state)

    def evaluate(self, model) -> dict[str, float]:
        total, count, state = torch.zeros((), device=self.device), 0, None
        streams = min(EVAL_STREAMS, max(1, (len(self.val) - 1) // (self.p.seq_len + 1)))
        for x, y in iterate_streams(self.val, self.p.seq_len, streams):
            nll, state = model(x.to(self.device), y.to(self.device), state)
            total += nll.float()
            count += y.numel()
        loss = total.item() / count
        return {"val_loss": loss, "val_perplexity": math.exp(loss)}
