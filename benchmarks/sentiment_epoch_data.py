"""The book's side of bench_sentiment_epoch.py (its classifier and its collate
function) and the reviews every variant trains on."""
from __future__ import annotations

import tempfile
from pathlib import Path

import benchdata as bd
import benchutil as bu
import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_sequence


class BookSentimentRNN(nn.Module):
    """The book's classifier: packed sequence, last hidden state, FC, ReLU, FC, sigmoid.
    Layers are created in the same order and shapes as pipeline.sentiment.model's
    SentimentLSTM, so the same seed gives the same initial weights."""

    def __init__(self, vocab_size: int, embed_dim: int = 20, hidden_size: int = 64,
                 fc_size: int = 64):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=0)
        self.lstm = nn.LSTM(embed_dim, hidden_size, batch_first=True)
        self.fc = nn.Sequential(nn.Linear(hidden_size, fc_size), nn.ReLU(),
                                nn.Linear(fc_size, 1))

    def forward(self, tokens, lengths):
        out = self.embedding(tokens)
        out = pack_padded_sequence(out, lengths.cpu().numpy(), enforce_sorted=False,
                                   batch_first=True)
        _, (hidden, _) = self.lstm(out)
        return torch.sigmoid(self.fc(hidden[-1])).squeeze(1)


# ---------------------------------------------------------------- data
def load_data(args, n_train: int, n_val: int) -> dict:
    """The same n_train training and n_val validation reviews for every variant: as
    pre-encoded ReviewSets (memory-mapped tokens) and as raw texts for the book."""
    from pipeline.sentiment.reviews import ReviewSet
    from pipeline.sentiment.text import Vocab
    prepared = bd.prepared_imdb_dir(args)
    rng = np.random.default_rng(args.seed)
    if prepared is not None:
        tokens = np.load(prepared / "tokens.npy", mmap_mode="r")
        table = pd.read_parquet(prepared / "reviews.parquet")
        vocab = Vocab.load(prepared / "vocab.txt")
        parts = {}
        for split, n in (("train", n_train), ("val", n_val)):
            rows = table[table["split"] == split]
            parts[split] = rows.iloc[rng.permutation(len(rows))[:n]].reset_index(drop=True)
        raw = bd.raw_imdb_reviews(args)
        if raw is not None:
            # Validation reviews are training reviews of the archive.
            text_of = {("test" if sp == "test" else "train", lab, i): t for sp, lab, i, t in
                       raw[["split", "label", "id", "text"]].itertuples(index=False)}
            texts = {s: [text_of[("test" if r.split == "test" else "train", r.label, r.id)]
                         for r in part.itertuples()] for s, part in parts.items()}
            text_desc = "texts from the acquired reviews"
        else:
            itos = np.array(vocab.itos, dtype=object)
            texts = {s: [" ".join(itos[tokens[o:o + n]]) for o, n in
                         zip(part["offset"], part["n_tokens"])] for s, part in parts.items()}
            text_desc = "texts rebuilt from the token ids (no raw reviews found)"
        desc = (f"real: {prepared} ({n_train:,} of {int((table['split'] == 'train').sum()):,} "
                f"training reviews, {n_val:,} validation reviews, vocabulary {len(vocab):,}; "
                f"{text_desc})")
        return {"tokens": tokens, "parts": parts, "stoi": vocab.stoi, "vocab_size": len(vocab),
                "texts": texts, "desc": desc,
                "sets": {s: ReviewSet(tokens, p) for s, p in parts.items()}}

    ids, lengths, labels = bd.synthetic_encoded(n_train + n_val, args.seed)
    splits = ["train"] * n_train + ["val"] * n_val
    table = bd.synthetic_review_table(lengths, labels, splits)
    words = bd.synthetic_words(seed=args.seed)
    all_texts = bd.synthetic_texts(ids, lengths, words, args.seed)
    # Memory-mapped like the real prepared data.
    tmp = Path(tempfile.mkdtemp(prefix="bench-sentiment-"))
    np.save(tmp / "tokens.npy", ids)
    tokens = np.load(tmp / "tokens.npy", mmap_mode="r")
    parts = {s: table[table["split"] == s].reset_index(drop=True) for s in ("train", "val")}
    texts = {"train": all_texts[:n_train], "val": all_texts[n_train:]}
    desc = (f"synthetic: {n_train:,} training + {n_val:,} validation reviews, log-normal "
            f"lengths (median {np.median(lengths):.0f}, max {lengths.max()} tokens), vocabulary "
            f"{bd.SYN_VOCAB:,} (no prepared reviews under {bu.data_root(args)})")
    return {"tokens": tokens, "parts": parts, "stoi": {w: i for i, w in enumerate(words)},
            "vocab_size": bd.SYN_VOCAB, "texts": texts, "desc": desc,
            "sets": {s: ReviewSet(tokens, p) for s, p in parts.items()}}


def book_collate_fn(stoi: dict):
    from pipeline.sentiment.text import tokenize
    get = stoi.get

    def collate(batch):
        seqs, labels = [], []
        for text, label in batch:
            ids = [get(t, 1) for t in tokenize(text)] or [1]
            seqs.append(torch.tensor(ids, dtype=torch.int64))
            labels.append(label)
        lengths = torch.tensor([len(s) for s in seqs], dtype=torch.int64)
        return (pad_sequence(seqs, batch_first=True, padding_value=0),
                torch.tensor(labels, dtype=torch.float32), lengths)
    return collate
