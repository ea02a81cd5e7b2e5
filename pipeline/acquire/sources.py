"""Checks specific to the two data sets: the IMDb review archive and a Gutenberg e-book.

Everything here fails loudly (SourceError) rather than quietly training on a partial
data set, a mislabelled review or the Project Gutenberg licence.
"""
from __future__ import annotations

import math
import re
import shutil
import tarfile
from pathlib import Path
from typing import Optional

import pandas as pd

from ..core.errors import SourceError
from .download import list_members, safe_extract


IMDB_FOLDERS = [("train", "pos"), ("train", "neg"), ("test", "pos"), ("test", "neg")]
# The official archive also holds 50,000 reviews without a label, for unsupervised
# learning; copies of the archive without them still work.
UNLABELLED_FOLDER = ("train", "unsup")
UNLABELLED = -1  # the label column's value for a review without one

# Ratings the data set's authors put into each class (5 and 6 are left out on purpose).
_RATINGS = {"pos": range(7, 11), "neg": range(1, 5), "unsup": range(0, 1)}
_REVIEW_NAME = re.compile(r"^(\d+)_(\d+)\.txt$")
_REVIEW_MEMBER = re.compile(r"^aclImdb/(train|test)/(pos|neg|unsup)/([^/]+)$")
_IMDB_METADATA = {"aclImdb/README", "aclImdb/imdb.vocab", "aclImdb/imdbEr.txt",
                  "aclImdb/train/urls_unsup.txt"} | {
    f"aclImdb/{split}/urls_{label}.txt" for split in ("train", "test") for label in ("pos", "neg")
}
_MOVIE_ID = re.compile(r"/title/(tt\d+)")
_MAX_LISTED = 10


# --------------------------------------------------------------------------- IMDb


def _parse_review_name(name: str, label: str, where: str) -> tuple[int, int]:
    """(review id, rating) from 'ID_RATING.txt', checking the rating fits the class."""
    match = _REVIEW_NAME.match(name)
    if not match:
        raise SourceError(f"{where}: file name {name!r} is not of the form ID_RATING.txt")
    review_id, rating = int(match.group(1)), int(match.group(2))
    allowed = _RATINGS[label]
    if rating not in allowed:
        raise SourceError(
            f"{where}: rating {rating} does not fit folder {label!r} "
            f"(expected {allowed.start}-{allowed.stop - 1})"
        )
    return review_id, rating


def _member_name(member: tarfile.TarInfo) -> str:
    # Some tar tools write './aclImdb/...'; compare names without that prefix.
    name = member.name
    while name.startswith("./"):
        name = name[2:]
    return name


def _select_imdb_members(members: list[tarfile.TarInfo], limit: Optional[int]) -> set[str]:
    """Names (as stored) of the members to extract: metadata plus the chosen reviews."""
    wanted: set[str] = set()
    folders = [*IMDB_FOLDERS, UNLABELLED_FOLDER]
    reviews: dict[tuple[str, str], list[tuple[int, str]]] = {folder: [] for folder in folders}
    for member in members:
        if not member.isfile():
            continue
        name = _member_name(member)
        if name in _IMDB_METADATA:
            wanted.add(member.name)
            continue
        match = _REVIEW_MEMBER.match(name)
        if match:
            split, label, file_name = match.groups()
            if (split, label) not in reviews:
                continue  # e.g. test/unsup: not part of the data set
            review_id, _ = _parse_review_name(file_name, label, f"archive member {member.name!r}")
            reviews[(split, label)].append((review_id, member.name))
    for folder_reviews in reviews.values():
        # Numeric order, so limit=100 means ids 0-99 and not '0', '1', '10', '100', ...
        folder_reviews.sort()
        chosen = folder_reviews if limit is None else folder_reviews[:limit]
        wanted.update(stored_name for _, stored_name in chosen)
    return wanted


def imdb_folders(root: Path) -> list[tuple[str, str]]:
    """The review folders under `root`: the four labelled ones, and train/unsup if there."""
    has_unlabelled = (Path(root) / UNLABELLED_FOLDER[0] / UNLABELLED_FOLDER[1]).is_dir()
    return IMDB_FOLDERS + ([UNLABELLED_FOLDER] if has_unlabelled else [])


def verify_imdb_tree(root: Path, *, expected: int, expected_unlabelled: int) -> dict:
    """Check `root` (= .../aclImdb) holds `expected` well-named reviews in each labelled
    folder, and `expected_unlabelled` in train/unsup if the archive has that folder.

    Returns the number of reviews per folder, keyed 'train/pos' etc.
    """
    root = Path(root)
    counts = {}
    for split, label in imdb_folders(root):
        folder = root / split / label
        key = f"{split}/{label}"
        want = expected_unlabelled if (split, label) == UNLABELLED_FOLDER else expected
        if not folder.is_dir():
            raise SourceError(f"IMDb folder {key} is missing under {root}")
        seen: dict[int, str] = {}
        for path in folder.iterdir():
            review_id, _ = _parse_review_name(path.name, label, f"{folder}")
            if review_id in seen:
                raise SourceError(f"{folder}: review id {review_id} appears twice ({seen[review_id]}, {path.name})")
            seen[review_id] = path.name
        if len(seen) != want:
            raise SourceError(f"IMDb folder {key}: expected {want} reviews, found {len(seen)} (in {folder})")
        counts[key] = len(seen)
    return counts


def extract_imdb(archive: Path, dest: Path, *, limit: Optional[int], expected_per_class: int,
                 expected_unlabelled: int) -> dict:
    """Extract the reviews (and metadata) of the IMDb archive into `dest/aclImdb`.

    Skips the bag-of-words files.  With `limit`, keeps only the `limit` lowest review ids
    per split and class (and of the unlabelled reviews).  Verifies the result; on any
    error nothing is left at `dest`.
    """
    archive, dest = Path(archive), Path(dest)
    cap = limit if limit is not None else math.inf
    expected = int(min(expected_per_class, cap))
    expected_unlabelled = int(min(expected_unlabelled, cap))
    try:
        # Decide from the member index first, so the limit picks the lowest ids
        # regardless of the order the archive stores them in.
        wanted = _select_imdb_members(list_members(archive), limit)
        extracted = safe_extract(archive, dest, keep=lambda member: member.name in wanted)
        counts = verify_imdb_tree(dest / "aclImdb", expected=expected,
                                  expected_unlabelled=expected_unlabelled)
    except BaseException:
        # A half-checked tree must not look like a valid stage output.
        if dest.is_dir() and not dest.is_symlink():
            shutil.rmtree(dest)
        raise
    unlabelled = counts.get("/".join(UNLABELLED_FOLDER), 0)
    return {"counts": counts, "reviews": sum(counts.values()) - unlabelled,
            "unlabelled": unlabelled, "members": extracted, "limit": limit}


def _movie_ids(urls_file: Path) -> list[str]:
    """IMDb title id for each review id (= line number) of a urls_{pos,neg}.txt file."""
    if not urls_file.is_file():
        return []
    movies = []
    for line in urls_file.read_text(encoding="utf-8", errors="replace").splitlines():
        match = _MOVIE_ID.search(line)
        movies.append(match.group(1) if match else "unknown")
    return movies


def read_imdb_tree(root: Path, bad_utf8: str = "replace") -> tuple[pd.DataFrame, dict]:
    """All reviews under `root` (= .../aclImdb) as a DataFrame, plus stats.

    Columns: split (train, test, or unsup for the unlabelled ones), id, rating, label
    (1 pos, 0 neg, UNLABELLED), movie (IMDb title id or 'unknown'), text; sorted by
    (split, label, id).  Bytes that are not UTF-8 are
    replaced by U+FFFD and counted (`bad_utf8="replace"`) or make it fail
    (`bad_utf8="fail"`).  Whitespace-only reviews are dropped and counted.
    """
    if bad_utf8 not in ("replace", "fail"):
        raise ValueError(f"bad_utf8 must be 'replace' or 'fail', got {bad_utf8!r}")
    root = Path(root)
    rows = []
    bad_files: list[str] = []
    empty = 0
    for split, label_name in imdb_folders(root):
        folder = root / split / label_name
        if not folder.is_dir():
            raise SourceError(f"IMDb folder {split}/{label_name} is missing under {root}")
        movies = _movie_ids(root / split / f"urls_{label_name}.txt")
        for path in folder.iterdir():
            review_id, rating = _parse_review_name(path.name, label_name, str(folder))
            raw = path.read_bytes()
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                bad_files.append(f"{split}/{label_name}/{path.name}")
                text = raw.decode("utf-8", errors="replace")
            if not text.strip():
                empty += 1
                continue
            rows.append({
                "split": "unsup" if label_name == "unsup" else split,
                "id": review_id,
                "rating": rating,
                "label": {"pos": 1, "neg": 0}.get(label_name, UNLABELLED),
                "movie": movies[review_id] if review_id < len(movies) else "unknown",
                "text": text,
            })

    bad_files.sort()
    if bad_files and bad_utf8 == "fail":
        more = len(bad_files) - _MAX_LISTED
        listed = ", ".join(bad_files[:_MAX_LISTED]) + (f" and {more} more" if more > 0 else "")
        raise SourceError(f"{len(bad_files)} review(s) under {root} are not valid UTF-8: {listed}")

    columns = ["split", "id", "rating", "label", "movie", "text"]
    frame = pd.DataFrame(rows, columns=columns)
    frame = frame.astype({"split": str, "id": "int64", "rating": "int64", "label": "int64", "movie": str, "text": str})
    frame = frame.sort_values(["split", "label", "id"], kind="stable").reset_index(drop=True)
    unlabelled = int((frame["label"] == UNLABELLED).sum())
    stats = {
        "reviews": len(frame) - unlabelled,
        "unlabelled": unlabelled,
        "bad_utf8": len(bad_files),
        "bad_utf8_files": bad_files[:_MAX_LISTED],
        "empty_dropped": empty,
    }
    return frame, stats


# --------------------------------------------------------------------------- Gutenberg

# Older books say "THIS PROJECT GUTENBERG EBOOK", current ones "THE PROJECT GUTENBERG
# EBOOK"; the number of '*' and the spacing vary between releases.
_MARKER = r"^[ \t]*\*+[ \t]*{kind}[ \t]+OF[ \t]+TH(?:E|IS)[ \t]+PROJECT[ \t]+GUTENBERG[ \t]+E-?BOOK\b.*$"
_START = re.compile(_MARKER.format(kind="START"), re.IGNORECASE | re.MULTILINE)
_END = re.compile(_MARKER.format(kind="END"), re.IGNORECASE | re.MULTILINE)
_END_OF_BOOK_LINE = re.compile(r"^[ \t]*End of (?:the )?Project Gutenberg\b[^\n]*\Z", re.IGNORECASE | re.MULTILINE)


def _strip_blank_lines(text: str) -> str:
    lines = text.split("\n")
    while lines and not lines[0].strip():
        lines.pop(0)
    while lines and not lines[-1].strip():
        lines.pop()
    return "\n".join(lines)


def strip_gutenberg(raw: bytes) -> str:
    """The book text strictly between the START and END markers of a Gutenberg file.

    Decodes strict UTF-8, drops a BOM, turns CRLF/CR into LF, and strips leading and
    trailing blank lines.  Raises SourceError when the text is not UTF-8 or a marker is
    missing, so that licence text never ends up in training data.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SourceError(
            f"Gutenberg text is not UTF-8: byte {raw[exc.start]:#04x} at byte offset {exc.start} ({exc.reason})"
        ) from exc
    if text.startswith("\ufeff"):
        text = text[1:]
    text = text.replace("\r\n", "\n").replace("\r", "\n")

    start = _START.search(text)
    if start is None:
        raise SourceError("no '*** START OF ... PROJECT GUTENBERG EBOOK' marker found in the Gutenberg text")
    end = _END.search(text, start.end())
    if end is None:
        line = text.count("\n", 0, start.start()) + 1
        raise SourceError(
            "no '*** END OF ... PROJECT GUTENBERG EBOOK' marker found after the START marker "
            f"(line {line}) in the Gutenberg text"
        )
    # start.end() is the end of the marker line, end.start() the start of the END line.
    body = _strip_blank_lines(text[start.end():end.start()])
    # Older releases put "End of the Project Gutenberg EBook of <title>" just above the
    # END marker: boilerplate, not book.
    body = _strip_blank_lines(_END_OF_BOOK_LINE.sub("", body))
    return body
