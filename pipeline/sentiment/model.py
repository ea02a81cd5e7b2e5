"""The review classifier of the chapter, and how it starts from a pretrained encoder."""
from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from ..core.config import SentimentParams
from .text import PAD_ID, UNK_ID


class SentimentLSTM(nn.Module):
    """Embedding -> LSTM -> (pooling) -> FC -> ReLU -> one logit.

    The book's model with pooling="last" and one unidirectional layer. The book ends in a
    sigmoid + BCELoss; this returns the logit for BCEWithLogitsLoss, which is the same
    model computed more stably.
    """

    def __init__(self, vocab_size: int, embed_dim: int = 20, hidden_size: int = 64,
                 num_layers: int = 1, bidirectional: bool = False, dropout: float = 0.0,
                 fc_size: int = 64, pooling: str = "last", word_dropout: float = 0.0):
        super().__init__()
        self.bidirectional, self.pooling, self.word_dropout = bidirectional, pooling, word_dropout
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=PAD_ID)
        self.lstm = nn.LSTM(embed_dim, hidden_size, num_layers, batch_first=True,
                            bidirectional=bidirectional,
                            dropout=dropout if num_layers > 1 else 0.0)
        features = hidden_size * (2 if bidirectional else 1)
        if pooling == "last_max_mean":
            features *= 3
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Sequential(nn.Linear(features, fc_size), nn.ReLU(),
                                nn.Dropout(dropout), nn.Linear(fc_size, 1))

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        if self.training and self.word_dropout > 0:
            # Word dropout: whole words become <unk>, so the classifier cannot lean on a
            # few rare, telling words (the largest source of overfitting on 20k reviews).
            drop = (torch.rand(tokens.shape, device=tokens.device) < self.word_dropout)
            tokens = tokens.masked_fill(drop & (tokens != PAD_ID), UNK_ID)
        x = self.dropout(self.embedding(tokens))
        if self.bidirectional:
            # The reverse direction must start at each review's own last token, not at
            # the padding: packing does that. (CPU packed LSTMs are slower; see README.)
            packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True,
                                          enforce_sorted=False)
            out, (h, _) = self.lstm(packed)
            out, _ = pad_packed_sequence(out, batch_first=True, total_length=tokens.shape[1])
            last = torch.cat([h[-2], h[-1]], dim=1)
        else:
            # Right padding never reaches earlier positions of a forward LSTM, so the
            # output at the last real token is the unpadded answer (and on CPU much
            # faster than a packed sequence).
            out, _ = self.lstm(x)
            idx = (lengths - 1).clamp(min=0).view(-1, 1, 1).expand(-1, 1, out.shape[2])
            last = out.gather(1, idx).squeeze(1)
        features = last
        if self.pooling == "last_max_mean":
            mask = (torch.arange(tokens.shape[1], device=tokens.device)[None, :]
                    < lengths[:, None]).unsqueeze(2)
            masked_max = out.masked_fill(~mask, float("-inf")).amax(dim=1)
            mean = (out * mask).sum(dim=1) / lengths[:, None].to(out.dtype)
            features = torch.cat([last, masked_max, mean], dim=1)
        return self.fc(self.dropout(features)).squeeze(1)


ENCODER_PREFIXES = ("embedding.", "lstm.")


def load_encoder(model: SentimentLSTM, encoder_state: dict[str, torch.Tensor]) -> None:
    """Start `model` from pretrained weights (the word vectors' embedding); the rest keeps
    its initial values."""
    own = model.state_dict()
    mismatched = [f"{k}: pretrained {tuple(v.shape)} vs model {tuple(own[k].shape)}"
                  for k, v in encoder_state.items() if k in own and own[k].shape != v.shape]
    unknown = sorted(set(encoder_state) - set(own))
    if mismatched or unknown or not encoder_state:
        raise ValueError("the pretrained encoder does not fit this sentiment model ("
                         + "; ".join(mismatched + [f"unknown {k}" for k in unknown])
                         + "): sentiment.embed_dim, hidden_size and num_layers must be the "
                           "ones it was pretrained with (re-run pretrain)")
    model.load_state_dict(encoder_state, strict=False)


def build_sentiment(vocab_size: int, p: SentimentParams) -> SentimentLSTM:
    return SentimentLSTM(vocab_size, p.embed_dim, p.hidden_size, p.num_layers,
                         p.bidirectional, p.dropout, p.fc_size, p.pooling, p.word_dropout)
