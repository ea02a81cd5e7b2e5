"""PPMI-SVD word vectors (pipeline/embeddings.py) and the `embeddings` choice of the
pretrain stage: what is counted, what is learned, what is written."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from pipeline.core.config import Params, PretrainParams, SentimentParams
from pipeline.sentiment import embeddings
from pipeline.sentiment.model import build_sentiment, load_encoder
from pipeline.sentiment.predict import pretrained_encoder
from pipeline.sentiment.text import PAD_ID
from pipeline.stages.pretrain import pretrain

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_cooccurrence_counts_near_pairs_within_a_review():
    # Two reviews, [2 3 4] and [5 2], each ended by the boundary word 0.
    stream = np.array([2, 3, 4, 0, 5, 2, 0])
    counts = embeddings.cooccurrence(stream, boundary=0, vocab_size=6, window=2).toarray()
    expected = np.zeros((6, 6))
    for a, b, weight in [(2, 3, 1.0), (3, 4, 1.0), (2, 4, 0.5), (5, 2, 1.0)]:
        expected[a, b] += weight
        expected[b, a] += weight
    # (4, 5) and (3, 5) are within the window but in different reviews: not counted.
    np.testing.assert_allclose(counts, expected)


def test_ppmi_keeps_only_positive_association():
    counts = embeddings.cooccurrence(np.array([2, 3, 2, 3, 4, 5, 4, 5, 2, 4, 0]), 0, 6, 1)
    weighted = embeddings.ppmi(counts)
    dense, c = weighted.toarray(), counts.toarray()
    assert (dense >= 0).all() and weighted.nnz > 0
    total, words = c.sum(), c.sum(axis=1)
    contexts = words ** embeddings.CONTEXT_SMOOTHING
    for i, j in zip(*np.nonzero(c)):
        pmi = np.log(c[i, j] * total / (words[i] * contexts[j] * total / contexts.sum()))
        assert dense[i, j] == pytest.approx(max(pmi, 0.0), rel=1e-5)


def _two_topic_stream(seed: int = 0) -> np.ndarray:
    """Words 2 and 3 only ever appear among words 10-19; 4 and 5 among words 20-29."""
    rng = np.random.default_rng(seed)
    parts = []
    for _ in range(400):
        word, context = ((rng.choice([2, 3]), np.arange(10, 20)) if rng.random() < 0.5
                         else (rng.choice([4, 5]), np.arange(20, 30)))
        parts += [rng.choice(context, 3), [word], rng.choice(context, 3), [PAD_ID]]
    return np.concatenate(parts)


def test_words_sharing_contexts_get_near_vectors():
    counts = embeddings.cooccurrence(_two_topic_stream(), PAD_ID, 30, 3)
    vectors = embeddings.svd_vectors(embeddings.ppmi(counts), 8, seed=1)
    words = [f"w{i}" for i in range(30)]
    near = embeddings.nearest(vectors, words, ["w2", "w4", "missing"], k=1)
    assert near == {"w2": ["w3"], "w4": ["w5"]}  # unknown probe words are left out
    assert vectors.shape == (30, 8) and vectors.dtype == np.float32
    assert vectors.std() == pytest.approx(1.0, rel=1e-4)  # nn.Embedding's scale
    again = embeddings.svd_vectors(embeddings.ppmi(counts), 8, seed=1)
    assert again.tobytes() == vectors.tobytes()


def test_more_dimensions_than_words_are_zero_padded():
    counts = embeddings.cooccurrence(_two_topic_stream(), PAD_ID, 30, 2)
    vectors = embeddings.svd_vectors(embeddings.ppmi(counts), 40, seed=1)
    assert vectors.shape == (30, 40)
    assert not vectors[:, 29:].any() and vectors[:, :29].any()


# --------------------------------------------------------------------------- the stage

def _prepared(root, rng) -> list[str]:
    """A small prepared IMDb directory; word 'testonly' occurs only in val/test reviews,
    'unsuponly' only in the unlabelled ones."""
    words = ["<pad>", "<unk>"] + [f"w{i}" for i in range(40)] + ["testonly", "unsuponly"]
    rows, tokens, offset = [], [], 0
    for split, n in (("train", 60), ("val", 10), ("test", 10), ("unsup", 20)):
        for i in range(n):
            review = rng.integers(2, 42, size=int(rng.integers(5, 30)))
            if split in ("val", "test"):
                review[0] = words.index("testonly")
            if split == "unsup":
                review[0] = words.index("unsuponly")
            rows.append({"split": split, "id": i, "rating": 1,
                         "label": -1 if split == "unsup" else i % 2,
                         "movie": f"m{i}", "n_tokens": len(review), "offset": offset})
            tokens.append(review)
            offset += len(review)
    out = root / "data/prepared/imdb"
    out.mkdir(parents=True)
    np.save(out / "tokens.npy", np.concatenate(tokens).astype(np.int32))
    pd.DataFrame(rows).to_parquet(out / "reviews.parquet")
    (out / "vocab.txt").write_text("\n".join(words) + "\n")
    (out / "summary.json").write_text(json.dumps({"reviews": {"train": 60}}))
    return words


def test_embeddings_stage_learns_from_training_and_unlabelled_text_only(
        tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the stage reads and writes under ./data and ./plots
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    words = _prepared(tmp_path, np.random.default_rng(0))
    params = Params(sentiment=SentimentParams(embed_dim=8, hidden_size=8,
                                              pretrained="embeddings"),
                    pretrain=PretrainParams(embedding_window=2))
    summary = pretrain(params)
    out = tmp_path / "data/models/pretrain"
    assert sorted(p.name for p in out.iterdir()) == ["embeddings.json", "encoder.pt",
                                                     "vocab.txt"]
    encoder = pretrained_encoder(tmp_path / "data/prepared/imdb/vocab.txt", out)
    assert list(encoder) == ["embedding.weight"]
    vectors = encoder["embedding.weight"]
    assert vectors.shape == (len(words), 8)
    assert not vectors[PAD_ID].any()  # the padding row stays zero
    # Never test or validation text: a word seen only there has nothing to learn from.
    assert not vectors[words.index("testonly")].any()
    assert vectors[words.index("w7")].any() and vectors[words.index("unsuponly")].any()
    table = pd.read_parquet(tmp_path / "data/prepared/imdb/reviews.parquet")
    assert summary["train_words"] == table.loc[table["split"].isin(["train", "unsup"]),
                                               "n_tokens"].sum()
    assert summary["unlabelled_reviews"] == 20
    # What there is to look at for word vectors: their spectrum, no empty LM chart.
    assert sorted(p.name for p in (tmp_path / "plots/pretrain").iterdir()) == [
        "spectrum.csv", "spectrum.png"]
    spectrum = pd.read_csv(tmp_path / "plots/pretrain/spectrum.csv")
    assert list(spectrum["dimension"]) == list(range(1, 9))
    assert spectrum["cumulative"].iloc[-1] == pytest.approx(1.0)
    # The classifier starts from exactly these vectors; its LSTM keeps its own start.
    model = build_sentiment(len(words), params.sentiment)
    lstm_before = model.lstm.weight_ih_l0.clone()
    load_encoder(model, encoder)
    assert torch.equal(model.embedding.weight, vectors)
    assert torch.equal(model.lstm.weight_ih_l0, lstm_before)
    # Deterministic: a re-run writes the same bytes, so DVC sees the same output.
    first = {p.name: p.read_bytes() for p in out.iterdir()}
    pretrain(params)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == first
    import mlflow
    runs = mlflow.search_runs(experiment_names=["pretrain"])
    assert len(runs) == 2 and set(runs["params.pretrain.embedding_window"]) == {"2"}
