"""The character LSTM of the chapter."""
from __future__ import annotations

import torch
from torch import nn

from ..core.config import CharLMParams


class SequenceDropout(nn.Module):
    """Dropout with one mask per sequence, shared by all its time steps (variational
    dropout, as in AWD-LSTM). One [B, 1, F] mask instead of a [B, T, F] one: cheaper to
    draw and apply, and a unit dropped from a sequence stays dropped for all of it."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, T, F]
        if not self.training or self.p == 0:
            return x
        keep = x.new_empty(x.shape[0], 1, x.shape[2]).bernoulli_(1 - self.p)
        return x * keep.div_(1 - self.p)


class CharLSTM(nn.Module):
    """Embedding -> LSTM layers -> linear over the characters, with sequence dropout on the
    embeddings, between layers and before the output. One LSTM call per layer and window,
    not a Python loop per character (the book's loop is 2-3x slower on CPU)."""

    def __init__(self, vocab_size: int, embed_dim: int = 256, hidden_size: int = 512,
                 num_layers: int = 1, dropout: float = 0.0):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_dim)
        # One nn.LSTM per layer, so the dropout between layers can be a sequence mask.
        self.lstm = nn.ModuleList(
            nn.LSTM(embed_dim if i == 0 else hidden_size, hidden_size, batch_first=True)
            for i in range(num_layers))
        self.dropout = SequenceDropout(dropout)
        self.fc = nn.Linear(hidden_size, vocab_size)

    def forward(self, x: torch.Tensor, state=None):
        """Logits [B, T, V] and the (h, c) state at the window's end, each
        [num_layers, B, H] as nn.LSTM's."""
        out = self.embedding(x)
        h_out, c_out = [], []
        for i, layer in enumerate(self.lstm):
            layer_state = None if state is None else (state[0][i:i + 1], state[1][i:i + 1])
            out, (h, c) = layer(self.dropout(out), layer_state)
            h_out.append(h)
            c_out.append(c)
        return self.fc(self.dropout(out)), (torch.cat(h_out), torch.cat(c_out))


def build_charlm(vocab_size: int, p: CharLMParams) -> CharLSTM:
    return CharLSTM(vocab_size, p.embed_dim, p.hidden_size, p.num_layers, p.dropout)
