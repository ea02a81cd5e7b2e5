"""Review batches and character batches (pipeline/data.py)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from pipeline.charlm.data import random_windows
from pipeline.charlm.task import StreamBatches
from pipeline.sentiment.batches import review_batch
from pipeline.sentiment.reviews import ReviewSet
from pipeline.sentiment.text import PAD_ID


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def make_reviews(lengths: list[int], labels: list[int] | None = None, start_id: int = 2):
    """Concatenated token array + the table the prepare stage writes. Review i holds
    the ids start_id + 1000 * i + (0, 1, 2, ...) so every token says where it came from."""
    parts = [np.arange(n, dtype=np.int32) + start_id + 1000 * i for i, n in enumerate(lengths)]
    tokens = np.concatenate(parts) if parts else np.zeros(0, np.int32)
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    labels = labels if labels is not None else [i % 2 for i in range(len(lengths))]
    table = pd.DataFrame({"offset": offsets, "n_tokens": np.asarray(lengths, np.int64),
                          "label": np.asarray(labels, np.int64)})
    return tokens, table, parts


# --------------------------------------------------------------------------- ReviewSet.batch
def test_batch_right_padded_with_zero_and_lengths():
    lengths = [3, 7, 1, 5]
    tokens, table, parts = make_reviews(lengths, labels=[1, 0, 0, 1])
    rs = ReviewSet(tokens, table)
    assert len(rs) == 4
    b = review_batch(rs, np.array([0, 1, 2, 3]))
    assert b.tokens.shape == (4, 7)
    assert b.tokens.dtype == torch.int64
    assert b.lengths.tolist() == lengths
    assert b.labels.dtype == torch.float32
    assert b.labels.tolist() == [1.0, 0.0, 0.0, 1.0]
    for row, n in enumerate(lengths):
        assert b.tokens[row, :n].tolist() == parts[row].tolist()
        assert (b.tokens[row, n:] == PAD_ID).all()
    # real tokens are never the pad id here, so padding is exactly the positions >= length
    assert ((b.tokens != PAD_ID).sum(dim=1) == b.lengths).all()


def test_batch_respects_index_order_and_width():
    tokens, table, parts = make_reviews([2, 6, 4])
    rs = ReviewSet(tokens, table)
    b = review_batch(rs, np.array([2, 0]))
    assert b.tokens.shape == (2, 4)  # width = longest review *in this batch*
    assert b.tokens[0].tolist() == parts[2].tolist()
    assert b.tokens[1, :2].tolist() == parts[0].tolist()
    assert b.lengths.tolist() == [4, 2]


def test_head_tail_truncation():
    head, tail = 3, 2
    lengths = [10, 5, 4, 6]
    tokens, table, parts = make_reviews(lengths)
    rs = ReviewSet(tokens, table, head_tokens=head, tail_tokens=tail)
    b = review_batch(rs, np.arange(4))
    # kept lengths: min(n, head + tail)
    assert b.lengths.tolist() == [5, 5, 4, 5]
    assert b.tokens.shape == (4, 5)
    # long reviews: first `head` then last `tail` tokens
    expected0 = list(parts[0][:head]) + list(parts[0][-tail:])
    assert b.tokens[0].tolist() == expected0
    expected3 = list(parts[3][:head]) + list(parts[3][-tail:])
    assert b.tokens[3].tolist() == expected3
    # reviews that fit are untouched
    assert b.tokens[1].tolist() == parts[1].tolist()
    assert b.tokens[2, :4].tolist() == parts[2].tolist()
    assert b.tokens[2, 4].item() == PAD_ID
    assert rs.review(0).tolist() == expected0
    assert rs.full_lengths.tolist() == lengths


def test_review_set_on_a_slice_of_a_shared_array():
    # load_reviews gives each split a table whose offsets point into one shared array
    tokens, table, parts = make_reviews([3, 4, 5, 6])
    split = table.iloc[[1, 3]].reset_index(drop=True)
    rs = ReviewSet(tokens, split)
    b = review_batch(rs, np.array([0, 1]))
    assert b.tokens[0, :4].tolist() == parts[1].tolist()
    assert b.tokens[1].tolist() == parts[3].tolist()


# --------------------------------------------------------------------------- ReviewSet.batches
@pytest.fixture(scope="module")
def many_reviews():
    rng = np.random.default_rng(123)
    lengths = rng.integers(1, 400, size=2000).tolist()
    tokens, table, _ = make_reviews(lengths)
    return ReviewSet(tokens, table)


def _flat(batches):
    return np.concatenate(batches)


def test_shuffled_batches_cover_every_index_once(many_reviews):
    batches = many_reviews.batches(32, shuffle=True, seed=7)
    flat = _flat(batches)
    assert len(flat) == len(many_reviews)
    assert sorted(flat.tolist()) == list(range(len(many_reviews)))
    assert all(1 <= len(b) <= 32 for b in batches)
    assert sum(len(b) == 32 for b in batches) >= len(batches) - 2  # at most a pool tail short


def test_unshuffled_batches_cover_every_index_once_sorted(many_reviews):
    batches = many_reviews.batches(50)
    flat = _flat(batches)
    assert sorted(flat.tolist()) == list(range(len(many_reviews)))
    lens = many_reviews.lengths[flat]
    assert (np.diff(lens) >= 0).all()


def test_shuffled_batches_deterministic_per_seed(many_reviews):
    a = many_reviews.batches(32, shuffle=True, seed=7)
    b = many_reviews.batches(32, shuffle=True, seed=7)
    c = many_reviews.batches(32, shuffle=True, seed=8)
    assert len(a) == len(b)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not (len(a) == len(c) and all(np.array_equal(x, y) for x, y in zip(a, c)))
    # not merely the same batches in another order: the batch *contents* differ
    assert {tuple(sorted(x.tolist())) for x in a} != {tuple(sorted(x.tolist())) for x in c}


def _padding_fraction(rs: ReviewSet, batches) -> float:
    padded = real = 0
    for idx in batches:
        lens = rs.lengths[idx]
        padded += lens.max() * len(idx)
        real += lens.sum()
    return 1 - real / padded


def test_shuffled_batches_are_length_homogeneous(many_reviews):
    bucketed = many_reviews.batches(32, shuffle=True, seed=3)
    perm = np.random.default_rng(3).permutation(len(many_reviews))
    random_batches = [perm[i:i + 32] for i in range(0, len(perm), 32)]
    f_bucketed = _padding_fraction(many_reviews, bucketed)
    f_random = _padding_fraction(many_reviews, random_batches)
    assert f_bucketed < f_random / 3, (f_bucketed, f_random)


def test_shuffled_batches_order_is_not_sorted(many_reviews):
    # still random: the batch order is not by length
    batches = many_reviews.batches(32, shuffle=True, seed=3)
    maxima = np.array([many_reviews.lengths[b].max() for b in batches])
    rising = np.mean(np.diff(maxima) > 0)  # ~0.5 for a random order, ~1 for sorted pools
    assert 0.2 < rising < 0.8, rising


# --------------------------------------------------------------------------- random windows
def test_random_windows_targets_are_inputs_shifted():
    text = torch.arange(500, dtype=torch.int64)
    g = torch.Generator().manual_seed(0)
    x, y = random_windows(text, seq_len=40, batch_size=16, generator=g)
    assert x.shape == y.shape == (16, 40)
    assert x.dtype == y.dtype == torch.int64
    assert torch.equal(x[:, 1:], y[:, :-1])
    # windows are contiguous pieces of the text: consecutive ids here
    assert torch.equal(y, x + 1)
    assert (x >= 0).all() and (y < len(text)).all()


def test_random_windows_seeded():
    text = torch.randint(0, 30, (300,), generator=torch.Generator().manual_seed(1))
    a = random_windows(text, 10, 8, torch.Generator().manual_seed(5))
    b = random_windows(text, 10, 8, torch.Generator().manual_seed(5))
    c = random_windows(text, 10, 8, torch.Generator().manual_seed(6))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


def test_random_windows_can_reach_the_last_window():
    """BUG (pipeline/data.py, random_windows): `torch.randint(0, len(text) - seq_len - 1)`
    has an exclusive upper bound, so the last valid window (start len - seq_len - 1, whose
    target is the text's last character) is never drawn; a text of exactly seq_len + 1
    characters (one valid window) even raises. Expected: starts 0 .. len - seq_len - 1."""
    seq_len = 5
    text = torch.arange(seq_len + 3)  # valid starts: 0, 1, 2
    x, y = random_windows(text, seq_len, 300, torch.Generator().manual_seed(0))
    assert set(x[:, 0].tolist()) == {0, 1, 2}
    assert y.max().item() == len(text) - 1


# --------------------------------------------------------------------------- TBPTT streams
def test_stream_windows_contiguous_and_shifted():
    text = torch.arange(1000)
    seq_len, batch = 7, 4
    s = StreamBatches(text, seq_len, batch)
    per = (len(text) - 1) // batch
    assert s.windows_per_pass == per // seq_len
    for k in range(s.windows_per_pass):
        x, y = s.window(k)
        assert x.shape == y.shape == (batch, seq_len)
        assert x.dtype == torch.int64
        # targets: the next character of the text
        assert torch.equal(y, x + 1)
        for b in range(batch):
            start = b * per + k * seq_len
            assert x[b].tolist() == list(range(start, start + seq_len))
        if k + 1 < s.windows_per_pass:
            nx, _ = s.window(k + 1)
            # row b of window k+1 continues row b of window k
            assert torch.equal(nx[:, 0], x[:, -1] + 1)
            assert torch.equal(nx[:, 0], y[:, -1])


def test_stream_windows_on_real_characters():
    g = torch.Generator().manual_seed(2)
    text = torch.randint(0, 50, (333,), generator=g)
    s = StreamBatches(text, 6, 3)
    per = (len(text) - 1) // 3
    x, y = s.window(2)
    for b in range(3):
        start = b * per + 12
        assert torch.equal(x[b], text[start:start + 6])
        assert torch.equal(y[b], text[start + 1:start + 7])


def test_stream_windows_wrap_around():
    s = StreamBatches(torch.arange(301), seq_len=10, batch_size=3)
    n = s.windows_per_pass
    assert n == 10
    for k in (0, 3, n - 1):
        a, b = s.window(k), s.window(k + n)
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
        c = s.window(k + 2 * n)
        assert torch.equal(a[0], c[0])
    # a pass is the whole stream length that fits whole windows
    assert not torch.equal(s.window(n - 1)[0], s.window(0)[0])


def test_stream_batches_too_short_text():
    with pytest.raises(ValueError):
        StreamBatches(torch.arange(20), seq_len=10, batch_size=4)


def test_one_pass_of_windows_covers_each_stream_once():
    text = torch.arange(10 * 4 * 5 + 1)  # 4 streams of 50 = 5 windows of 10 each
    seq_len, batch = 10, 4
    streams = StreamBatches(text, seq_len, batch)
    assert streams.windows_per_pass == 5
    windows = [streams.window(k) for k in range(streams.windows_per_pass)]
    xs = torch.cat([x for x, _ in windows], dim=1)
    ys = torch.cat([y for _, y in windows], dim=1)
    per = (len(text) - 1) // batch
    for b in range(batch):
        assert xs[b].tolist() == list(range(b * per, (b + 1) * per))
        assert torch.equal(ys[b], xs[b] + 1)
    # together: every input position exactly once
    assert sorted(xs.flatten().tolist()) == list(range(len(text) - 1))
