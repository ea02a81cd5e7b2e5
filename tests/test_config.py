"""params.yaml is complete and authoritative, types are exact, and every problem in a
file is reported at once as one line per key: never a traceback, never a silent default."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pipeline.core.config import CharLMParams, ConfigError, Params, load_params, section_from_dict
from tests.repo import run

REPO = Path(__file__).resolve().parents[1]


def _raw() -> dict:
    return yaml.safe_load((REPO / "params.yaml").read_text())


def _write(tmp_path: Path, raw: dict, name: str = "params.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return path


def test_a_missing_key_is_an_error_not_the_books_value(tmp_path):
    raw = _raw()
    del raw["sentiment"]["epochs"]
    with pytest.raises(ConfigError, match=r"sentiment\.epochs: missing key") as info:
        load_params(_write(tmp_path, raw))
    assert "the book's value: 10" in str(info.value)


def test_a_missing_section_is_an_error(tmp_path):
    raw = _raw()
    del raw["samples"]
    with pytest.raises(ConfigError, match=r"samples: missing section"):
        load_params(_write(tmp_path, raw))


@pytest.mark.parametrize("section, key, value", [
    ("sentiment", "patience", 2.5), ("imdb", "limit", 1.5), ("imdb", "max_vocab", 1000.0),
    ("sentiment", "epochs", True), ("train", "amp", 1), ("seed", None, 1.0),
])
def test_an_int_or_bool_field_takes_nothing_else(tmp_path, section, key, value):
    raw = _raw()
    if key is None:
        raw[section] = value
    else:
        raw[section][key] = value
    name = section if key is None else f"{section}.{key}"
    with pytest.raises(ConfigError, match=rf"{name}: .*\(got {value!r}\)"):
        load_params(_write(tmp_path, raw))


def test_every_error_at_once_each_naming_the_file(tmp_path):
    raw = _raw()
    raw["sentiment"]["patience"] = 2.5
    raw["charlm"]["mode"] = "stream"
    raw["imdb"]["sha256"] = "abc"
    path = _write(tmp_path, raw, "other.yaml")
    with pytest.raises(ConfigError) as info:
        load_params(path)
    lines = str(info.value).splitlines()
    assert len(lines) == 3, lines
    assert all(line.startswith(f"{path}: ") for line in lines)
    text = str(info.value)
    assert "sentiment.patience" in text and "charlm.mode" in text and "imdb.sha256" in text
    assert "'windows' or 'tbptt'" in text


def test_exponent_floats_read_as_dvc_writes_them(tmp_path):
    # `dvc exp run -S sentiment.lr=1e-4` writes `lr: 1e-4`: a float for DVC (YAML 1.2),
    # a string for plain PyYAML (YAML 1.1).
    text = (REPO / "params.yaml").read_text().replace("  lr: 0.002 ", "  lr: 1e-4 ", 1)
    assert "lr: 1e-4" in text
    path = tmp_path / "params.yaml"
    path.write_text(text, encoding="utf-8")
    assert load_params(path).sentiment.lr == 1e-4


def test_malformed_yaml_is_one_clear_error(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("seed: 1\nsentiment: [unclosed\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="is not valid YAML"):
        load_params(path)


def test_the_params_of_a_saved_model_go_through_the_same_checks():
    good = CharLMParams().model_dump()
    assert section_from_dict(CharLMParams, good, "model.json") == CharLMParams()
    with pytest.raises(ConfigError, match=r"model.json: hidden_size: .*\(got 1.5\)"):
        section_from_dict(CharLMParams, {**good, "hidden_size": 1.5}, "model.json")
    with pytest.raises(ConfigError, match="model.json: steps: missing key"):
        section_from_dict(CharLMParams, {k: v for k, v in good.items() if k != "steps"},
                          "model.json")


def test_the_defaults_are_the_books_recipes():
    book = Params()
    assert (book.sentiment.embed_dim, book.sentiment.hidden_size, book.sentiment.epochs) == \
        (20, 64, 10)
    assert (book.charlm.embed_dim, book.charlm.hidden_size, book.charlm.seq_len) == (256, 512, 40)


@pytest.mark.parametrize("edit, needle", [
    (lambda raw: raw["imdb"].update(sha256="abc"), "imdb.sha256"),
    (lambda raw: raw.update(device="gpu"), "device"),
])
def test_a_stage_command_prints_one_error_line(tmp_path, edit, needle):
    raw = _raw()
    edit(raw)
    path = _write(tmp_path, raw, "mine.yaml")
    proc = run(["python", "-m", "pipeline", "prepare-gutenberg", "--params", str(path)], REPO,
               check=False)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith(f"Error: {path}: {needle}"), proc.stderr
