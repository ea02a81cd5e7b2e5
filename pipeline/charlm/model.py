"""The character LSTM of the chapter."""
from __future__ import annotations

import torch
from torch import nn

from ..core.config import CharLMParams


class CharLSTM(nn.Module):
    """Embedding -> LSTM -> linear over the characters. One LSTM call per window, not a
    Python loop per character (the book's loop is 2-3x slower on CPU)."""

    def __init__(self, vocab_size: int, embed_dim: int = 256, hidden_size: int = 512,
                 num_layers: int = 1, dropout: float = 0.0):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_dim)
        self.lstm = nn.LSTM(embed_dim, hidden_size, num_layers, batch_first=True,
                            dropout=dropout if num_layers > 1 else 0.0)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(hidden_size, vocab_size)

    def forward(self, x: torch.Tensor, state=None):
        out, state = self.lstm(self.dropout(self.embedding(x)), state)
        return self.fc(self.dropout(out)), state


def build_charlm(vocab_size: int, p: CharLMParams) -> CharLSTM:
    return CharLSTM(vocab_size, p.embed_dim, p.hidden_size, p.num_layers, p.dropout)
