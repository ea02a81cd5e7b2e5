"""Text generation (pipeline.charlm.generate) and params.yaml validation."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from pipeline.charlm.generate import generate
from pipeline.charlm.model import CharLSTM
from pipeline.charlm.vocab import CharVocab
from pipeline.core.config import ConfigError, Params, load_params
from pipeline.training.tracked import loop_config

REPO = Path(__file__).resolve().parents[1]
TEXT = ("The island was surrounded by a sea of foam; Cyrus Harding, the engineer, "
        "looked at it. \"Are we on an island?\" asked Pencroft.\n")
PRIME = "The island"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def vocab() -> CharVocab:
    return CharVocab.build(TEXT)


def make_model(vocab: CharVocab, seed: int = 0, logit_scale: float = 1.0) -> CharLSTM:
    torch.manual_seed(seed)
    model = CharLSTM(len(vocab), embed_dim=8, hidden_size=16)
    with torch.no_grad():
        model.fc.weight.mul_(logit_scale)  # > 1: peakier, well-separated logits
    return model.eval()


@pytest.fixture(scope="module")
def model(vocab) -> CharLSTM:
    return make_model(vocab)


@pytest.fixture(scope="module")
def sharp_model(vocab) -> CharLSTM:
    return make_model(vocab, seed=1, logit_scale=8.0)


@torch.no_grad()
def next_logits(model: CharLSTM, vocab: CharVocab, text: str) -> torch.Tensor:
    """Logits for the character after `text`, reading the whole text from a zero state."""
    ids = torch.as_tensor(vocab.encode(text), dtype=torch.long)[None, :]
    logits, _ = model(ids)
    return logits[0, -1]


def greedy(model: CharLSTM, vocab: CharVocab, prime: str, length: int) -> str:
    text = prime
    for _ in range(length):
        text += vocab.itos[int(next_logits(model, vocab, text).argmax())]
    return text


# --------------------------------------------------------------------------- generate
def test_output_starts_with_prime_and_has_the_length(model, vocab):
    out = generate(model, vocab, PRIME, 200, seed=0)
    assert out.startswith(PRIME)
    assert len(out) == len(PRIME) + 200
    assert set(out) <= set(vocab.itos)


def test_zero_length_gives_the_prime(model, vocab):
    assert generate(model, vocab, PRIME, 0, seed=0) == PRIME


def test_same_seed_same_text(model, vocab):
    a = generate(model, vocab, PRIME, 200, seed=7)
    b = generate(model, vocab, PRIME, 200, seed=7)
    assert a == b


def test_different_seed_different_text(model, vocab):
    a = generate(model, vocab, PRIME, 200, seed=7)
    b = generate(model, vocab, PRIME, 200, seed=8)
    assert a != b
    assert a[len(PRIME):] != b[len(PRIME):]


def test_seed_does_not_touch_the_global_rng(model, vocab):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    generate(model, vocab, PRIME, 20, seed=5)
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("temperature", [1.0, 3.0])
def test_top_k_1_is_greedy(model, vocab, seed, temperature):
    expected = greedy(model, vocab, PRIME, 60)
    assert generate(model, vocab, PRIME, 60, temperature=temperature, top_k=1,
                    seed=seed) == expected


def test_greedy_is_not_what_plain_sampling_gives(model, vocab):
    # guards the test above: an untrained model's samples are far from greedy
    expected = greedy(model, vocab, PRIME, 60)
    assert generate(model, vocab, PRIME, 60, temperature=1.0, seed=0) != expected


def test_top_k_samples_only_among_the_k_most_likely(model, vocab):
    k = 3
    out = generate(model, vocab, PRIME, 40, top_k=k, seed=4, temperature=5.0)
    chosen_ranks = []
    for i in range(len(PRIME), len(out)):
        logits = next_logits(model, vocab, out[:i])
        top = torch.topk(logits, k).indices.tolist()
        assert vocab.stoi[out[i]] in top, i
        chosen_ranks.append(top.index(vocab.stoi[out[i]]))
    assert len(set(chosen_ranks)) > 1  # it does sample, not always the top one


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_very_low_temperature_is_greedy(sharp_model, vocab, seed):
    expected = greedy(sharp_model, vocab, PRIME, 60)
    assert generate(sharp_model, vocab, PRIME, 60, temperature=1e-3, seed=seed) == expected


def test_lower_temperature_moves_towards_greedy(model, vocab):
    n = 60
    expected = greedy(model, vocab, PRIME, n)

    def agreement(temperature: float) -> float:
        # first-character agreement over many seeds: P(sample = argmax) grows as T falls
        hits = 0
        for seed in range(40):
            hits += generate(model, vocab, PRIME, 1, temperature=temperature,
                             seed=seed)[-1] == expected[len(PRIME)]
        return hits / 40

    hot, warm, cold = agreement(5.0), agreement(0.2), agreement(0.005)
    assert cold == 1.0
    assert hot < cold
    assert hot <= warm <= cold


@pytest.mark.parametrize("temperature", [0.0, -0.5])
def test_non_positive_temperature_raises(model, vocab, temperature):
    with pytest.raises(ValueError):
        generate(model, vocab, PRIME, 10, temperature=temperature)


def test_prime_with_unknown_character_raises(model, vocab):
    with pytest.raises(ValueError):
        generate(model, vocab, "Zebra~", 10)


# --------------------------------------------------------------------------- params.yaml
def _raw() -> dict:
    return yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))


def _write(tmp_path: Path, raw: dict) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


def test_repo_params_validate():
    params = load_params(REPO / "params.yaml")
    assert isinstance(params, Params)
    raw = _raw()
    assert params.seed == raw["seed"]
    assert params.charlm.mode == raw["charlm"]["mode"]
    assert params.charlm.seq_len == raw["charlm"]["seq_len"]
    assert params.samples.temperatures == tuple(raw["samples"]["temperatures"])
    assert params.sentiment.pooling == raw["sentiment"]["pooling"]
    assert params.train.checkpoint_every == raw["train"]["checkpoint_every"]


def test_a_copy_of_the_repo_params_validates(tmp_path):
    params = load_params(_write(tmp_path, _raw()))
    assert params == load_params(REPO / "params.yaml")


def test_unknown_key_in_a_section(tmp_path):
    raw = _raw()
    raw["charlm"]["learning_rate"] = 0.1
    with pytest.raises(ConfigError, match="learning_rate") as info:
        load_params(_write(tmp_path, raw))
    assert "charlm" in str(info.value)


def test_unknown_top_level_key(tmp_path):
    raw = _raw()
    raw["sede"] = 3
    with pytest.raises(ConfigError, match="sede"):
        load_params(_write(tmp_path, raw))


@pytest.mark.parametrize("section, key, value", [
    ("charlm", "mode", "foo"),
    ("charlm", "scheduler", "linear"),
    ("sentiment", "pooling", "max"),
    ("imdb", "split_by", "year"),
])
def test_bad_choice_names_the_key(tmp_path, section, key, value):
    raw = _raw()
    raw[section][key] = value
    with pytest.raises(ConfigError, match=rf"{section}\.{key}") as info:
        load_params(_write(tmp_path, raw))
    assert value in str(info.value)


@pytest.mark.parametrize("section, key, value", [
    ("charlm", "seq_len", 0),
    ("sentiment", "lr", -0.1),
    ("charlm", "dropout", 1.0),
    ("gutenberg", "val_fraction", 1.5),
    ("sentiment", "word_dropout", 1.0),
    ("baseline", "min_df", 0),
    ("baseline", "c_values", [1.0, -3.0]),
    ("baseline", "c_values", []),
    ("baseline", "c_values", 10),
    ("pretrain", "embedding_window", 0),
    ("pretrain", "steps", 3000),  # the word LM's knobs went with it
    ("sentiment", "pretrained", "word2vec"),
    ("sentiment", "pretrained", "lm"),
    ("dynamic_eval", "lrs", []),
    ("dynamic_eval", "lrs", [0.01, -0.1]),
    ("dynamic_eval", "decays", [1.0]),
    ("dynamic_eval", "tune_chars", 0),
    ("sentiment", "pretrained", True),
])
def test_bad_numbers_name_the_key(tmp_path, section, key, value):
    raw = _raw()
    raw[section][key] = value
    with pytest.raises(ConfigError, match=rf"{section}\.{key}"):
        load_params(_write(tmp_path, raw))


def test_head_and_tail_tokens_go_together(tmp_path):
    raw = _raw()
    raw["sentiment"]["head_tokens"], raw["sentiment"]["tail_tokens"] = 100, None
    with pytest.raises(ConfigError, match="head_tokens"):
        load_params(_write(tmp_path, raw))


def test_cannot_average_more_epochs_than_are_trained(tmp_path):
    raw = _raw()
    raw["sentiment"]["epochs"], raw["sentiment"]["average_last_epochs"] = 3, 4
    with pytest.raises(ConfigError, match="average_last_epochs"):
        load_params(_write(tmp_path, raw))
    raw["sentiment"]["average_last_epochs"] = 3
    assert load_params(_write(tmp_path, raw)).sentiment.average_last_epochs == 3


def test_cannot_average_more_evaluations_than_are_made(tmp_path):
    raw = _raw()
    raw["charlm"].update(steps=1000, eval_every=300, average_last_evaluations=5)
    with pytest.raises(ConfigError, match="average_last_evaluations"):
        load_params(_write(tmp_path, raw))
    raw["charlm"]["average_last_evaluations"] = 4   # 300, 600, 900, 1000
    raw["sentiment"]["average_last_epochs"] = None
    params = load_params(_write(tmp_path, raw))
    # Each model's averaging reaches the loop, and only that model's.
    assert loop_config(params.charlm, params, {}).average_last_periods == 4
    assert loop_config(params.sentiment, params, {}).average_last_periods is None


def test_missing_params_file(tmp_path):
    with pytest.raises(ConfigError):
        load_params(tmp_path / "nope.yaml")


@pytest.mark.parametrize("recipe, section", [("book-sentiment", "sentiment"),
                                             ("book-charlm", "charlm")])
def test_the_book_recipes_are_the_books(tmp_path, recipe, section):
    """The models' defaults are the book's recipes; recipes/book-*.yaml must turn the
    project's params.yaml into exactly that."""
    raw = _raw()
    overrides = yaml.safe_load((REPO / "recipes" / f"{recipe}.yaml").read_text(encoding="utf-8"))
    for sec, values in overrides.items():
        raw[sec].update(values)
    params = load_params(_write(tmp_path, raw))
    assert getattr(params, section) == getattr(Params(), section)
    # ... and the project's defaults really differ from the book's.
    assert getattr(load_params(REPO / "params.yaml"), section) != getattr(Params(), section)
