"""Fetch raw data reliably and unpack archives safely.

`fetch` is built around one invariant: a file at `dest` is always complete and has the
expected digest.  Bytes are streamed into `dest.part`, checked, fsynced and only then
renamed into place, so an interrupted or killed download leaves at most the `.part`
file, which the next run resumes from.

`safe_extract` never trusts member names from an archive: everything goes into a
temporary directory beside `dest` and is renamed into place only when complete.
"""
from __future__ import annotations

import contextlib
import email.utils
import errno
import gzip
import hashlib
import json
import logging
import os
import random
import shutil
import tarfile
import tempfile
import time
import urllib.parse
import urllib.request
import zlib
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Callable, Iterator, Optional

import requests
from tqdm import tqdm

from .errors import ArchiveError, ConfigError, DownloadError
from .outputs import sha256_file  # noqa: F401  (part of this module's interface)

log = logging.getLogger(__name__)

CHUNK_SIZE = 1 << 16
# A server asking us to wait longer than this is treated as asking for this long, so
# a misconfigured Retry-After cannot stall a pipeline run for hours.
MAX_RETRY_AFTER = 300.0

# Errors raised by gzip/zlib/tarfile when an archive is cut short or damaged.
_CORRUPT_ARCHIVE_ERRORS = (
    EOFError,
    zlib.error,
    gzip.BadGzipFile,
    tarfile.ReadError,
    tarfile.CompressionError,
)


# The 'data' extraction filter arrived in 3.12 and was backported to 3.10.12 and 3.11.4.
_HAS_DATA_FILTER = hasattr(tarfile, "data_filter")


class _TransientError(Exception):
    """A failure worth retrying: timeouts, dropped connections, 429 and 5xx answers."""

    def __init__(self, message: str, retry_after: Optional[float] = None):
        super().__init__(message)
        self.retry_after = retry_after


# --------------------------------------------------------------------------- digests


def _normalise_sha256(sha256: Optional[str]) -> Optional[str]:
    if sha256 is None:
        return None
    value = str(sha256).strip().lower()
    if len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
        raise ConfigError(f"sha256 must be 64 hex digits, got {sha256!r}")
    return value


def download_path(url: str, downloads: Path) -> Path:
    """A cache name per URL in `downloads`, so a changed URL never reuses another
    source's file."""
    name = Path(urllib.parse.urlparse(url).path).name or "download"
    return downloads / f"{hashlib.sha256(url.encode()).hexdigest()[:10]}-{name}"


# --------------------------------------------------------------------------- durability


def _fsync_dir(directory: Path) -> None:
    """Make a rename inside `directory` durable; not every platform can open a directory."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_json_atomic(path: Path, data: dict) -> None:
    # A unique temporary name (not a fixed "x.tmp") so two writers never share a file.
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2, sort_keys=True)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    _fsync_dir(path.parent)


def _remove_path(path: Path) -> None:
    """Remove a file, symlink or directory tree at `path`, if anything is there."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


def _utc_iso(timestamp: Optional[float] = None) -> str:
    moment = datetime.now(timezone.utc) if timestamp is None else datetime.fromtimestamp(timestamp, timezone.utc)
    return moment.isoformat(timespec="seconds")


# --------------------------------------------------------------------------- sources


@dataclass
class _Source:
    """An opened byte stream, whatever the URL scheme."""

    chunks: Iterator[bytes]
    total: Optional[int]  # size of the whole resource, when the source says
    start: int  # offset of the first streamed byte: 0 rewrites the .part, N appends
    close: Callable[[], None]


def _parse_retry_after(value: Optional[str]) -> Optional[float]:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date), or None."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        seconds = (when - datetime.now(timezone.utc)).total_seconds()
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def _parse_content_range(value: Optional[str]) -> tuple[Optional[int], Optional[int]]:
    """(first byte, total size) from 'bytes 100-199/200'; None where absent or '*'."""
    if not value or not value.startswith("bytes "):
        return None, None
    span, _, total = value[len("bytes "):].partition("/")
    first = span.split("-", 1)[0]
    return (int(first) if first.isdigit() else None, int(total) if total.isdigit() else None)


def _open_http(session: requests.Session, url: str, offset: int, timeout: tuple) -> _Source:
    # Ask for the raw bytes: with a content-encoding, requests would decompress the body
    # and neither the Content-Length nor a Range offset would match what we store.
    headers = {"Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        resp = session.get(url, headers=headers, stream=True, timeout=timeout)
    except (requests.ConnectionError, requests.Timeout) as exc:
        raise _TransientError(f"cannot reach {url}: {exc}") from exc

    status = resp.status_code
    if status == 429 or 500 <= status <= 599:
        resp.close()
        raise _TransientError(
            f"HTTP {status} {resp.reason} from {url}",
            retry_after=_parse_retry_after(resp.headers.get("Retry-After")),
        )
    if offset and status == 416:
        # The server cannot serve the rest of our .part (it is already complete, or it
        # belongs to an older, longer file): start over without a Range.
        resp.close()
        log.warning("%s: server rejected Range bytes=%d-; downloading from the start", url, offset)
        return _open_http(session, url, 0, timeout)
    if status not in (200, 206):
        resp.close()
        raise DownloadError(f"HTTP {status} {resp.reason} for {url}")

    if status == 206:
        first, total = _parse_content_range(resp.headers.get("Content-Range"))
        if first != offset:
            resp.close()
            log.warning("%s: asked for bytes %d-, server sent %s; downloading from the start",
                        url, offset, resp.headers.get("Content-Range"))
            return _open_http(session, url, 0, timeout)
        start = offset
    else:
        # 200: the server ignored the Range (or none was sent), so the body is the whole file.
        start = 0
        length = resp.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None

    def chunks() -> Iterator[bytes]:
        try:
            for chunk in resp.iter_content(CHUNK_SIZE):
                if chunk:
                    yield chunk
        except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
            raise _TransientError(f"connection to {url} dropped: {exc}") from exc

    return _Source(chunks(), total, start, resp.close)


def _local_path(url: str) -> Path:
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise DownloadError(f"file URL with a remote host is not supported: {url}")
        return Path(urllib.request.url2pathname(parsed.path))
    return Path(url)


def _open_local(url: str, offset: int) -> _Source:
    path = _local_path(url)
    try:
        f = open(path, "rb")
    except OSError as exc:
        raise DownloadError(f"cannot read {path} (from {url}): {exc.strerror}") from exc
    total = os.fstat(f.fileno()).st_size
    start = offset if offset <= total else 0
    f.seek(start)
    return _Source(iter(lambda: f.read(CHUNK_SIZE), b""), total, start, f.close)


def _is_http(url: str) -> bool:
    return urllib.parse.urlparse(url).scheme in ("http", "https")


def _check_scheme(url: str) -> None:
    scheme = urllib.parse.urlparse(url).scheme
    # One-letter "schemes" are Windows drive letters (C:\data\x.tar.gz), i.e. plain paths.
    if scheme not in ("", "http", "https", "file") and len(scheme) > 1:
        raise DownloadError(f"unsupported URL scheme {scheme!r} in {url}")


# --------------------------------------------------------------------------- fetch


def _copy(source: _Source, part: Path, url: str, progress: bool) -> None:
    """Write the stream into `part` at `source.start`; the one loop every scheme shares."""
    mode = "r+b" if source.start and part.exists() else "wb"
    with open(part, mode) as out, tqdm(
        total=source.total,
        initial=source.start,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        desc=part.name[: -len(".part")],
        disable=not progress,
    ) as bar:
        out.seek(source.start)
        out.truncate()  # drop anything past the resume point
        written = source.start
        try:
            for chunk in source.chunks:
                out.write(chunk)
                written += len(chunk)
                bar.update(len(chunk))
            out.flush()
            os.fsync(out.fileno())
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO):
                raise  # a network error: the retry loop decides
            # The disk, not the network: retrying cannot help. What was written stays
            # in the .part file and is resumed once there is room.
            raise DownloadError(f"cannot write {part} while downloading {url}: "
                                f"{exc.strerror or exc} (is the disk full?). The partial "
                                "download is kept and resumes on the next run.") from exc
    if source.total is not None and written != source.total:
        # Without this check a server closing early (and a client not enforcing
        # Content-Length) would look like a finished download.
        raise _TransientError(f"incomplete read from {url}: got {written} of {source.total} bytes")


def _existing_provenance(dest: Path, provenance_path: Path, url: str, sha256: Optional[str]) -> Optional[dict]:
    """Provenance of a `dest` that can be reused without fetching, else None."""
    if not dest.is_file():
        return None
    recorded: Optional[dict] = None
    with contextlib.suppress(OSError, ValueError):
        loaded = json.loads(provenance_path.read_text(encoding="utf-8"))
        if isinstance(loaded, dict):
            recorded = loaded
    actual = sha256_file(dest)

    if sha256 is None:
        # Nothing pinned: trust the file only if we recorded its digest when we fetched it
        # from this same URL, and it still has that digest.
        if recorded and recorded.get("url") == url and recorded.get("sha256") == actual:
            return recorded
        return None

    if actual != sha256:
        return None
    if recorded and recorded.get("sha256") == actual and recorded.get("url") == url:
        return recorded
    # The right bytes are there but the record is missing or stale (e.g. killed between
    # the two renames, or the URL moved to a mirror): rewrite it, dating the file by mtime.
    provenance = {
        "url": url,
        "sha256": actual,
        "bytes": dest.stat().st_size,
        "fetched_at": _utc_iso(dest.stat().st_mtime),
    }
    _write_json_atomic(provenance_path, provenance)
    return provenance


def fetch(
    url: str,
    dest: Path,
    sha256: Optional[str],
    *,
    retries: int = 5,
    backoff: float = 1.0,
    timeout: tuple = (10, 60),
    progress: bool = True,
) -> dict:
    """Download `url` (http(s)://, file:// or a plain path) to `dest` and verify it.

    Returns the provenance also written beside `dest` as `<dest name>.json`: url,
    sha256, bytes and fetched_at (ISO-8601, UTC).  With `sha256=None` any content is
    accepted and its digest recorded.  A `dest` that already has the expected digest (or,
    with `sha256=None`, the digest its provenance records for the same URL) is not fetched.
    """
    dest = Path(dest)
    sha256 = _normalise_sha256(sha256)
    _check_scheme(url)
    part = dest.with_name(dest.name + ".part")
    provenance_path = dest.with_name(dest.name + ".json")
    dest.parent.mkdir(parents=True, exist_ok=True)

    existing = _existing_provenance(dest, provenance_path, url, sha256)
    if existing is not None:
        log.info("%s already present with sha256 %s; not fetching %s", dest, existing["sha256"], url)
        return existing
    # Whatever is at dest is not what we want: remove it now, so that an interrupted run
    # cannot leave an old file looking like the output of this one.  The data goes first:
    # a provenance file without its data is harmless, the reverse is not.
    for stale in (dest, provenance_path):
        _remove_path(stale)

    session = requests.Session() if _is_http(url) else None
    try:
        attempt = 0
        while True:
            # Resume from whatever an earlier attempt (or an earlier, killed run) left.
            offset = part.stat().st_size if part.exists() else 0
            try:
                source = _open_http(session, url, offset, timeout) if session else _open_local(url, offset)
                try:
                    _copy(source, part, url, progress)
                finally:
                    source.close()
                break
            except _TransientError as exc:
                if attempt >= retries:
                    raise DownloadError(f"giving up on {url} after {attempt + 1} attempts: {exc}") from exc
                if exc.retry_after is not None:
                    delay = exc.retry_after
                else:
                    # Jitter keeps many clients that failed together from retrying together.
                    delay = backoff * 2**attempt + random.uniform(0, backoff)
                attempt += 1
                log.warning("%s (attempt %d of %d); retrying in %.1f s", exc, attempt, retries + 1, delay)
                time.sleep(delay)
    finally:
        if session is not None:
            session.close()

    actual = sha256_file(part)
    if sha256 is not None and actual != sha256:
        part.unlink()
        raise DownloadError(f"sha256 mismatch for {url}: expected {sha256}, got {actual} (download deleted; the next run starts from scratch)")
    # _copy fsynced the data, so after this rename dest is complete even across a crash.
    os.replace(part, dest)
    _fsync_dir(dest.parent)

    provenance = {
        "url": url,
        "sha256": actual,
        "bytes": dest.stat().st_size,
        "fetched_at": _utc_iso(),
    }
    _write_json_atomic(provenance_path, provenance)
    return provenance


# --------------------------------------------------------------------------- archives


@contextlib.contextmanager
def _corruption_as_archive_error(archive: Path):
    try:
        yield
    except _CORRUPT_ARCHIVE_ERRORS as exc:
        raise ArchiveError(f"{archive} is truncated or corrupt: {exc}") from exc


def _read_to_end(tar: tarfile.TarFile) -> None:
    # tarfile stops at the end-of-archive blocks and never reaches the gzip trailer, so an
    # archive cut a few bytes short would pass; reading on makes gzip check its CRC/length.
    while tar.fileobj.read(1 << 20):
        pass


def list_members(archive: Path) -> list[tarfile.TarInfo]:
    """Every member of a .tar/.tar.gz; reading the whole index also detects truncation."""
    archive = Path(archive)
    with _corruption_as_archive_error(archive), tarfile.open(archive, "r:*") as tar:
        members = tar.getmembers()
        _read_to_end(tar)
        return members


def _check_member(member: tarfile.TarInfo, max_member_bytes: int) -> None:
    """Raise ArchiveError for any member that could write outside dest or is unreasonable."""
    name = member.name
    path = PurePosixPath(name)
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise ArchiveError(f"member {name!r} has an absolute path")
    if ".." in path.parts:
        raise ArchiveError(f"member {name!r} has a '..' component")
    if not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
        raise ArchiveError(f"member {name!r} is a device, fifo or other special file")
    if member.size > max_member_bytes:
        raise ArchiveError(f"member {name!r} is {member.size} bytes, more than the limit of {max_member_bytes}")
    if member.issym() or member.islnk():
        target = member.linkname
        if target.startswith(("/", "\\")):
            raise ArchiveError(f"link member {name!r} points to absolute path {target!r}")
        # Symlink targets are relative to the link's directory, hardlink targets to the root.
        base = path.parent if member.issym() else PurePosixPath()
        resolved = os.path.normpath(str(base / target))
        if resolved == ".." or resolved.startswith("../"):
            raise ArchiveError(f"link member {name!r} points outside the target directory: {target!r}")


def safe_extract(
    archive: Path,
    dest: Path,
    *,
    keep: Optional[Callable[[tarfile.TarInfo], bool]] = None,
    max_member_bytes: int = 1 << 30,
) -> int:
    """Extract the members of `archive` that `keep` accepts into `dest`; return their count.

    Any existing `dest` is removed first.  Members are checked before anything is written
    (absolute paths, '..', links leaving dest, special files, oversize members), then
    extracted with tarfile's `data` filter into a temporary directory beside `dest`,
    which becomes `dest` only when complete.  On any error nothing is left at `dest`.
    """
    archive, dest = Path(archive), Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    _remove_path(dest)
    # Same directory, hence same filesystem: the final rename is atomic.
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".extracting", dir=dest.parent))
    try:
        with _corruption_as_archive_error(archive), tarfile.open(archive, "r:*") as tar:
            members = [m for m in tar.getmembers() if keep is None or keep(m)]
            # Only what would be extracted is checked: `keep` may skip odd members safely.
            for member in members:
                _check_member(member, max_member_bytes)
            if _HAS_DATA_FILTER:
                try:
                    tar.extractall(tmp, members=members, filter="data")
                except tarfile.FilterError as exc:
                    raise ArchiveError(f"member {exc.tarinfo.name!r} of {archive} rejected: {exc}") from exc
            else:
                log.warning("this Python (before 3.10.12/3.11.4) has no tarfile 'data' filter; "
                            "relying on safe_extract's own member checks")
                tar.extractall(tmp, members=members)
            _read_to_end(tar)
        os.rename(tmp, dest)
        _fsync_dir(dest.parent)
        return len(members)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
