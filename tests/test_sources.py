"""IMDb extraction/loading and Gutenberg stripping, on generated fixtures."""
from __future__ import annotations

import re
import tarfile
from pathlib import Path

import pytest

from pipeline.acquire.download import ArchiveError
from pipeline.acquire.sources import (
    IMDB_FOLDERS,
    UNLABELLED,
    SourceError,
    extract_imdb,
    read_imdb_tree,
    strip_gutenberg,
    verify_imdb_tree,
)
from tests.fixtures import gutenberg_body, make_gutenberg_text, make_imdb_archive

N = 12  # reviews per split and class in most fixtures: ids 0..11 (so '10' < '2' as text)
U = 5   # unlabelled reviews in the fixture archive (train/unsup)


def relative_files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def archive(tmp_path) -> Path:
    return make_imdb_archive(tmp_path / "aclImdb_v1.tar.gz", n_per_class=N)


# --------------------------------------------------------------------------- fixtures themselves


def test_imdb_archive_is_deterministic(tmp_path):
    a = make_imdb_archive(tmp_path / "a.tar.gz", n_per_class=5, seed=3)
    b = make_imdb_archive(tmp_path / "b.tar.gz", n_per_class=5, seed=3)
    c = make_imdb_archive(tmp_path / "c.tar.gz", n_per_class=5, seed=4)
    assert a.read_bytes() == b.read_bytes() != c.read_bytes()


# --------------------------------------------------------------------------- extract_imdb


def test_extract_imdb_keeps_reviews_and_unlabelled(archive, tmp_path):
    dest = tmp_path / "imdb"
    summary = extract_imdb(archive, dest, limit=None, expected_per_class=N, expected_unlabelled=U)
    assert summary["counts"] == {**{f"{s}/{l}": N for s, l in IMDB_FOLDERS}, "train/unsup": U}
    assert (summary["reviews"], summary["unlabelled"]) == (4 * N, U)
    files = relative_files(dest)
    assert summary["members"] == len(files) == 4 * N + U + 8
    assert {"aclImdb/README", "aclImdb/imdb.vocab", "aclImdb/imdbEr.txt", "aclImdb/train/urls_pos.txt",
            "aclImdb/test/urls_neg.txt", "aclImdb/train/urls_unsup.txt"} <= files
    assert not any(f.endswith(".feat") for f in files)


def test_extract_imdb_without_unlabelled_folder(tmp_path):
    archive = make_imdb_archive(tmp_path / "a.tar.gz", n_per_class=4, n_unlabelled=0)
    summary = extract_imdb(archive, tmp_path / "imdb", limit=None, expected_per_class=4,
                           expected_unlabelled=50000)
    assert summary["unlabelled"] == 0 and "train/unsup" not in summary["counts"]
    frame, stats = read_imdb_tree(tmp_path / "imdb" / "aclImdb")
    assert stats["unlabelled"] == 0 and set(frame.split) == {"train", "test"}


def test_extract_imdb_wrong_unlabelled_count(archive, tmp_path):
    with pytest.raises(SourceError, match=rf"train/unsup: expected {U + 1} reviews, found {U}"):
        extract_imdb(archive, tmp_path / "imdb", limit=None, expected_per_class=N,
                     expected_unlabelled=U + 1)
    assert not (tmp_path / "imdb").exists()


def test_extract_imdb_limit_takes_lowest_ids(archive, tmp_path):
    dest = tmp_path / "imdb"
    summary = extract_imdb(archive, dest, limit=3, expected_per_class=12500, expected_unlabelled=50000)
    assert summary["counts"] == {**{f"{s}/{l}": 3 for s, l in IMDB_FOLDERS}, "train/unsup": 3}
    for split, label in [*IMDB_FOLDERS, ("train", "unsup")]:
        ids = sorted(int(p.name.split("_")[0]) for p in (dest / "aclImdb" / split / label).iterdir())
        assert ids == [0, 1, 2]


def test_extract_imdb_wrong_count(archive, tmp_path):
    dest = tmp_path / "imdb"
    with pytest.raises(SourceError, match=rf"train/pos: expected {N + 1} reviews, found {N}"):
        extract_imdb(archive, dest, limit=None, expected_per_class=N + 1, expected_unlabelled=U)
    assert not dest.exists()


@pytest.mark.parametrize("member, message", [
    ("aclImdb/train/pos/99_2.txt", r"rating 2 does not fit folder 'pos' \(expected 7-10\)"),
    ("aclImdb/test/neg/99_8.txt", r"rating 8 does not fit folder 'neg' \(expected 1-4\)"),
    ("aclImdb/test/neg/notes.txt", r"'notes.txt' is not of the form ID_RATING.txt"),
])
def test_extract_imdb_rejects_bad_review_names(tmp_path, member, message):
    archive = make_imdb_archive(tmp_path / "a.tar.gz", n_per_class=4, extra_members=[(member, b"text")])
    dest = tmp_path / "imdb"
    with pytest.raises(SourceError, match=message) as info:
        extract_imdb(archive, dest, limit=None, expected_per_class=4, expected_unlabelled=U)
    assert member in str(info.value)
    assert not dest.exists()


def test_extract_imdb_refuses_escaping_member(tmp_path):
    evil = tarfile.TarInfo("aclImdb/README")
    evil.type, evil.linkname = tarfile.SYMTYPE, "../../../etc/passwd"
    archive = make_imdb_archive(tmp_path / "a.tar.gz", n_per_class=2, extra_members=[evil])
    dest = tmp_path / "imdb"
    with pytest.raises(ArchiveError, match="aclImdb/README"):
        extract_imdb(archive, dest, limit=None, expected_per_class=2, expected_unlabelled=U)
    assert not dest.exists()


def test_extract_imdb_truncated(archive, tmp_path):
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    dest = tmp_path / "imdb"
    with pytest.raises(ArchiveError, match="truncated or corrupt"):
        extract_imdb(cut, dest, limit=None, expected_per_class=N, expected_unlabelled=U)
    assert not dest.exists()


def test_verify_imdb_tree_on_disk(archive, tmp_path):
    dest = tmp_path / "imdb"
    extract_imdb(archive, dest, limit=None, expected_per_class=N, expected_unlabelled=U)
    root = dest / "aclImdb"
    review = next((root / "test" / "pos").iterdir())
    review.rename(review.with_name("3_5.txt.bak"))
    with pytest.raises(SourceError, match="not of the form ID_RATING.txt"):
        verify_imdb_tree(root, expected=N, expected_unlabelled=U)
    (root / "test" / "pos" / "3_5.txt.bak").unlink()
    with pytest.raises(SourceError, match=rf"test/pos: expected {N} reviews, found {N - 1}"):
        verify_imdb_tree(root, expected=N, expected_unlabelled=U)
    for path in (root / "train" / "neg").iterdir():
        path.unlink()
    (root / "train" / "neg").rmdir()
    with pytest.raises(SourceError, match="train/neg is missing"):
        verify_imdb_tree(root, expected=N, expected_unlabelled=U)


# --------------------------------------------------------------------------- read_imdb_tree


def extract(tmp_path, **fixture_args) -> Path:
    archive = make_imdb_archive(tmp_path / "a.tar.gz", **fixture_args)
    extract_imdb(archive, tmp_path / "imdb", limit=None, expected_per_class=fixture_args["n_per_class"], expected_unlabelled=U)
    return tmp_path / "imdb" / "aclImdb"


def test_load_reviews_frame(tmp_path):
    root = extract(tmp_path, n_per_class=N, n_movies=3)
    frame, stats = read_imdb_tree(root)
    assert stats == {"reviews": 4 * N, "unlabelled": U, "bad_utf8": 0, "bad_utf8_files": [],
                     "empty_dropped": 0}
    assert list(frame.columns) == ["split", "id", "rating", "label", "movie", "text"]
    unlabelled = frame[frame.split == "unsup"]
    assert len(unlabelled) == U and (unlabelled.label == UNLABELLED).all()
    assert (unlabelled.rating == 0).all()
    frame = frame[frame.split != "unsup"]
    assert list(frame.itertuples(index=False, name=None)) == sorted(
        frame.itertuples(index=False, name=None), key=lambda row: (row[0], row[3], row[1]))
    assert frame.groupby(["split", "label"]).size().to_dict() == {
        ("test", 0): N, ("test", 1): N, ("train", 0): N, ("train", 1): N}
    assert frame.loc[frame.label == 1, "rating"].between(7, 10).all()
    assert frame.loc[frame.label == 0, "rating"].between(1, 4).all()
    assert frame["movie"].str.fullmatch(r"tt\d{7}").all()
    # Three movies per split, shared by many reviews; splits do not share movies.
    assert frame.groupby("split")["movie"].nunique().max() <= 3
    assert not set(frame[frame.split == "train"].movie) & set(frame[frame.split == "test"].movie)
    # The movie comes from line `id` of the urls file.
    urls = (root / "test" / "urls_neg.txt").read_text().splitlines()
    row = frame[(frame.split == "test") & (frame.label == 0) & (frame.id == 7)].iloc[0]
    assert f"/title/{row.movie}/" in urls[7]


def test_load_reviews_bad_utf8_and_empty(tmp_path):
    root = extract(tmp_path, n_per_class=N, bad_utf8_ids=(3,), empty_ids=(5,))
    frame, stats = read_imdb_tree(root, bad_utf8="replace")
    bad_name = next(p.name for p in (root / "train" / "pos").glob("3_*.txt"))
    assert stats == {"reviews": 4 * N - 1, "unlabelled": U, "bad_utf8": 1, "bad_utf8_files": [f"train/pos/{bad_name}"],
                     "empty_dropped": 1}
    replaced = frame[(frame.split == "train") & (frame.label == 1) & (frame.id == 3)].text.iloc[0]
    assert "\ufffd" in replaced
    assert 5 not in set(frame[(frame.split == "train") & (frame.label == 0)].id)

    with pytest.raises(SourceError, match=rf"1 review\(s\) .* not valid UTF-8: train/pos/{bad_name}"):
        read_imdb_tree(root, bad_utf8="fail")


def test_load_reviews_fail_lists_ten_and_counts_rest(tmp_path):
    root = extract(tmp_path, n_per_class=N, bad_utf8_ids=tuple(range(N)))
    with pytest.raises(SourceError, match=rf"{N} review\(s\) .* and {N - 10} more$"):
        read_imdb_tree(root, bad_utf8="fail")
    _, stats = read_imdb_tree(root)
    assert stats["bad_utf8"] == N and len(stats["bad_utf8_files"]) == 10


def test_load_reviews_missing_urls_file_gives_unknown_movie(tmp_path):
    root = extract(tmp_path, n_per_class=4)
    (root / "train" / "urls_pos.txt").unlink()
    frame, _ = read_imdb_tree(root)
    assert (frame[(frame.split == "train") & (frame.label == 1)].movie == "unknown").all()
    assert (frame[frame.split == "test"].movie != "unknown").all()


def test_fixture_reviews_are_learnable(tmp_path):
    from tests.fixtures import NEGATIVE_WORDS, POSITIVE_WORDS
    frame, _ = read_imdb_tree(extract(tmp_path, n_per_class=20))

    def score(text: str) -> int:
        words = re.findall(r"[a-z]+", text.lower())
        return sum(w in POSITIVE_WORDS for w in words) - sum(w in NEGATIVE_WORDS for w in words)

    predicted = (frame.text.map(score) > 0).astype(int)
    assert (predicted == frame.label).mean() > 0.9


# --------------------------------------------------------------------------- strip_gutenberg


@pytest.mark.parametrize("markers", ["current", "old"])
def test_strip_gutenberg_fixture(tmp_path, markers):
    raw = make_gutenberg_text(tmp_path / "book.txt", n_chars=3000, markers=markers).read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf") and b"\r\n" in raw
    text = strip_gutenberg(raw)
    assert text == gutenberg_body(3000)
    assert text.startswith("CHAPTER 1.")
    assert "\r" not in text and "\ufeff" not in text and "Gutenberg" not in text


def test_strip_gutenberg_lenient_markers():
    raw = (
        "licence\r"
        "***START OF THE PROJECT GUTENBERG EBOOK 1268***\r"
        "\r\n"
        "  Line one.\r\n"
        "\r\n"
        "Line two.\n"
        "   \n"
        "*****  end of this project gutenberg ebook the mysterious island  *****\n"
        "licence\n"
    ).encode()
    assert strip_gutenberg(raw) == "  Line one.\n\nLine two."


def test_strip_gutenberg_without_markers(tmp_path):
    raw = make_gutenberg_text(tmp_path / "book.txt", n_chars=500, markers="none").read_bytes()
    with pytest.raises(SourceError, match=r"no '\*\*\* START OF \.\.\. PROJECT GUTENBERG EBOOK' marker found"):
        strip_gutenberg(raw)


def test_strip_gutenberg_without_end_marker():
    raw = b"*** START OF THE PROJECT GUTENBERG EBOOK X ***\nbody\n"
    with pytest.raises(SourceError, match=r"no '\*\*\* END OF .* after the START marker \(line 1\)"):
        strip_gutenberg(raw)


def test_strip_gutenberg_not_utf8():
    raw = b"*** START OF THE PROJECT GUTENBERG EBOOK X ***\ncaf\xe9\n*** END OF THE PROJECT GUTENBERG EBOOK X ***"
    with pytest.raises(SourceError, match="not UTF-8: byte 0xe9 at byte offset 50"):
        strip_gutenberg(raw)
