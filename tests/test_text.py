"""Tokenizer, word vocabulary and character vocabulary (pipeline/text.py)."""
from __future__ import annotations

import random

import numpy as np
import pytest

from pipeline.charlm.vocab import CharVocab
from pipeline.sentiment.text import PAD, PAD_ID, UNK, UNK_ID, Vocab, tokenize, tokenize_many


# --------------------------------------------------------------------------- tokenize
def test_book_example_html_removed_words_then_emoticons():
    # The chapter's example; '-' is dropped from ':-)' and emoticons come after the words.
    assert tokenize("This :) is <a> test! :-)</br>") == ["this", "is", "test", ":)", ":)"]


def test_html_tags_with_attributes_are_removed():
    tokens = tokenize('<br /><br />Great <i>acting</i> <a href="x.html">here</a>')
    assert tokens == ["great", "acting", "here"]
    assert not any(t in tokens for t in ("br", "i", "a", "href", "x", "html"))


@pytest.mark.parametrize("emoticon, token", [
    (":)", ":)"), (":-)", ":)"), (";(", ";("), (";-(", ";("),
    ("=D", "=D"), ("=-D", "=D"), (":P", ":P"), (":-P", ":P"), ("=)", "=)"),
])
def test_each_emoticon_is_kept(emoticon, token):
    tokens = tokenize(f"film {emoticon}")
    assert tokens[0] == "film"
    assert tokens[-1] == token


def test_emoticons_kept_in_order_after_the_words():
    tokens = tokenize("Nice :) bad ;-( yes =D ok :P")
    # Upper-case D and P are found: emoticons are matched before lower-casing.
    assert tokens[-4:] == [":)", ";(", "=D", ":P"]
    words = [t for t in tokens[:-4]]
    # the real words keep their order (the letters of =D / :P may leave a word residue)
    assert [w for w in words if w in {"nice", "bad", "yes", "ok"}] == ["nice", "bad", "yes", "ok"]
    assert all(w == w.lower() for w in words)


def test_lower_case_emoticon_letters_are_not_emoticons():
    # ':d' / ':p' are not in the pattern (only upper-case D and P are).
    tokens = tokenize("ok :d :p")
    assert ":d" not in tokens and ":D" not in tokens and ":p" not in tokens


def test_lower_casing_and_splitting_on_non_word_characters():
    assert tokenize("HeLLo, WORLD!!! It's--fine...\tnew\nline") == [
        "hello", "world", "it", "s", "fine", "new", "line"]


def test_underscores_and_digits_are_word_characters():
    assert tokenize("snake_case 42 x2") == ["snake_case", "42", "x2"]


def test_empty_and_punctuation_only_texts():
    assert tokenize("") == []
    assert tokenize("?!... ,,, <p></p>") == []


def _random_texts(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    pieces = ["Good", "BAD", "movie", ":)", ":-(", "=D", "<br />", "it's", "plot!", "ok,", "<i>x</i>",
              "Été", "naïve", "42"]
    return [" ".join(rng.choice(pieces) for _ in range(rng.randint(0, 12))) for _ in range(n)]


def test_tokenize_many_parallel_equals_serial():
    texts = _random_texts(2300, seed=5)  # over the 2000 below which it stays serial
    serial = [tokenize(t) for t in texts]
    assert tokenize_many(texts, processes=2) == serial
    assert tokenize_many(texts, processes=1) == serial


# --------------------------------------------------------------------------- Vocab
def test_vocab_order_pad_unk_then_frequency_then_alphabetical():
    docs = [["b", "a", "c", "b"], ["c", "b", "d", "a"], ["e"]]
    # counts: b=3, a=2, c=2, d=1, e=1
    vocab = Vocab.build(docs)
    assert vocab.itos == [PAD, UNK, "b", "a", "c", "d", "e"]
    assert vocab.itos[PAD_ID] == PAD and vocab.itos[UNK_ID] == UNK
    assert len(vocab) == 7
    assert vocab.stoi["b"] == 2 and vocab.stoi["e"] == 6


def test_vocab_ties_do_not_depend_on_insertion_order():
    a = Vocab.build([["z", "y", "x", "w"]])
    b = Vocab.build([["w", "x", "y", "z"]])
    assert a.itos == b.itos == [PAD, UNK, "w", "x", "y", "z"]


def test_vocab_min_freq():
    docs = [["a", "a", "a", "b", "b", "c"]]
    assert Vocab.build(docs, min_freq=2).itos == [PAD, UNK, "a", "b"]
    assert Vocab.build(docs, min_freq=3).itos == [PAD, UNK, "a"]
    assert Vocab.build(docs, min_freq=4).itos == [PAD, UNK]


def test_vocab_max_size_keeps_most_frequent():
    docs = [["a"] * 5 + ["b"] * 4 + ["c"] * 3 + ["d"] * 2]
    vocab = Vocab.build(docs, max_size=2)
    assert vocab.itos == [PAD, UNK, "a", "b"]
    # max_size counts real tokens only, after the two specials
    assert len(vocab) == 4


def test_vocab_encode_unknown_is_one():
    vocab = Vocab.build([["hello", "world", "hello"]])
    ids = vocab.encode(["hello", "nope", "world", "???"])
    assert isinstance(ids, np.ndarray)
    assert ids.tolist() == [2, UNK_ID, 3, UNK_ID]
    assert vocab.encode([]).tolist() == []


def test_vocab_rejects_bad_specials():
    with pytest.raises(ValueError):
        Vocab(["a", "b"])
    with pytest.raises(ValueError):
        Vocab([UNK, PAD, "a"])


def test_vocab_save_load_round_trip(tmp_path):
    texts = _random_texts(200, seed=1)
    vocab = Vocab.build(tokenize_many(texts), min_freq=1)
    path = tmp_path / "vocab.txt"
    vocab.save(path)
    loaded = Vocab.load(path)
    assert loaded.itos == vocab.itos
    assert loaded.stoi == vocab.stoi
    sample = tokenize("Été naïve movie :) unknownword")
    assert loaded.encode(sample).tolist() == vocab.encode(sample).tolist()


# --------------------------------------------------------------------------- CharVocab
def test_char_vocab_sorted_by_code_point():
    text = "baé\nA zÆ!"
    vocab = CharVocab.build(text)
    assert vocab.itos == sorted(set(text), key=ord)
    assert [ord(c) for c in vocab.itos] == sorted(ord(c) for c in set(text))
    assert vocab.itos[0] == "\n"
    assert len(vocab) == len(set(text))


def test_char_vocab_encode_decode_round_trip():
    text = "The island, said Cyrus Harding.\nÉtienne — “quoted” …"
    vocab = CharVocab.build(text)
    ids = vocab.encode(text)
    assert ids.dtype == np.int32
    assert len(ids) == len(text)
    assert vocab.decode(ids) == text
    assert vocab.decode(ids.tolist()) == text
    # each id is the character's position in the sorted alphabet
    alphabet = sorted(set(text))
    assert ids.tolist() == [alphabet.index(c) for c in text]


def test_char_vocab_unknown_character_raises():
    vocab = CharVocab.build("abc")
    with pytest.raises(ValueError, match="z"):
        vocab.encode("abz")


def test_char_vocab_save_load_non_ascii(tmp_path):
    text = "Île mystérieuse: naïve Æsir ∑ 🚀 \n\t\"quote\" \\ \u2028 end"
    vocab = CharVocab.build(text)
    path = tmp_path / "chars.json"
    vocab.save(path)
    loaded = CharVocab.load(path)
    assert loaded.itos == vocab.itos
    assert loaded.decode(loaded.encode(text)) == text
    assert loaded.encode(text).tolist() == vocab.encode(text).tolist()
