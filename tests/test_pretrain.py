"""Word-LM pretraining (pipeline/stages/pretrain.py): what it reads, how it learns, and
the checks on what the sentiment model loads."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from pipeline.core.config import Params, PretrainParams
from pipeline.sentiment.predict import pretrained_encoder
from pipeline.sentiment.pretraining import pretraining_text, review_stream
from pipeline.sentiment.reviews import ReviewSet
from pipeline.sentiment.text import PAD_ID
from pipeline.sentiment.wordlm import WordLM, WordLMTask
from pipeline.stages.pretrain import pretrain
from pipeline.training.loop import LoopConfig, fit

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
    stream = review_stream(_reviews(reviews), seed=3)
    assert stream.dtype == torch.int64
    got = _split(stream)
    # Whole reviews, not the classifier's head + tail cut.
    assert sorted(got) == sorted(reviews)
    assert review_stream(_reviews(reviews), seed=3).tolist() == stream.tolist()
    orders = {tuple(map(tuple, _split(review_stream(_reviews(reviews), seed=s))))
              for s in range(10)}
    assert len(orders) > 1, "the seed shuffles the review order"
    assert _split(review_stream(_reviews(reviews))) == reviews  # no seed: file order


def test_word_lm_task_learns_a_pattern():
    torch.manual_seed(0)
    pattern = torch.tensor([4, 5, 6, 7, 8, 9, PAD_ID])
    train, val = pattern.repeat(60), pattern.repeat(12)
    p = PretrainParams(seq_len=7, batch_size=4, steps=60, eval_every=20, lr=0.02,
                       dropout=0.0, cutoffs=(5, 8))
    model = WordLM(12, embed_dim=8, hidden_size=16, cutoffs=p.cutoffs)
    task = WordLMTask(train, val, p, seed=0, device=torch.device("cpu"))
    model.eval()
    with torch.no_grad():
        before = task.evaluate(model)["val_loss"]
    cfg = LoopConfig(lr=p.lr, weight_decay=0.0, scheduler="none", clip_grad_norm=1.0,
                     patience=None, checkpoint_every=1)
    result = fit(model, task, cfg, torch.device("cpu"))
    assert before > 2.0  # ~log(12) for a fresh model
    assert result.best_metrics["val_loss"] < before / 5
    assert result.best_metrics["val_perplexity"] == pytest.approx(
        np.exp(result.best_metrics["val_loss"]))
    assert [row["step"] for row in result.history] == [20, 40, 60]


def test_encoder_of_another_vocabulary_is_refused(tmp_path):
    lm_dir = tmp_path / "pretrain"
    lm_dir.mkdir()
    torch.save(WordLM(12, 8, 16, cutoffs=(5,)).encoder_state_dict(), lm_dir / "encoder.pt")
    (lm_dir / "vocab.txt").write_text("<pad>\n<unk>\nthe\n")
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("<pad>\n<unk>\nthe\n")
    assert set(pretrained_encoder(vocab, lm_dir)) == {
        "embedding.weight", "lstm.weight_ih_l0", "lstm.weight_hh_l0", "lstm.bias_ih_l0",
        "lstm.bias_hh_l0"}
    vocab.write_text("<pad>\n<unk>\na\n")
    with pytest.raises(ValueError, match="another vocabulary"):
        pretrained_encoder(vocab, lm_dir)
    with pytest.raises(FileNotFoundError, match="dvc repro pretrain"):
        pretrained_encoder(vocab, tmp_path / "missing")


def test_pretraining_off_writes_a_note_and_no_model(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the stage writes under ./data and ./plots
    note = pretrain(Params())  # the book's recipe: no pretraining
    assert note["pretrained"] == "none"
    out = tmp_path / "data/models/pretrain"
    assert sorted(p.name for p in out.iterdir()) == ["skipped.json"]
    # No chart of nothing: an empty LM history table is all there is to plot.
    assert sorted(p.name for p in (tmp_path / "plots/pretrain").iterdir()) == ["history.csv"]
    assert ((tmp_path / "plots/pretrain/history.csv").read_text()
            == "evaluation,step,train_loss,val_loss\n")
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
    shuffled = pretraining_text({"train": _reviews(train), "unsup": _reviews(unlabelled)}, seed=3)
    assert sorted(map(tuple, _split(shuffled))) == sorted(map(tuple, train + unlabelled))
