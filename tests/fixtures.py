"""Small, deterministic stand-ins for the real data sets, generated on the fly.

Tests must not need the network or a copy of the real files, so these builders write
an IMDb-shaped archive and a Gutenberg-shaped book that exercise the same code paths.
The same arguments always give byte-identical files.
"""
from __future__ import annotations

import gzip
import io
import random
import tarfile
from pathlib import Path
from typing import Optional

# A fixed timestamp for every archive member: real mtimes would make every archive unique.
FIXED_MTIME = 1_300_000_000

POSITIVE_WORDS = [
    "great", "excellent", "wonderful", "brilliant", "moving", "superb", "delightful",
    "beautiful", "masterpiece", "funny", "charming", "enjoyable", "touching", "perfect",
    "loved", "best", "gripping", "stunning", "fantastic", "memorable",
]
NEGATIVE_WORDS = [
    "awful", "terrible", "boring", "waste", "worst", "dull", "stupid", "horrible",
    "poor", "bad", "mess", "pointless", "annoying", "lame", "disappointing", "weak",
    "predictable", "hated", "ridiculous", "unwatchable",
]
NEUTRAL_WORDS = [
    "the", "movie", "film", "a", "and", "of", "to", "is", "it", "was", "this", "in",
    "story", "acting", "plot", "actor", "scene", "director", "characters", "ending",
    "music", "i", "watched", "with", "about", "as", "script", "really", "very", "cast",
]
POSITIVE_EMOTICONS = [":)", ":-)", ":D"]
NEGATIVE_EMOTICONS = [":(", ":-(", ":/"]


def _review_text(rng: random.Random, positive: bool) -> str:
    own, other = (POSITIVE_WORDS, NEGATIVE_WORDS) if positive else (NEGATIVE_WORDS, POSITIVE_WORDS)
    emoticons = POSITIVE_EMOTICONS if positive else NEGATIVE_EMOTICONS
    words = []
    for _ in range(rng.randint(10, 120)):
        roll = rng.random()
        # Mostly the class's own words, a little of the other class's so it is not trivial.
        if roll < 0.35:
            words.append(rng.choice(own))
        elif roll < 0.42:
            words.append(rng.choice(other))
        else:
            words.append(rng.choice(NEUTRAL_WORDS))
        if rng.random() < 0.08:
            words[-1] += rng.choice([".", ",", "!"])
        if rng.random() < 0.03:
            words.append("<br /><br />")
        if rng.random() < 0.03:
            words.append(rng.choice(emoticons))
    words[0] = words[0].capitalize()
    return " ".join(words) + "."


def _add_file(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = FIXED_MTIME
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def _add_dir(tar: tarfile.TarFile, name: str) -> None:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mtime = FIXED_MTIME
    info.mode = 0o755
    tar.addfile(info)


def make_imdb_archive(
    path: Path,
    n_per_class: int = 50,
    seed: int = 0,
    *,
    bad_utf8_ids: tuple = (),
    empty_ids: tuple = (),
    extra_members: Optional[list] = None,
    n_movies: int = 10,
    n_unlabelled: int = 5,
) -> Path:
    """Write an aclImdb-shaped .tar.gz with `n_per_class` reviews per split and class.

    `bad_utf8_ids` get invalid UTF-8 bytes (train/pos), `empty_ids` become whitespace
    only (train/neg).  `extra_members` are added as given: `(name, bytes)` pairs for
    regular files, or `tarfile.TarInfo` objects (links, devices, ...) without data.
    Also holds `n_unlabelled` reviews in train/unsup (none: no such folder), and the
    parts `extract_imdb` must skip: *.feat.
    """
    files, dirs = _imdb_members(random.Random(seed), n_per_class, n_movies, n_unlabelled,
                                bad_utf8_ids, empty_ids)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(dirs):
            _add_dir(tar, name)
        for name in sorted(files):
            _add_file(tar, name, files[name])
        for extra in extra_members or []:
            if isinstance(extra, tarfile.TarInfo):
                tar.addfile(extra)
            else:
                name, data = extra
                _add_file(tar, name, data)

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # GzipFile with mtime=0 and no file name: tarfile's own "w:gz" stamps both into the
    # gzip header, which would make identical archives differ.
    with open(path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
        gz.write(buffer.getvalue())
    return path


def _imdb_members(rng: random.Random, n_per_class: int, n_movies: int, n_unlabelled: int,
                  bad_utf8_ids: tuple, empty_ids: tuple) -> tuple[dict[str, bytes], set[str]]:
    """The archive's files (name -> bytes) and folders, in aclImdb's layout."""
    files: dict[str, bytes] = {
        "aclImdb/README": b"Large Movie Review Dataset v1.0 (test fixture)\n",
        "aclImdb/imdb.vocab": "\n".join(sorted(set(POSITIVE_WORDS + NEGATIVE_WORDS + NEUTRAL_WORDS))).encode() + b"\n",
        "aclImdb/imdbEr.txt": "\n".join(f"{rng.uniform(-3, 3):.6f}" for _ in range(20)).encode() + b"\n",
    }
    dirs = {"aclImdb", "aclImdb/train", "aclImdb/test"}

    for split_index, split in enumerate(("train", "test")):
        # Distinct title ids per split, like the real data set, shared by several reviews.
        movies = [f"tt{1_000_000 * (split_index + 1) + 7 * m:07d}" for m in range(n_movies)]
        for label in ("pos", "neg"):
            dirs.add(f"aclImdb/{split}/{label}")
            urls = []
            for review_id in range(n_per_class):
                rating = rng.randint(7, 10) if label == "pos" else rng.randint(1, 4)
                data = _review_text(rng, positive=label == "pos").encode("utf-8")
                if split == "train" and label == "pos" and review_id in bad_utf8_ids:
                    data = data[:5] + b"\xff\xfe" + data[5:]
                if split == "train" and label == "neg" and review_id in empty_ids:
                    data = b"  \n\t "
                files[f"aclImdb/{split}/{label}/{review_id}_{rating}.txt"] = data
                urls.append(f"http://www.imdb.com/title/{rng.choice(movies)}/usercomments")
            files[f"aclImdb/{split}/urls_{label}.txt"] = ("\n".join(urls) + "\n").encode()
        files[f"aclImdb/{split}/labeledBow.feat"] = b"0 0:9 1:1\n"

    if n_unlabelled:
        dirs.add("aclImdb/train/unsup")
        for review_id in range(n_unlabelled):
            files[f"aclImdb/train/unsup/{review_id}_0.txt"] = _review_text(rng, rng.random() < 0.5).encode()
        files["aclImdb/train/unsupBow.feat"] = b"0 0:1\n"  # what extract_imdb leaves out
        files["aclImdb/train/urls_unsup.txt"] = b"http://www.imdb.com/title/tt0000001/usercomments\n"
    return files, dirs


# --------------------------------------------------------------------------- Gutenberg

_NAMES = ["Cyrus Harding", "Pencroft", "Herbert", "Neb", "Gideon Spilett", "Top"]
_SUBJECTS = ["the engineer", "the sailor", "the lad", "the reporter", "the settlers", "the dog"]
_VERBS = ["climbed", "explored", "watched", "crossed", "followed", "reached", "examined", "left"]
_OBJECTS = ["the beach", "the forest", "the granite wall", "the island", "the shore",
            "the river", "the plateau", "the cave", "the sea", "the volcano"]
_TAILS = ["before night fell", "in silence", "with great care", "at dawn", "without a word",
          "under the heavy rain", "as the wind rose", "for many hours"]

LICENCE_HEADER = (
    "The Project Gutenberg eBook of The Mysterious Island\n"
    "\n"
    "This ebook is for the use of anyone anywhere in the United States and\n"
    "most other parts of the world at no cost and with almost no restrictions\n"
    "whatsoever. You may copy it, give it away or re-use it under the terms\n"
    "of the Project Gutenberg License included with this ebook or online\n"
    "at www.gutenberg.org.\n"
    "\n"
    "Title: The Mysterious Island\n"
    "\n"
    "Author: Jules Verne\n"
    "\n"
    "Language: English\n"
)
LICENCE_FOOTER = (
    "Updated editions will replace the previous one--the old editions will\n"
    "be renamed.\n"
    "\n"
    "START: FULL LICENSE\n"
    "\n"
    "THE FULL PROJECT GUTENBERG LICENSE\n"
    "PLEASE READ THIS BEFORE YOU DISTRIBUTE OR USE THIS WORK\n"
)


def _sentence(rng: random.Random) -> str:
    subject = rng.choice(_NAMES + _SUBJECTS)
    sentence = f"{subject} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)}"
    if rng.random() < 0.5:
        sentence += f" {rng.choice(_TAILS)}"
    if rng.random() < 0.2:
        sentence += f", and {rng.choice(_NAMES)} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)}"
    if rng.random() < 0.05:
        sentence += " \u2014 so it seemed"  # an em dash: the book is UTF-8, not ASCII
    sentence = sentence[0].upper() + sentence[1:]
    return sentence + rng.choice([".", ".", ".", "!", "?"])


def _wrap(words: list[str], width: int = 70) -> list[str]:
    lines, current = [], ""
    for word in words:
        if current and len(current) + 1 + len(word) > width:
            lines.append(current)
            current = word
        else:
            current = f"{current} {word}" if current else word
    if current:
        lines.append(current)
    return lines


def gutenberg_body(n_chars: int = 20000, seed: int = 0) -> str:
    """The book text (LF line endings) that `make_gutenberg_text` puts between the markers."""
    rng = random.Random(seed)
    parts: list[str] = []
    length = 0
    chapter = 0
    while length < n_chars:
        if chapter == 0 or rng.random() < 0.1:
            chapter += 1
            parts.append(f"CHAPTER {chapter}.")
        paragraph = " ".join(_sentence(rng) for _ in range(rng.randint(2, 6)))
        parts.append("\n".join(_wrap(paragraph.split(" "))))
        length += len(parts[-1]) + 2
    return "\n\n".join(parts)


def make_gutenberg_text(path: Path, n_chars: int = 20000, seed: int = 0, *, markers: str = "current") -> Path:
    """Write a Gutenberg-style book: BOM, CRLF, licence header, markers, body, footer.

    `markers`: "current" ("THE PROJECT GUTENBERG EBOOK"), "old" ("THIS PROJECT ...")
    or "none" (no markers at all).
    """
    if markers not in ("current", "old", "none"):
        raise ValueError(f"markers must be 'current', 'old' or 'none', got {markers!r}")
    which = "THE" if markers == "current" else "THIS"
    start = f"*** START OF {which} PROJECT GUTENBERG EBOOK THE MYSTERIOUS ISLAND ***"
    end = f"*** END OF {which} PROJECT GUTENBERG EBOOK THE MYSTERIOUS ISLAND ***"
    sections = [LICENCE_HEADER]
    if markers != "none":
        sections.append(start)
    body = "\n\n\n" + gutenberg_body(n_chars, seed) + "\n\n\n"
    if markers == "old":
        # Older releases end the book with this line, just above the END marker.
        body += "End of the Project Gutenberg EBook of The Mysterious Island, by Jules Verne\n"
    sections.append(body)
    if markers != "none":
        sections.append(end)
    sections.append(LICENCE_FOOTER)
    text = "\n".join(sections).replace("\n", "\r\n")

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    return path
