"""fetch(): every failure must leave nothing at the final path."""
from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import datetime
from pathlib import Path

import pytest

from pipeline.acquire.download import DownloadError, fetch, sha256_file

ROOT = Path(__file__).resolve().parents[1]
PAYLOAD = bytes(range(256)) * 1024  # 256 KiB, several chunks
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()
# Small waits so retry tests stay fast; short timeouts so a bug cannot hang the suite.
FAST = dict(retries=3, backoff=0.01, timeout=(2, 5), progress=False)


def assert_nothing_at(dest: Path) -> None:
    assert not dest.exists(), f"{dest} should not exist"
    assert not dest.with_name(dest.name + ".json").exists()


def assert_fetched(dest: Path, url: str, result: dict) -> None:
    assert dest.read_bytes() == PAYLOAD
    assert not dest.with_name(dest.name + ".part").exists()
    recorded = json.loads(dest.with_name(dest.name + ".json").read_text())
    assert recorded == result
    assert result["url"] == url
    assert result["sha256"] == PAYLOAD_SHA
    assert result["bytes"] == len(PAYLOAD)
    assert datetime.fromisoformat(result["fetched_at"]).utcoffset().total_seconds() == 0


# --------------------------------------------------------------------------- fetch: success


def test_http_download_checks_sha_and_writes_provenance(http_server, tmp_path):
    url = http_server.add("/data.bin", PAYLOAD)
    dest = tmp_path / "raw" / "data.bin"
    result = fetch(url, dest, PAYLOAD_SHA.upper(), **{**FAST, "progress": True})
    assert_fetched(dest, url, result)
    assert [r.range for r in http_server.requests_for("/data.bin")] == [None]
    assert sha256_file(dest) == PAYLOAD_SHA


def test_file_url_and_plain_path(tmp_path):
    source = tmp_path / "source.bin"
    source.write_bytes(PAYLOAD)
    for url, name in ((source.as_uri(), "via_uri.bin"), (str(source), "via_path.bin")):
        dest = tmp_path / "out" / name
        assert_fetched(dest, url, fetch(url, dest, PAYLOAD_SHA, **FAST))


def test_missing_local_file_names_the_path(tmp_path):
    missing = tmp_path / "nope.bin"
    dest = tmp_path / "out.bin"
    with pytest.raises(DownloadError, match="nope.bin"):
        fetch(str(missing), dest, None, **FAST)
    assert_nothing_at(dest)


def test_sha_none_accepts_and_records_digest(http_server, tmp_path):
    url = http_server.add("/book.txt", PAYLOAD)
    dest = tmp_path / "book.txt"
    assert_fetched(dest, url, fetch(url, dest, None, **FAST))


# --------------------------------------------------------------------------- fetch: resume and retries


def test_dropped_connection_resumes_with_range(http_server, tmp_path):
    url = http_server.add("/data.bin", PAYLOAD, drop_times=1, drop_at=0.5, chunk_size=16 * 1024)
    dest = tmp_path / "data.bin"
    assert_fetched(dest, url, fetch(url, dest, PAYLOAD_SHA, **FAST))
    ranges = [r.range for r in http_server.requests_for("/data.bin")]
    assert ranges[0] is None
    assert len(ranges) == 2
    assert ranges[1] == f"bytes={len(PAYLOAD) // 2}-"


def test_server_ignoring_range_restarts_cleanly(http_server, tmp_path):
    url = http_server.add("/data.bin", PAYLOAD, drop_times=1, honour_range=False, chunk_size=16 * 1024)
    dest = tmp_path / "data.bin"
    assert_fetched(dest, url, fetch(url, dest, PAYLOAD_SHA, **FAST))
    ranges = [r.range for r in http_server.requests_for("/data.bin")]
    assert len(ranges) == 2 and ranges[1] is not None  # asked to resume, got 200, started over


def test_existing_part_is_resumed(http_server, tmp_path):
    url = http_server.add("/data.bin", PAYLOAD)
    dest = tmp_path / "data.bin"
    dest.with_name("data.bin.part").write_bytes(PAYLOAD[:1000])
    assert_fetched(dest, url, fetch(url, dest, PAYLOAD_SHA, **FAST))
    assert [r.range for r in http_server.requests_for("/data.bin")] == ["bytes=1000-"]


def test_part_longer_than_file_starts_over(http_server, tmp_path):
    # 416 Range Not Satisfiable: the .part cannot be a prefix of this file.
    url = http_server.add("/data.bin", PAYLOAD)
    dest = tmp_path / "data.bin"
    dest.with_name("data.bin.part").write_bytes(PAYLOAD + b"junk")
    assert_fetched(dest, url, fetch(url, dest, PAYLOAD_SHA, **FAST))
    assert [r.range for r in http_server.requests_for("/data.bin")] == [f"bytes={len(PAYLOAD) + 4}-", None]


def test_server_errors_are_retried(http_server, tmp_path):
    url = http_server.add("/data.bin", PAYLOAD, fail_status=500, fail_times=2)
    dest = tmp_path / "data.bin"
    assert_fetched(dest, url, fetch(url, dest, PAYLOAD_SHA, **FAST))
    assert len(http_server.requests_for("/data.bin")) == 3


def test_persistent_server_error_gives_up(http_server, tmp_path):
    url = http_server.add("/data.bin", PAYLOAD, fail_status=503, fail_times=None)
    dest = tmp_path / "data.bin"
    with pytest.raises(DownloadError, match=r"giving up on .*/data.bin after 3 attempts: HTTP 503"):
        fetch(url, dest, PAYLOAD_SHA, **{**FAST, "retries": 2})
    assert len(http_server.requests_for("/data.bin")) == 3
    assert_nothing_at(dest)


def test_429_honours_retry_after(http_server, tmp_path):
    url = http_server.add("/data.bin", PAYLOAD, fail_status=429, fail_times=1, retry_after="1")
    dest = tmp_path / "data.bin"
    started = time.monotonic()
    result = fetch(url, dest, PAYLOAD_SHA, **FAST)
    assert time.monotonic() - started >= 0.95  # backoff alone would have waited ~0.01 s
    assert_fetched(dest, url, result)
    assert len(http_server.requests_for("/data.bin")) == 2


@pytest.mark.parametrize("status", [404, 403])
def test_client_error_fails_at_once(http_server, tmp_path, status):
    url = http_server.add("/data.bin", PAYLOAD, fail_status=status, fail_times=None)
    dest = tmp_path / "data.bin"
    with pytest.raises(DownloadError) as info:
        fetch(url, dest, PAYLOAD_SHA, **FAST)
    assert str(status) in str(info.value) and url in str(info.value)
    assert len(http_server.requests_for("/data.bin")) == 1
    assert_nothing_at(dest)
    assert not dest.with_name("data.bin.part").exists()


def test_wrong_bytes_fail_digest_check(http_server, tmp_path):
    url = http_server.add("/data.bin", PAYLOAD, wrong_bytes=True)
    dest = tmp_path / "data.bin"
    actual = hashlib.sha256(bytes([PAYLOAD[0] ^ 0xFF]) + PAYLOAD[1:]).hexdigest()
    with pytest.raises(DownloadError) as info:
        fetch(url, dest, PAYLOAD_SHA, **FAST)
    message = str(info.value)
    assert url in message and PAYLOAD_SHA in message and actual in message
    assert_nothing_at(dest)
    assert not dest.with_name("data.bin.part").exists()


def test_unsupported_scheme(tmp_path):
    with pytest.raises(DownloadError, match="ftp"):
        fetch("ftp://example.org/x", tmp_path / "x", None, **FAST)


# --------------------------------------------------------------------------- fetch: already present


def test_verified_file_is_not_fetched_again(http_server, tmp_path):
    url = http_server.add("/data.bin", PAYLOAD)
    dest = tmp_path / "data.bin"
    first = fetch(url, dest, PAYLOAD_SHA, **FAST)
    http_server.clear_requests()
    assert fetch(url, dest, PAYLOAD_SHA, **FAST) == first
    assert fetch(url, dest, None, **FAST) == first  # the provenance vouches for it
    assert http_server.requests == []


def test_present_file_without_provenance_gets_one(http_server, tmp_path):
    url = http_server.add("/data.bin", PAYLOAD)
    dest = tmp_path / "data.bin"
    dest.write_bytes(PAYLOAD)
    assert_fetched(dest, url, fetch(url, dest, PAYLOAD_SHA, **FAST))
    assert http_server.requests == []


def test_present_file_with_wrong_digest_is_replaced(http_server, tmp_path):
    url = http_server.add("/data.bin", PAYLOAD)
    dest = tmp_path / "data.bin"
    dest.write_bytes(b"stale")
    assert_fetched(dest, url, fetch(url, dest, PAYLOAD_SHA, **FAST))
    assert len(http_server.requests_for("/data.bin")) == 1


def test_unverified_file_with_sha_none_is_fetched(http_server, tmp_path):
    # sha256=None and no provenance: nothing says the file is what the URL serves.
    url = http_server.add("/data.bin", PAYLOAD)
    dest = tmp_path / "data.bin"
    dest.write_bytes(b"something else")
    assert_fetched(dest, url, fetch(url, dest, None, **FAST))
    assert len(http_server.requests_for("/data.bin")) == 1


# --------------------------------------------------------------------------- fetch: SIGKILL


def test_sigkill_leaves_only_part_and_rerun_resumes(http_server, tmp_path):
    # 1 MiB at about 320 KiB/s: the child is still downloading when we kill it.
    payload = os.urandom(1 << 20)
    digest = hashlib.sha256(payload).hexdigest()
    url = http_server.add("/big.bin", payload, chunk_size=16 * 1024, chunk_delay=0.05)
    dest = tmp_path / "big.bin"
    part = tmp_path / "big.bin.part"
    script = textwrap.dedent(f"""
        from pathlib import Path
        from pipeline.acquire.download import fetch
        fetch({url!r}, Path({str(dest)!r}), {digest!r}, retries=0, timeout=(2, 10), progress=False)
    """)
    child = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        deadline = time.monotonic() + 30
        while not (part.exists() and part.stat().st_size > 0):
            assert child.poll() is None, "the download finished or failed before it could be killed"
            assert time.monotonic() < deadline, "the download never started"
            time.sleep(0.01)
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
    assert_nothing_at(dest)
    kept = part.stat().st_size
    assert 0 < kept < len(payload)

    http_server.add("/big.bin", payload)  # same bytes, full speed
    result = fetch(url, dest, digest, **FAST)
    assert dest.read_bytes() == payload and result["sha256"] == digest
    assert not part.exists()
    assert http_server.requests_for("/big.bin")[-1].range == f"bytes={kept}-"


def test_full_disk_fails_clearly_and_keeps_the_part(http_server, tmp_path, monkeypatch):
    """ENOSPC is the disk, not the network: no retries, a clear error, the partial file
    kept for a later resume, nothing at the final path."""
    import errno
    import builtins
    import pipeline.acquire.download as download

    url = http_server.add("/big.bin", PAYLOAD)
    dest = tmp_path / "data.bin"

    class FullDisk(io.FileIO):
        written = 0

        def write(self, data):
            if FullDisk.written + len(data) > 100_000:
                raise OSError(errno.ENOSPC, "No space left on device")
            FullDisk.written += len(data)
            return super().write(data)

    def small_disk_open(path, mode="r", *args, **kwargs):
        if str(path).endswith(".part") and "b" in mode:
            return FullDisk(path, mode.replace("b", "").replace("+", "") + ("+" if "+" in mode else ""))
        return builtins.open(path, mode, *args, **kwargs)

    monkeypatch.setattr(download, "open", small_disk_open, raising=False)
    with pytest.raises(DownloadError, match=r"data\.bin\.part.*No space left.*disk full"):
        fetch(url, dest, PAYLOAD_SHA, **FAST)
    assert len(http_server.requests_for("/big.bin")) == 1, "a full disk is not retried"
    assert_nothing_at(dest)
    assert 0 < dest.with_name("data.bin.part").stat().st_size <= 100_000

    # Room again: the next run resumes the partial file and verifies the whole.
    monkeypatch.undo()
    result = fetch(url, dest, PAYLOAD_SHA, **FAST)
    assert_fetched(dest, url, result)
    assert http_server.requests_for("/big.bin")[-1].range.startswith("bytes=")
