"""Every file the pipeline reads, under every fault a user meets (missing, empty,
truncated, corrupt, of the wrong kind, not readable): one line naming the file, what is
wrong with it and the command that makes it right; a non-zero exit; nothing written.

The files are small stand-ins in a repository layout (tmp_path is the working
directory), so that the command named is the one for that output of dvc.yaml."""
from __future__ import annotations

import json
import os
import shutil
import struct
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from pipeline.charlm.data import load_chars
from pipeline.charlm.generate import load_charlm
from pipeline.charlm.model import build_charlm
from pipeline.charlm.vocab import CharVocab
from pipeline.cli import main as cli
from pipeline.core import inputs
from pipeline.core.config import CharLMParams, SentimentParams, load_params
from pipeline.core.errors import ConfigError, PipelineError
from pipeline.core.inputs import InputError
from pipeline.core.outputs import sha256_file
from pipeline.acquire.mirrors import load_mirrors, mirrors_file
from pipeline.report import results_table
from pipeline.sentiment.model import build_sentiment
from pipeline.sentiment.predict import load_sentiment_model, pretrained_encoder
from pipeline.sentiment.reviews import load_reviews
from pipeline.sentiment.text import PAD, UNK, Vocab

ROOT = Path(__file__).resolve().parents[1]
SENTIMENT = Path("data/models/sentiment")
CHARLM = Path("data/models/charlm")
PRETRAIN = Path("data/models/pretrain")
PREPARED_IMDB = Path("data/prepared/imdb")
PREPARED_BOOK = Path("data/prepared/gutenberg")


def _save_model(out: Path, model, params, vocab_file: str, vocab_text: str) -> None:
    out.mkdir(parents=True)
    torch.save(model.state_dict(), out / "model.pt")
    (out / "model.json").write_text(json.dumps({"params": params.model_dump(),
                                                "weights_sha256": sha256_file(out / "model.pt")}))
    (out / vocab_file).write_text(vocab_text, encoding="utf-8")


@pytest.fixture
def layout(tmp_path, monkeypatch):
    """A repository's outputs in miniature, tmp_path the working directory."""
    monkeypatch.chdir(tmp_path)
    words = [PAD, UNK, "good", "bad", "film"]
    sp = SentimentParams(embed_dim=4, hidden_size=4, fc_size=4)
    _save_model(SENTIMENT, build_sentiment(len(words), sp), sp, "vocab.txt",
                "\n".join(words) + "\n")
    chars = list("abc .")
    cp = CharLMParams(embed_dim=4, hidden_size=4)
    _save_model(CHARLM, build_charlm(len(chars), cp), cp, "chars.json", json.dumps(chars))
    PRETRAIN.mkdir(parents=True)
    torch.save({"embedding.weight": torch.zeros(len(words), 4)}, PRETRAIN / "encoder.pt")
    (PRETRAIN / "vocab.txt").write_text("\n".join(words) + "\n")
    PREPARED_IMDB.mkdir(parents=True)
    np.save(PREPARED_IMDB / "tokens.npy", np.array([2, 3, 4, 2], dtype=np.int32))
    pd.DataFrame({"split": ["train", "test"], "label": [1.0, 0.0], "n_tokens": [2, 2],
                  "offset": [0, 2]}).to_parquet(PREPARED_IMDB / "reviews.parquet",
                                                write_page_checksum=True)  # as prepare_imdb
    (PREPARED_IMDB / "vocab.txt").write_text("\n".join(words) + "\n")
    PREPARED_BOOK.mkdir(parents=True)
    np.save(PREPARED_BOOK / "train.npy", np.arange(50, dtype=np.int32) % 5)
    np.save(PREPARED_BOOK / "val.npy", np.arange(10, dtype=np.int32) % 5)
    (Path("params.yaml")).write_bytes((ROOT / "params.yaml").read_bytes())
    Path("metrics").mkdir()
    for name in ("sentiment", "baseline", "charlm"):
        shutil.copy(ROOT / "metrics" / f"{name}.json", Path("metrics"))
    return tmp_path


# (file, how it is read, the command that makes it right)
READERS = {
    SENTIMENT / "model.pt": (lambda: load_sentiment_model(SENTIMENT), "dvc repro train_sentiment"),
    SENTIMENT / "model.json": (lambda: load_sentiment_model(SENTIMENT),
                               "dvc repro train_sentiment"),
    SENTIMENT / "vocab.txt": (lambda: load_sentiment_model(SENTIMENT), "dvc repro train_sentiment"),
    CHARLM / "model.pt": (lambda: load_charlm(CHARLM), "dvc repro train_charlm"),
    CHARLM / "model.json": (lambda: load_charlm(CHARLM), "dvc repro train_charlm"),
    CHARLM / "chars.json": (lambda: load_charlm(CHARLM), "dvc repro train_charlm"),
    PRETRAIN / "encoder.pt": (lambda: pretrained_encoder(PREPARED_IMDB / "vocab.txt", PRETRAIN),
                              "dvc repro pretrain"),
    PREPARED_IMDB / "tokens.npy": (lambda: load_reviews(PREPARED_IMDB), "dvc repro prepare_imdb"),
    PREPARED_IMDB / "reviews.parquet": (lambda: load_reviews(PREPARED_IMDB),
                                        "dvc repro prepare_imdb"),
    PREPARED_IMDB / "vocab.txt": (lambda: Vocab.load(PREPARED_IMDB / "vocab.txt"),
                                  "dvc repro prepare_imdb"),
    PREPARED_BOOK / "train.npy": (lambda: load_chars(PREPARED_BOOK), "dvc repro prepare_gutenberg"),
    Path("metrics/sentiment.json"): (lambda: results_table(Path("metrics")),
                                     "dvc repro evaluate_sentiment"),
    Path("params.yaml"): (lambda: load_params("params.yaml"), "git checkout params.yaml"),
}


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])


def _corrupt(path: Path) -> None:
    data = bytearray(path.read_bytes())
    for i in range(len(data) // 3, len(data) // 3 + 16):
        if i < len(data):
            data[i] = 0xFF
    path.write_bytes(bytes(data))


FAULTS = {
    "missing": (lambda p: p.unlink(), "not found"),
    "empty": (lambda p: p.write_bytes(b""), "is empty"),
    "truncated": (_truncate, ""),
    "corrupt": (_corrupt, ""),
    "not what it should be": (lambda p: p.write_bytes(b"\x80\x02garbage"), ""),
}


def _one_line(exc: BaseException, path: Path, fix: str) -> str:
    message = str(exc)
    assert "\n" not in message, message
    assert message.startswith(str(path)) or f"{path}" in message.split(":")[0], message
    assert fix in message, message
    return message


# Bytes changed inside the data of a format without a checksum still read. The model
# weights carry their digest in model.json and Parquet its page CRCs; for these files
# `dvc status` (which hashes every output) is what reports such a change.
NO_CHECKSUM = {(PRETRAIN / "encoder.pt", "corrupt")}


def _content(obj) -> object:
    """What a reader returned, as plain comparable values."""
    if isinstance(obj, torch.nn.Module):
        return _content(obj.state_dict())
    if isinstance(obj, (torch.Tensor, np.ndarray)):
        return np.asarray(obj).tolist()
    if isinstance(obj, pd.DataFrame):
        return obj.to_dict("list")
    if isinstance(obj, dict):
        return {k: _content(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_content(v) for v in obj]
    if hasattr(obj, "model_dump"):
        return obj.model_dump()
    if hasattr(obj, "itos"):
        return list(obj.itos)
    if hasattr(obj, "offsets"):  # a ReviewSet
        return _content([obj.tokens, obj.offsets, obj.full_lengths, obj.labels])
    return obj


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("path", READERS, ids=str)
def test_every_input_fault_is_one_line_naming_the_file_and_the_fix(layout, path, fault):
    read, fix = READERS[path]
    damage, words = FAULTS[fault]
    intact = _content(read())
    damage(path)
    if fault == "corrupt":
        # Either one line, or the bytes changed were ones no reader uses (Parquet's
        # footer statistics, say) and the content is exactly what it was.
        try:
            content = _content(read())
        except PipelineError as exc:
            _one_line(exc, path, fix)
            return
        assert (path, fault) in NO_CHECKSUM or content == intact, f"{path}: read other data"
        return
    with pytest.raises(PipelineError) as info:
        read()
    if (path.name == "params.yaml" and isinstance(info.value, ConfigError)
            and fault == "truncated" and "missing key" in str(info.value)):
        # Cut between keys: one line per problem, each naming the file and the key. Cut
        # inside a key, the file is not YAML: one line, checked below.
        lines = str(info.value).splitlines()
        assert lines and all(line.startswith("params.yaml: ") for line in lines), lines
        return
    assert words in _one_line(info.value, path, fix)


def test_a_changed_value_in_a_checksummed_file_is_caught(layout):
    """The files whose every byte matters carry a checksum: model weights (model.json
    records their sha256) and Parquet pages (CRC)."""
    for path, read in ((SENTIMENT / "model.pt", lambda: load_sentiment_model(SENTIMENT)),
                       (CHARLM / "model.pt", lambda: load_charlm(CHARLM))):
        data = bytearray(path.read_bytes())
        data[_tensor_byte(path)] ^= 1  # a tensor's value: it would still load
        path.write_bytes(bytes(data))
        with pytest.raises(InputError, match="sha256 is not the one .*model.json records"):
            read()
    table = PREPARED_IMDB / "reviews.parquet"
    good = table.read_bytes()
    caught = 0
    for start in range(4, len(good) - 8, 8):  # every region of the file
        data = bytearray(good)
        data[start:start + 8] = b"\xff" * 8
        table.write_bytes(bytes(data))
        try:
            same = _content(load_reviews(PREPARED_IMDB)["train"]) == \
                _content(_reviews_of(good)["train"])
        except InputError:
            caught += 1
            continue
        assert same, f"bytes {start}-{start + 8} of {table} changed the data silently"
    assert caught > 0


def _tensor_byte(path: Path) -> int:
    """The offset of a byte in the middle of the largest tensor of a torch.save file
    (a zip archive of one stored member per tensor)."""
    with zipfile.ZipFile(path) as archive:
        member = max((m for m in archive.infolist() if "/data/" in m.filename),
                     key=lambda m: m.file_size)
    raw = path.read_bytes()
    name_len, extra_len = struct.unpack("<HH", raw[member.header_offset + 26:
                                                   member.header_offset + 30])
    return member.header_offset + 30 + name_len + extra_len + member.file_size // 2


def _reviews_of(parquet: bytes):
    (PREPARED_IMDB / "reviews.parquet").write_bytes(parquet)
    return load_reviews(PREPARED_IMDB)


def test_a_file_that_cannot_be_read_says_so(layout):
    path = SENTIMENT / "model.json"
    with pytest.raises(InputError, match=r"model.json: not readable \(Permission denied\); "
                                         r"give the user running the pipeline read access"):
        with inputs.reading(path, "a JSON file"):
            raise PermissionError(13, "Permission denied", str(path))


def test_a_model_of_another_kind_says_what_the_folder_holds(layout):
    with pytest.raises(InputError) as info:
        load_charlm(SENTIMENT)
    assert str(info.value) == (
        "data/models/sentiment: holds the sentiment classifier (train_sentiment), not the "
        "char LM (train_charlm), which `generate` uses; give --model-dir the directory of "
        "the char LM (train_charlm)")
    with pytest.raises(InputError, match="holds the pretrained encoder"):
        load_sentiment_model(PRETRAIN)
    with pytest.raises(InputError, match="holds the prepared reviews"):
        load_sentiment_model(PREPARED_IMDB)


def test_weights_of_another_shape_name_the_files_that_disagree(layout):
    info = json.loads((SENTIMENT / "model.json").read_text())
    info["params"]["hidden_size"] = 8
    del info["weights_sha256"]  # as in a model.json written before it recorded one
    (SENTIMENT / "model.json").write_text(json.dumps(info))
    with pytest.raises(InputError, match=r"model.pt: does not fit .*model.json and vocab.txt "
                                         r".*; run `dvc repro train_sentiment`"):
        load_sentiment_model(SENTIMENT)


def test_a_character_vocabulary_of_the_wrong_shape(layout):
    (CHARLM / "chars.json").write_text('{"a": 1}')
    with pytest.raises(InputError, match="chars.json: is not a JSON list of characters"):
        CharVocab.load(CHARLM / "chars.json")


def test_commands_fail_in_one_line_and_write_nothing(layout):
    _truncate(SENTIMENT / "model.pt")
    before = sorted(p for p in layout.rglob("*"))
    result = CliRunner().invoke(cli, ["predict", "a good film"])
    assert result.exit_code == 1 and result.stdout == ""
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("Error: data/models/sentiment/model.pt: is truncated or not a "
                           "model's weights"), line
    assert line.endswith("run `dvc repro train_sentiment` (it rewrites data/models/sentiment)")
    result = CliRunner().invoke(cli, ["generate", "--model-dir", str(SENTIMENT)])
    assert result.exit_code == 1 and len(result.stderr.strip().splitlines()) == 1
    assert sorted(p for p in layout.rglob("*")) == before


def test_a_mirrors_file_named_by_the_environment_must_exist(layout, monkeypatch):
    monkeypatch.setenv("PIPELINE_MIRRORS", str(layout / "mirors.yaml"))
    with pytest.raises(ConfigError, match=r"PIPELINE_MIRRORS=.*mirors.yaml: no such file; "
                                          r"create it \(README, 'Local copies of the data'\)"):
        mirrors_file()


def test_a_broken_mirrors_file_says_the_line(layout):
    bad = layout / "mirrors.local.yaml"
    bad.write_text("order: mirrors_first\nimdb:\n  - url: a\n   sha256: [\n")
    with pytest.raises(ConfigError, match=r"mirrors.local.yaml is not valid YAML at line 4 "):
        load_mirrors(bad)
    bad.write_bytes(b"imdb:\n  - \xff\n")
    with pytest.raises(InputError, match=r"mirrors.local.yaml: is not UTF-8 text"):
        load_mirrors(bad)


def test_the_readme_section_errors_point_at_exists():
    from pipeline.acquire.mirrors import README_SECTION
    title = README_SECTION.split("'")[1]
    assert f"## {title}\n" in (ROOT / "README.md").read_text()


def test_an_unreadable_run_id_file_starts_a_new_run_instead_of_failing(tmp_path, monkeypatch):
    from pipeline.mlops import tracking
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    resume = tmp_path / "run.json"
    resume.write_text("{broken")
    with tracking.start_run("e", "s", "cpu", resume, "fp") as run:
        pass
    assert json.loads(resume.read_text())["run_id"] == run.info.run_id
    assert os.path.getsize(resume) > 0
