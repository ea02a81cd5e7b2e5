"""Pretraining (pipeline/stages/pretrain.py): what it reads, what it writes when off, and
the checks on what the sentiment model loads. The word vectors themselves:
tests/test_embeddings.py."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from pipeline.core.config import Params
from pipeline.sentiment.predict import pretrained_encoder
from pipeline.sentiment.pretraining import pretraining_text, review_stream
from pipeline.sentiment.reviews import ReviewSet
from pipeline.sentiment.text import PAD_ID
from pipeline.stages.pretrain import pretrain

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _reviews(lists: list[list[int]]) -> ReviewSet:
    lengths = np.array([len(r) for r in lists])
    table = pd.DataFrame({"label": np.zeros(len(lists), np.float32), "n_tokens": lengths,
                          "offset": np.concatenate([[0], np.cumsum(lengths)[:-1]])})
    return ReviewSet(np.concatenate(lists).astype(np.int32), table, head_tokens=2, tail_tokens=1)


def _split(stream: torch.Tensor) -> list[list[int]]:
    """The stream cut back into reviews at the end-of-review markers."""
    out, current = [], []
    for t in stream.tolist():
        if t == PAD_ID:
            out.append(current)
            current = []
        else:
            current.append(t)
    assert current == [], "the stream ends with an end-of-review marker"
    return out


def test_review_stream_holds_every_review_whole_once():
    reviews = [[5, 6, 7, 8, 9], [10, 11], [12, 13, 14, 15], [16]]
    stream = review_stream(_reviews(reviews))
    assert stream.dtype == torch.int64
    # Whole reviews, not the classifier's head + tail cut, in file order.
    assert _split(stream) == reviews


def test_encoder_of_another_vocabulary_is_refused(tmp_path):
    encoder_dir = tmp_path / "pretrain"
    encoder_dir.mkdir()
    torch.save({"embedding.weight": torch.randn(3, 8)}, encoder_dir / "encoder.pt")
    (encoder_dir / "vocab.txt").write_text("<pad>\n<unk>\nthe\n")
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("<pad>\n<unk>\nthe\n")
    assert set(pretrained_encoder(vocab, encoder_dir)) == {"embedding.weight"}
    vocab.write_text("<pad>\n<unk>\na\n")
    with pytest.raises(ValueError, match="another vocabulary"):
        pretrained_encoder(vocab, encoder_dir)
    with pytest.raises(FileNotFoundError, match="dvc repro pretrain"):
        pretrained_encoder(vocab, tmp_path / "missing")


def test_pretraining_off_writes_a_note_and_no_model(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the stage writes under ./data and ./plots
    note = pretrain(Params())  # the book's recipe: no pretraining
    assert note["pretrained"] == "none"
    out = tmp_path / "data/models/pretrain"
    assert sorted(p.name for p in out.iterdir()) == ["skipped.json"]
    # No chart of nothing: an empty spectrum table is all there is to plot.
    assert sorted(p.name for p in (tmp_path / "plots/pretrain").iterdir()) == ["spectrum.csv"]
    assert ((tmp_path / "plots/pretrain/spectrum.csv").read_text()
            == "dimension,share,cumulative\n")
    # Nothing there that a classifier asking for pretraining could mistake for a model.
    with pytest.raises(FileNotFoundError, match="pretrain"):
        pretrained_encoder(tmp_path / "vocab.txt", out)


def test_pretraining_text_is_training_then_unlabelled_reviews(caplog):
    train, unlabelled = [[5, 6, 7], [8, 9]], [[3, 4], [2, 2, 2, 2]]
    both = pretraining_text({"train": _reviews(train), "unsup": _reviews(unlabelled)})
    assert _split(both) == train + unlabelled  # whole reviews, whatever the head/tail cut
    assert caplog.records == []
    # An archive without train/unsup: the training reviews alone, and it warns so.
    alone = pretraining_text({"train": _reviews(train)})
    assert _split(alone) == train
    assert [r.levelname for r in caplog.records] == ["WARNING"]
    assert "no unlabelled reviews" in caplog.text
