"""safe_extract(): dangerous, oversize, truncated or bogus archives fail clearly and leave
nothing at the destination."""
from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from pipeline.acquire.download import ArchiveError, safe_extract
from tests.fixtures import make_imdb_archive


def write_tar(path: Path, members: list) -> Path:
    """A .tar.gz from (TarInfo, data-or-None) pairs, for archives tarfile would not build."""
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def file_member(name: str, data: bytes = b"hello\n"):
    return tarfile.TarInfo(name), data


def link_member(name: str, target: str, kind=tarfile.SYMTYPE):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info, None


def test_safe_extract_extracts_and_replaces_dest(tmp_path):
    archive = write_tar(tmp_path / "ok.tar.gz", [
        file_member("pkg/a.txt", b"a"), file_member("pkg/sub/b.txt", b"b"), link_member("pkg/link", "a.txt"),
    ])
    dest = tmp_path / "out" / "tree"
    dest.mkdir(parents=True)
    (dest / "old.txt").write_text("from an earlier run")
    assert safe_extract(archive, dest) == 3
    assert (dest / "pkg" / "sub" / "b.txt").read_bytes() == b"b"
    assert (dest / "pkg" / "link").read_bytes() == b"a"
    assert not (dest / "old.txt").exists()
    assert sorted(p.name for p in dest.parent.iterdir()) == ["tree"]  # no temp dir left


def test_safe_extract_keep_filter(tmp_path):
    archive = write_tar(tmp_path / "ok.tar", [file_member("a.txt"), file_member("skip/b.txt")])
    dest = tmp_path / "tree"
    assert safe_extract(archive, dest, keep=lambda m: not m.name.startswith("skip/")) == 1
    assert [p.name for p in dest.iterdir()] == ["a.txt"]


def device_member(name: str, kind):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.devmajor, info.devminor = 1, 3
    return info, None


@pytest.mark.parametrize("bad, member", [
    (file_member("../evil.txt"), "../evil.txt"),
    (file_member("pkg/../../evil.txt"), "pkg/../../evil.txt"),
    (file_member("/etc/evil.txt"), "/etc/evil.txt"),
    (link_member("pkg/escape", "../../outside"), "pkg/escape"),
    (link_member("pkg/abs", "/etc/passwd"), "pkg/abs"),
    (link_member("pkg/hard", "../outside", tarfile.LNKTYPE), "pkg/hard"),
    (device_member("pkg/null", tarfile.CHRTYPE), "pkg/null"),
    (device_member("pkg/fifo", tarfile.FIFOTYPE), "pkg/fifo"),
])
def test_safe_extract_rejects_dangerous_members(tmp_path, bad, member):
    archive = write_tar(tmp_path / "bad.tar.gz", [file_member("pkg/ok.txt"), bad])
    out = tmp_path / "out"
    dest = out / "tree"
    with pytest.raises(ArchiveError) as info:
        safe_extract(archive, dest)
    assert repr(member) in str(info.value)
    assert not dest.exists()
    assert list(out.iterdir()) == []
    assert not (tmp_path / "evil.txt").exists() and not (out / "outside").exists()


def test_safe_extract_rejects_oversize_member(tmp_path):
    archive = write_tar(tmp_path / "big.tar.gz", [file_member("big.bin", b"x" * 100)])
    dest = tmp_path / "tree"
    with pytest.raises(ArchiveError, match=r"'big.bin' is 100 bytes, more than the limit of 10"):
        safe_extract(archive, dest, max_member_bytes=10)
    assert not dest.exists()


@pytest.mark.parametrize("keep", ["half", "start", "all but the gzip trailer"])
def test_truncated_archive(tmp_path, keep):
    full = make_imdb_archive(tmp_path / "full.tar.gz", n_per_class=20).read_bytes()
    archive = tmp_path / "cut.tar.gz"
    # The last case loses only tar padding and the gzip CRC: every member is still whole.
    cut = {"half": len(full) // 2, "start": 200, "all but the gzip trailer": len(full) - 8}[keep]
    archive.write_bytes(full[:cut])
    out = tmp_path / "out"
    dest = out / "tree"
    with pytest.raises(ArchiveError, match="cut.tar.gz is truncated or corrupt"):
        safe_extract(archive, dest)
    assert not dest.exists() and list(out.iterdir()) == []


def test_not_an_archive(tmp_path):
    archive = tmp_path / "junk.tar.gz"
    archive.write_bytes(b"<html>404 Not Found</html>")
    with pytest.raises(ArchiveError, match="truncated or corrupt"):
        safe_extract(archive, tmp_path / "tree")
    assert not (tmp_path / "tree").exists()
