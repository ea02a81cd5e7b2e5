"""Content is the data's identity, a URL only where to get it: mirrors are machine-local
configuration, tried in the order the user chooses, and the same data fetched from
anywhere gives the same DVC hashes downstream."""
from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest
import yaml

from pipeline.acquire.mirrors import Source, fetch_first, load_mirrors, sources
from pipeline.core.errors import ConfigError, DownloadError
from pipeline.core.outputs import sha256_file
from tests.fixtures import make_gutenberg_text, make_imdb_archive
from tests.repo import N_PER_CLASS, N_UNLABELLED, make_repo, run, stages_run

DATA_STAGES = ["acquire_imdb", "acquire_gutenberg", "prepare_imdb", "prepare_gutenberg"]


def write_mirrors(path: Path, content: dict) -> Path:
    path.write_text(yaml.safe_dump(content), encoding="utf-8")
    return path


def test_no_mirrors_file_means_the_official_source_alone(tmp_path):
    official = Source("https://example.org/a.tar.gz", None)
    assert sources("imdb", official, tmp_path / "none.yaml") == [official]


def test_mirrors_are_tried_in_the_chosen_order(tmp_path):
    official = Source("https://example.org/a.tar.gz", "a" * 64)
    path = write_mirrors(tmp_path / "m.yaml", {"imdb": [{"url": "/copy.tar.gz", "sha256": "b" * 64},
                                                        "file:///other.tar.gz"]})
    mirror, other = Source("/copy.tar.gz", "b" * 64), Source("file:///other.tar.gz", None)
    assert sources("imdb", official, path) == [official, mirror, other]
    write_mirrors(path, {"order": "mirrors_first", "imdb": [{"url": "/copy.tar.gz", "sha256": "b" * 64}]})
    assert sources("imdb", official, path) == [mirror, official]
    assert sources("gutenberg", official, path) == [official]


@pytest.mark.parametrize("content, message", [
    ({"order": "random"}, "order must be one of"),
    ({"imbd": []}, "unknown key"),
    ({"imdb": "file:///x"}, "must be a list"),
    ({"imdb": [{"path": "/x"}]}, "mapping with 'url'"),
])
def test_a_bad_mirrors_file_is_one_clear_error(tmp_path, content, message):
    path = write_mirrors(tmp_path / "mirrors.local.yaml", content)
    with pytest.raises(ConfigError, match=message) as info:
        load_mirrors(path)
    assert str(path) in str(info.value)


def test_an_unreachable_source_falls_back_to_the_next(tmp_path, http_server, monkeypatch):
    monkeypatch.chdir(tmp_path)
    payload = b"the same bytes\n" * 100
    official = http_server.add("/official.bin", payload, fail_status=404, fail_times=None)
    copy = tmp_path / "copy.bin"
    copy.write_bytes(payload)
    monkeypatch.setenv("PIPELINE_MIRRORS", str(write_mirrors(
        tmp_path / "m.yaml", {"imdb": [{"url": copy.as_uri(), "sha256": sha256_file(copy)}]})))
    path, provenance = fetch_first("imdb", Source(official, None))
    assert path.read_bytes() == payload
    assert provenance["url"] == copy.as_uri() and provenance["official_url"] == official
    assert "404" in provenance["failed_before"][0]
    # Recorded where no stage hashes it.
    recorded = json.loads((tmp_path / "data/provenance/imdb.json").read_text())
    assert recorded["url"] == copy.as_uri()


def test_no_source_answering_names_every_attempt(tmp_path, http_server, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "none.yaml").write_text("imdb: []\n")
    monkeypatch.setenv("PIPELINE_MIRRORS", str(tmp_path / "none.yaml"))
    official = http_server.add("/gone.bin", b"x", fail_status=404, fail_times=None)
    with pytest.raises(DownloadError, match="no source of imdb could be fetched") as info:
        fetch_first("imdb", Source(official, None))
    assert official in str(info.value)
    assert "(README, 'Local copies of the data')" in str(info.value)
    assert not (tmp_path / "data/provenance/imdb.json").exists()


def repack(archive: Path, dest: Path) -> Path:
    """The same members, in reverse order, other mtimes, uncompressed: another file
    (another sha256) holding the same reviews."""
    with tarfile.open(archive) as src, tarfile.open(dest, "w") as out:
        for member in reversed(src.getmembers()):
            data = src.extractfile(member).read() if member.isfile() else None
            member.mtime += 86_400
            out.addfile(member, io.BytesIO(data) if data is not None else None)
    return dest


@pytest.mark.slow
def test_two_clones_two_mirrors_same_data_hashes(tmp_path, http_server):
    """One clone fetches over HTTP, the other from a re-packed copy on disk through its
    machine-local mirrors file (the official URL answering 404): every data stage's
    outputs hash the same in both dvc.lock files."""
    archive = make_imdb_archive(tmp_path / "aclImdb_v1.tar.gz", n_per_class=N_PER_CLASS,
                                n_unlabelled=N_UNLABELLED)
    book = make_gutenberg_text(tmp_path / "pg1268.txt", n_chars=20000)
    served = {"imdb": {"url": http_server.add("/imdb.tar.gz", archive.read_bytes()),
                       "sha256": sha256_file(archive)},
              "gutenberg": {"url": http_server.add("/book.txt", book.read_bytes())}}
    first = make_repo(tmp_path / "first", served)
    run(["dvc", "repro", *DATA_STAGES], first)

    repacked = repack(archive, tmp_path / "repacked.tar")
    assert sha256_file(repacked) != sha256_file(archive)
    gone = {"imdb": {"url": http_server.add("/gone.tar.gz", b"", fail_status=404, fail_times=None),
                     "sha256": sha256_file(archive)},
            "gutenberg": {"url": http_server.add("/gone.txt", b"", fail_status=404, fail_times=None)}}
    second = make_repo(tmp_path / "second", gone)
    write_mirrors(second / "mirrors.local.yaml", {
        "imdb": [{"url": repacked.as_uri(), "sha256": sha256_file(repacked)}],
        "gutenberg": [str(book)]})
    assert run(["git", "status", "--porcelain"], second).stdout == ""  # git-ignored
    proc = run(["dvc", "repro", *DATA_STAGES], second)
    assert set(stages_run(proc.stdout)) == set(DATA_STAGES)

    def outs(repo: Path) -> dict:
        lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
        return {name: lock[name]["outs"] for name in DATA_STAGES}
    assert outs(first) == outs(second)
    provenance = [json.loads((repo / "data/provenance/imdb.json").read_text())["url"]
                  for repo in (first, second)]
    assert provenance == [served["imdb"]["url"], repacked.as_uri()]
    # The URL is no dependency: pointing params.yaml at the mirror changes nothing.
    params = yaml.safe_load((second / "params.yaml").read_text())
    params["imdb"]["url"] = repacked.as_uri()
    (second / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert "acquire_imdb" not in run(["dvc", "status", "--json"], second).stdout
