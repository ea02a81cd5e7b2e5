"""The two models (pipeline/models.py) and the chapter's by-hand RNN / LSTM checks."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from pipeline.charlm.model import CharLSTM, SequenceDropout
from pipeline.core.config import SentimentParams
from pipeline.sentiment.model import SentimentLSTM, load_encoder
from pipeline.sentiment.predict import predict_texts
from pipeline.sentiment.text import PAD, PAD_ID, UNK, UNK_ID, Vocab, tokenize

VOCAB = 40


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _model(**kw) -> SentimentLSTM:
    torch.manual_seed(0)
    args = dict(embed_dim=8, hidden_size=6, fc_size=5)
    args.update(kw)
    return SentimentLSTM(VOCAB, **args).eval()


def _padded(reviews: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in reviews)
    tokens = torch.full((len(reviews), width), PAD_ID, dtype=torch.long)
    for i, r in enumerate(reviews):
        tokens[i, :len(r)] = torch.tensor(r)
    return tokens, torch.tensor([len(r) for r in reviews], dtype=torch.long)


# --------------------------------------------------------------------------- shapes
@pytest.mark.parametrize("pooling", ["last", "last_max_mean"])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("num_layers", [1, 2])
def test_sentiment_output_shape(pooling, bidirectional, num_layers):
    model = _model(pooling=pooling, bidirectional=bidirectional, num_layers=num_layers)
    tokens, lengths = _padded([[2, 3, 4], [5, 6, 7, 8, 9], [10], [11, 12]])
    out = model(tokens, lengths)
    assert out.shape == (4,)
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()


def test_sentiment_last_max_mean_widens_fc_input():
    assert _model(pooling="last").fc[0].in_features == 6
    assert _model(pooling="last_max_mean").fc[0].in_features == 18
    assert _model(pooling="last", bidirectional=True).fc[0].in_features == 12
    assert _model(pooling="last_max_mean", bidirectional=True).fc[0].in_features == 36


@pytest.mark.parametrize("num_layers", [1, 2])
def test_charlstm_shapes(num_layers):
    torch.manual_seed(0)
    model = CharLSTM(vocab_size=13, embed_dim=7, hidden_size=9, num_layers=num_layers)
    x = torch.randint(0, 13, (3, 11))
    logits, (h, c) = model(x)
    assert logits.shape == (3, 11, 13)
    assert h.shape == (num_layers, 3, 9)
    assert c.shape == (num_layers, 3, 9)
    # the state carries on: two halves with the state passed equal one call
    l1, s1 = model(x[:, :5])
    l2, _ = model(x[:, 5:], s1)
    torch.testing.assert_close(torch.cat([l1, l2], dim=1), logits, rtol=0, atol=1e-6)


def test_sequence_dropout_drops_a_unit_for_the_whole_sequence():
    drop = SequenceDropout(0.5)
    x = torch.ones(6, 9, 40)
    torch.manual_seed(0)
    out = drop.train()(x)
    # One mask per sequence and feature: the same at every time step ...
    assert torch.equal(out, out[:, :1, :].expand_as(out))
    # ... each unit dropped or scaled up to keep the expectation, about half of them.
    assert set(out.unique().tolist()) == {0.0, 2.0}
    assert 0.3 < (out[:, 0, :] == 0).float().mean().item() < 0.7
    # Other sequences get other masks; evaluation drops nothing.
    assert not torch.equal(out[0], out[1])
    assert torch.equal(drop.eval()(x), x)


def test_charlstm_dropout_is_off_in_evaluation():
    torch.manual_seed(0)
    model = CharLSTM(vocab_size=13, embed_dim=7, hidden_size=9, num_layers=2, dropout=0.5)
    x = torch.randint(0, 13, (3, 11))
    model.eval()
    torch.testing.assert_close(model(x)[0], model(x)[0], rtol=0, atol=0)
    model.train()
    assert not torch.equal(model(x)[0], model(x)[0])


# --------------------------------------------------------------------------- pretraining
def _encoder(**kw) -> dict[str, torch.Tensor]:
    """Pretrained weights as an encoder.pt holds them: by parameter name (another
    model's, seeded differently from _model's)."""
    torch.manual_seed(1)
    args = dict(embed_dim=8, hidden_size=6, fc_size=5)
    args.update(kw)
    source = SentimentLSTM(VOCAB, **args)
    return {k: v.detach().clone() for k, v in source.state_dict().items()
            if k.startswith(("embedding.", "lstm."))}


def test_sentiment_model_starts_from_the_pretrained_encoder():
    vectors = {"embedding.weight": _encoder()["embedding.weight"]}  # the word vectors
    model = _model()
    lstm_before, untouched = model.lstm.weight_hh_l0.clone(), model.fc[0].weight.clone()
    load_encoder(model, vectors)
    torch.testing.assert_close(model.embedding.weight, vectors["embedding.weight"])
    torch.testing.assert_close(model.lstm.weight_hh_l0, lstm_before)
    torch.testing.assert_close(model.fc[0].weight, untouched)


@pytest.mark.parametrize("kw", [{"hidden_size": 7}, {"embed_dim": 9}, {"num_layers": 2}])
def test_an_encoder_of_other_sizes_is_refused_by_name(kw):
    encoder = _encoder(**kw)
    model = _model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match="embed_dim, hidden_size and num_layers"):
        load_encoder(model, encoder)
    for k, v in model.state_dict().items():  # nothing half-loaded
        torch.testing.assert_close(v, before[k])


# --------------------------------------------------------------------------- word dropout
def test_word_dropout_replaces_words_only_in_training():
    model = _model(word_dropout=0.5)
    seen = []
    model.embedding.register_forward_hook(lambda m, inp, out: seen.append(inp[0].clone()))
    tokens, lengths = _padded(REVIEWS)
    with torch.no_grad():
        model.eval()(tokens, lengths)
        torch.manual_seed(0)
        model.train()(tokens, lengths)
    evaluated, trained = seen
    assert torch.equal(evaluated, tokens)          # evaluation sees every word
    changed = trained != tokens
    assert changed.any()                           # training drops some words ...
    assert (trained[changed] == UNK_ID).all()      # ... to <unk>
    assert (trained[tokens == PAD_ID] == PAD_ID).all()  # and never touches padding
    assert 0.2 < changed.sum() / (tokens != PAD_ID).sum() < 0.8


# --------------------------------------------------------------------------- padding invariance
REVIEWS = [[3, 7, 2, 9], [4, 5, 6, 7, 8, 9, 10, 11, 12], [13, 14, 15, 16, 17, 18], [20]]


@pytest.mark.parametrize("pooling", ["last", "last_max_mean"])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("num_layers", [1, 2])
def test_padding_does_not_change_a_review_score(pooling, bidirectional, num_layers):
    model = _model(pooling=pooling, bidirectional=bidirectional, num_layers=num_layers)
    tokens, lengths = _padded(REVIEWS)
    assert tokens.shape[1] > len(REVIEWS[0])  # review 0 really is padded in the batch
    with torch.no_grad():
        batch = model(tokens, lengths)
        for i, review in enumerate(REVIEWS):
            alone = model(torch.tensor([review]), torch.tensor([len(review)]))
            assert abs(alone.item() - batch[i].item()) <= 1e-5, (i, alone.item(), batch[i].item())


def test_padding_token_values_do_not_matter_beyond_length():
    # Garbage after the length (not PAD) must not change the score either.
    model = _model(pooling="last_max_mean")
    tokens, lengths = _padded(REVIEWS)
    noisy = tokens.clone()
    for i, n in enumerate(lengths.tolist()):
        noisy[i, n:] = 30 + i
    with torch.no_grad():
        torch.testing.assert_close(model(noisy, lengths), model(tokens, lengths), rtol=0, atol=1e-5)


def test_padding_invariance_would_fail_without_length_handling():
    # Guards the test above: reading the last *column* instead of the last real token
    # changes the answer, so the invariance is not trivially true.
    model = _model(pooling="last")
    tokens, lengths = _padded(REVIEWS)
    with torch.no_grad():
        naive = model(tokens, torch.full_like(lengths, tokens.shape[1]))
        right = model(tokens, lengths)
    assert (naive[0] - right[0]).abs().item() > 1e-5


# --------------------------------------------------------------------------- the chapter's checks
def test_rnn_equations_by_hand_equal_nn_rnn():
    torch.manual_seed(1)
    rnn = nn.RNN(input_size=5, hidden_size=2, num_layers=1, batch_first=True)
    w_xh, w_hh = rnn.weight_ih_l0, rnn.weight_hh_l0
    b_xh, b_hh = rnn.bias_ih_l0, rnn.bias_hh_l0
    assert w_xh.shape == (2, 5) and w_hh.shape == (2, 2)

    x = torch.randn(2, 3, 5)  # two sequences of three steps
    with torch.no_grad():
        output, h_n = rnn(x)
        for b in range(x.shape[0]):
            h = torch.zeros(2)
            for t in range(x.shape[1]):
                h = torch.tanh(w_xh @ x[b, t] + b_xh + w_hh @ h + b_hh)
                torch.testing.assert_close(output[b, t], h, rtol=0, atol=1e-6)
            torch.testing.assert_close(h_n[0, b], h, rtol=0, atol=1e-6)


def test_lstm_gate_equations_by_hand_equal_nn_lstm():
    torch.manual_seed(2)
    n_in, n_h = 4, 3
    lstm = nn.LSTM(n_in, n_h, num_layers=1, batch_first=True)
    W_ih, W_hh = lstm.weight_ih_l0, lstm.weight_hh_l0
    b_ih, b_hh = lstm.bias_ih_l0, lstm.bias_hh_l0
    assert W_ih.shape == (4 * n_h, n_in)
    # PyTorch's gate order in the stacked weights: input, forget, cell (g), output.
    Wi, Wf, Wg, Wo = W_ih.split(n_h)
    Ui, Uf, Ug, Uo = W_hh.split(n_h)
    bi, bf, bg, bo = (b_ih + b_hh).split(n_h)

    x = torch.randn(2, 5, n_in)
    h0, c0 = torch.randn(1, 2, n_h), torch.randn(1, 2, n_h)  # a non-zero initial state too
    with torch.no_grad():
        out, (h_n, c_n) = lstm(x, (h0, c0))
        for b in range(2):
            h, c = h0[0, b], c0[0, b]
            for t in range(5):
                xt = x[b, t]
                i = torch.sigmoid(Wi @ xt + Ui @ h + bi)
                f = torch.sigmoid(Wf @ xt + Uf @ h + bf)
                g = torch.tanh(Wg @ xt + Ug @ h + bg)
                o = torch.sigmoid(Wo @ xt + Uo @ h + bo)
                c = f * c + i * g
                h = o * torch.tanh(c)
                torch.testing.assert_close(out[b, t], h, rtol=0, atol=1e-6)
            torch.testing.assert_close(h_n[0, b], h, rtol=0, atol=1e-6)
            torch.testing.assert_close(c_n[0, b], c, rtol=0, atol=1e-6)


def test_gradient_clipping_bounds_the_norm():
    torch.manual_seed(3)
    model = SentimentLSTM(VOCAB, embed_dim=8, hidden_size=6, fc_size=5)
    tokens, lengths = _padded(REVIEWS)
    loss = (model(tokens, lengths) * 1e6).pow(2).sum()  # a deliberately huge loss
    loss.backward()
    params = [p for p in model.parameters() if p.grad is not None]
    before = torch.sqrt(sum((p.grad.double() ** 2).sum() for p in params)).item()
    max_norm = 1.0
    assert before > 1e3 * max_norm

    returned = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
    after = torch.sqrt(sum((p.grad.double() ** 2).sum() for p in params)).item()
    assert after <= max_norm + 1e-6
    assert after > 0.99 * max_norm  # scaled to the bound, not zeroed
    assert returned.item() > max_norm
    assert returned.item() == pytest.approx(before, rel=1e-4)


def test_predictions_read_whole_reviews_whatever_the_training_cut():
    """head_tokens/tail_tokens shorten training reviews only: a prediction reads them all."""

    words = [f"w{i}" for i in range(VOCAB - 2)]
    vocab = Vocab([PAD, UNK, *words])
    model = _model(pooling="last_max_mean", fc_size=32)  # (5 ReLUs can all be off)
    p = SentimentParams(embed_dim=8, hidden_size=6, fc_size=32, pooling="last_max_mean",
                        head_tokens=2, tail_tokens=3)
    text = " ".join(words[:30])
    [answer] = predict_texts([text], loaded=(model, vocab, p, {}))
    prob, known = answer.positive, answer.known_words

    ids = vocab.encode(tokenize(text)).tolist()
    assert known == len(ids) == 30 and not answer.cut

    def prob_of(review: list[int]) -> float:
        tokens, lengths = _padded([review])
        with torch.no_grad():
            return torch.sigmoid(model(tokens, lengths)).item()
    assert prob == pytest.approx(prob_of(ids), abs=1e-6)
    assert abs(prob - prob_of(ids[:2] + ids[-3:])) > 1e-4

    # Longer than max_tokens: scored on the first and last half, and said so.
    [cut] = predict_texts([text], loaded=(model, vocab, p, {}), max_tokens=10)
    assert cut.cut and cut.tokens == 30
    assert cut.positive == pytest.approx(prob_of(ids[:5] + ids[-5:]), abs=1e-6)
    assert cut.label == ("positive" if cut.positive >= 0.5 else "negative")
    assert cut.probability == pytest.approx(max(cut.positive, 1 - cut.positive))


def test_a_review_with_no_known_word_gets_no_label():
    vocab = Vocab([PAD, UNK, "good"])
    model = _model(pooling="last_max_mean", fc_size=32)
    p = SentimentParams(embed_dim=8, hidden_size=6, fc_size=32, pooling="last_max_mean")
    unknown, known = predict_texts(["qwerty zxcv", "good"], loaded=(model, vocab, p, {}))
    assert unknown.label is None and unknown.known_words == 0
    assert unknown.probability != unknown.probability  # NaN: no label, no probability of it
    assert known.label in ("positive", "negative") and known.known_words == 1
