"""Fetch raw data reliably and unpack archives safely: a file or tree at `dest` is always
complete. `fetch` streams into `dest.part` (which a killed run leaves for the next to
resume) and renames it once its digest checks; `safe_extract` fills a directory beside
`dest` and renames it once complete."""
from __future__ import annotations

import contextlib
import errno
import gzip
import hashlib
import logging
import os
import random
import shutil
import tarfile
import time
import urllib.parse
import urllib.request
import zlib
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator

import requests

from ..core import logs
from ..core.errors import ArchiveError, ConfigError, DownloadError
# sha256_file is also part of this module's interface: callers import it from here.
from ..core.inputs import read_json
from ..core.outputs import sha256_file, staged_dir, write_json

CHUNK_SIZE = 1 << 16
# So that a misconfigured Retry-After cannot stall a pipeline run for hours.
MAX_RETRY_AFTER = 300.0
# Errors of the disk, not the network: retrying cannot help.
_DISK_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
# What gzip, zlib and tarfile raise for an archive that is cut short or damaged.
_CORRUPT_ARCHIVE_ERRORS = (EOFError, zlib.error, gzip.BadGzipFile, tarfile.ReadError,
                           tarfile.CompressionError)

log = logging.getLogger(__name__)


class _TransientError(Exception):
    """Worth retrying: timeouts, dropped connections, 429 and 5xx answers."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


@dataclass
class _Source:
    """An opened byte stream, whatever the URL scheme."""
    chunks: Iterator[bytes]
    total: int | None  # size of the whole resource, when known
    start: int  # offset of the first streamed byte: 0 rewrites the .part, N appends
    close: Callable[[], None]


def _normalise_sha256(sha256: str | None) -> str | None:
    value = None if sha256 is None else str(sha256).strip().lower()
    if value is not None and (len(value) != 64 or not set(value) <= set("0123456789abcdef")):
        raise ConfigError(f"sha256 must be 64 hex digits, got {sha256!r}")
    return value


def download_path(url: str, downloads: Path) -> Path:
    """A cache name per URL, so a changed URL never reuses another source's file."""
    name = Path(urllib.parse.urlparse(url).path).name or "download"
    return downloads / f"{hashlib.sha256(url.encode()).hexdigest()[:10]}-{name}"


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _open_http(session: requests.Session, url: str, offset: int, timeout: tuple) -> _Source:
    # Raw bytes: a decoded body would match neither Content-Length nor a Range offset.
    headers = {"Accept-Encoding": "identity", **({"Range": f"bytes={offset}-"} if offset else {})}
    try:
        resp = session.get(url, headers=headers, stream=True, timeout=timeout)
    except (requests.ConnectionError, requests.Timeout) as exc:
        raise _TransientError(f"cannot reach {url}: {exc}") from exc
    status, length = resp.status_code, resp.headers.get("Content-Length", "")
    if status == 429 or 500 <= status <= 599:
        resp.close()
        wait = resp.headers.get("Retry-After", "").strip()  # seconds; a date: plain backoff
        raise _TransientError(f"HTTP {status} {resp.reason} from {url}",
                              min(float(wait), MAX_RETRY_AFTER) if wait.isdigit() else None)
    # A 416, or another range than asked for: the .part is no prefix of the server's file.
    if offset and (status == 416 or status == 206 and not resp.headers.get(
            "Content-Range", "").startswith(f"bytes {offset}-")):
        resp.close()
        log.info("%s: cannot resume at byte %d; downloading from the start", url, offset)
        return _open_http(session, url, 0, timeout)
    if status not in (200, 206):
        resp.close()
        raise DownloadError(f"HTTP {status} {resp.reason} for {url}")
    start = offset if status == 206 else 0  # a 200 is the whole file, Range or not

    def chunks() -> Iterator[bytes]:
        try:
            yield from (chunk for chunk in resp.iter_content(CHUNK_SIZE) if chunk)
        except (requests.ConnectionError, requests.Timeout,
                requests.exceptions.ChunkedEncodingError) as exc:
            raise _TransientError(f"connection to {url} dropped: {exc}") from exc

    total = start + int(length) if length.isdigit() else None
    return _Source(chunks(), total, start, resp.close)


def _open_local(url: str, offset: int) -> _Source:
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme == "file" and parsed.netloc not in ("", "localhost"):
        raise DownloadError(f"file URL with a remote host is not supported: {url}")
    path = Path(urllib.request.url2pathname(parsed.path)) if parsed.scheme else Path(url)
    try:
        f = open(path, "rb")
    except OSError as exc:
        raise DownloadError(f"cannot read {path} (from {url}): {exc.strerror}") from exc
    total = os.fstat(f.fileno()).st_size
    start = offset if offset <= total else 0
    f.seek(start)
    return _Source(iter(lambda: f.read(CHUNK_SIZE), b""), total, start, f.close)


def _copy(source: _Source, part: Path, url: str, progress: bool) -> None:
    """Write the stream into `part` from `source.start`, fsynced for the rename to come."""
    written = source.start
    mode = "r+b" if source.start and part.exists() else "wb"
    with open(part, mode) as out, logs.progress(
            total=source.total, initial=source.start, unit="B", unit_scale=True,
            unit_divisor=1024, disable=None if progress else True,
            desc=part.name.removesuffix(".part")) as bar:
        out.seek(source.start)
        out.truncate()  # drop anything past the resume point
        try:
            for chunk in source.chunks:
                out.write(chunk)
                written += len(chunk)
                bar.update(len(chunk))
            out.flush()
            os.fsync(out.fileno())
        except OSError as exc:
            if exc.errno not in _DISK_ERRNOS:
                raise
            raise DownloadError(f"cannot write {part} while downloading {url}: "
                                f"{exc.strerror or exc} (is the disk full?). The partial "
                                "download is kept and resumes on the next run.") from exc
    if source.total is not None and written != source.total:
        # A server closing early would otherwise look like a finished download.
        raise _TransientError(f"incomplete read from {url}: got {written} of "
                              f"{source.total} bytes")


def _download(url: str, part: Path, retries: int, backoff: float, timeout: tuple,
              progress: bool) -> None:
    http = urllib.parse.urlparse(url).scheme in ("http", "https")
    with requests.Session() as session:
        for attempt in range(retries + 1):
            # Resume from whatever an earlier attempt, or an earlier killed run, left.
            offset = part.stat().st_size if part.exists() else 0
            try:
                source = (_open_http(session, url, offset, timeout) if http
                          else _open_local(url, offset))
                try:
                    _copy(source, part, url, progress)
                finally:
                    source.close()
                return
            except _TransientError as exc:
                if attempt == retries:
                    raise DownloadError(f"giving up on {url} after {attempt + 1} attempts: "
                                        f"{exc}") from exc
                # Jitter keeps clients that failed together from retrying together.
                delay = exc.retry_after if exc.retry_after is not None else (
                    backoff * 2 ** attempt + random.uniform(0, backoff))
                log.warning("%s (attempt %d of %d); retrying in %.1f s", exc, attempt + 1,
                            retries + 1, delay)
                time.sleep(delay)


def _record(path: Path, url: str, dest: Path, sha256: str, when: datetime) -> dict:
    """Write the provenance of `dest` to `path`, and return it."""
    provenance = {"url": url, "sha256": sha256, "bytes": dest.stat().st_size,
                  "fetched_at": when.isoformat(timespec="seconds")}
    write_json(path, provenance)
    return provenance


def _reusable(dest: Path, record: Path, url: str, sha256: str | None) -> dict | None:
    """The provenance of a `dest` that needs no fetching, else None."""
    if not dest.is_file():
        return None
    actual = sha256_file(dest)
    with contextlib.suppress(OSError, ValueError):
        recorded = read_json(record)
        # With sha256=None only our own record of this URL vouches for the bytes.
        if (isinstance(recorded, dict) and recorded.get("url") == url
                and recorded.get("sha256") == actual and sha256 in (None, actual)):
            return recorded
    if sha256 != actual:
        return None
    # The right bytes without a matching record (killed between the two renames, or the
    # URL moved to a mirror): record them, dated by the file's mtime.
    mtime = datetime.fromtimestamp(dest.stat().st_mtime, timezone.utc)
    return _record(record, url, dest, actual, mtime)


def fetch(url: str, dest: Path, sha256: str | None, *, retries: int = 5,
          backoff: float = 1.0, timeout: tuple = (10, 60), progress: bool = True) -> dict:
    """Download `url` (http(s)://, file:// or a plain path) to `dest` and verify it.
    Return the provenance also written to `<dest name>.json`: url, sha256, bytes and
    fetched_at (ISO-8601, UTC). `sha256=None` accepts any content and records its digest.
    A `dest` already verified (by digest, or for None by its record of this URL) is kept.
    """
    dest = Path(dest)
    sha256 = _normalise_sha256(sha256)
    scheme = urllib.parse.urlparse(url).scheme
    if scheme not in ("", "http", "https", "file"):
        raise DownloadError(f"unsupported URL scheme {scheme!r} in {url}")
    part = dest.with_name(dest.name + ".part")
    record = dest.with_name(dest.name + ".json")
    dest.parent.mkdir(parents=True, exist_ok=True)
    if (existing := _reusable(dest, record, url, sha256)) is not None:
        return existing
    # Data first: an interrupted run must not leave an old file looking like its output.
    _remove(dest)
    _remove(record)
    _download(url, part, retries, backoff, timeout, progress)
    actual = sha256_file(part)
    if sha256 is not None and actual != sha256:
        part.unlink()
        raise DownloadError(f"sha256 mismatch for {url}: expected {sha256}, got {actual} "
                            "(download deleted; the next run starts from scratch)")
    os.replace(part, dest)
    return _record(record, url, dest, actual, datetime.now(timezone.utc))


@contextlib.contextmanager
def _reading(archive: Path) -> Iterator[tarfile.TarFile]:
    """`archive` opened; damage found while reading becomes an ArchiveError."""
    try:
        with tarfile.open(archive, "r:*") as tar:
            yield tar
            # tarfile stops at the end-of-archive blocks, before the gzip trailer: reading
            # on makes gzip check its CRC and length, so a file cut a few bytes short fails.
            while tar.fileobj.read(1 << 20):
                pass
    except _CORRUPT_ARCHIVE_ERRORS as exc:
        raise ArchiveError(f"{archive} is truncated or corrupt: {exc}") from exc


def list_members(archive: Path) -> list[tarfile.TarInfo]:
    """Every member of a .tar/.tar.gz; reading the whole archive also detects truncation."""
    with _reading(Path(archive)) as tar:
        return tar.getmembers()


def safe_extract(archive: Path, dest: Path, *,
                 keep: Callable[[tarfile.TarInfo], bool] | None = None,
                 max_member_bytes: int = 1 << 30) -> int:
    """Extract the members of `archive` that `keep` accepts into `dest`; return their count.
    Any existing `dest` is removed first; on any error nothing is left there."""
    archive, dest = Path(archive), Path(dest)
    _remove(dest)
    with staged_dir(dest) as tmp, _reading(archive) as tar:
        members = [m for m in tar.getmembers() if keep is None or keep(m)]
        for member in members:
            # The data filter would quietly strip a leading '/': such an archive is suspect.
            if member.name.startswith("/"):
                raise ArchiveError(f"member {member.name!r} has an absolute path")
            if member.size > max_member_bytes:
                raise ArchiveError(f"member {member.name!r} is {member.size} bytes, more "
                                   f"than the limit of {max_member_bytes}")
        try:
            # Refuses '..', links leaving `tmp`, device files and the like.
            tar.extractall(tmp, members=members, filter="data")
        except tarfile.FilterError as exc:
            raise ArchiveError(f"member {exc.tarinfo.name!r} of {archive} rejected: "
                               f"{exc}") from exc
    return len(members)
