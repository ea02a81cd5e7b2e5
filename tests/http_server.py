"""A local HTTP server with scriptable misbehaviour, for testing downloads offline.

    server.add("/data.bin", payload, fail_status=500, fail_times=2)
    fetch(server.url("/data.bin"), ...)
    assert len(server.requests_for("/data.bin")) == 3

Each path serves one payload; keyword options decide how it misbehaves (see `Route`).
Every request is recorded with its Range header so tests can check retries and resumes.
"""
from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Optional


@dataclass
class Route:
    """How one path answers.  The defaults serve the payload normally."""

    payload: bytes
    # Answer this status (e.g. 500, 429, 404) to the first `fail_times` requests;
    # fail_times=None means to every request.
    fail_status: Optional[int] = None
    fail_times: Optional[int] = 1
    retry_after: Optional[str] = None  # Retry-After header sent with fail_status
    # Drop the connection after sending `drop_at` (a fraction) of the body, on the
    # first `drop_times` requests; the headers still announce the full length.
    drop_times: int = 0
    drop_at: float = 0.5
    wrong_bytes: bool = False  # serve the payload with one byte changed
    honour_range: bool = True  # False: ignore Range and always answer 200 with everything
    chunk_size: int = 64 * 1024
    chunk_delay: float = 0.0  # seconds between chunks: a slow server
    served: int = 0  # requests answered so far (counts failures too)


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    range: Optional[str]


_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")


class _Handler(BaseHTTPRequestHandler):
    server: "_Server"
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # keep pytest output clean
        pass

    def do_GET(self):
        owner = self.server.owner
        owner._record(RecordedRequest("GET", self.path, self.headers.get("Range")))
        route = owner._next_route(self.path)
        try:
            self._answer(route)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client went away (e.g. killed mid-download): nothing to do

    def _answer(self, route: Optional[tuple[Route, int]]):
        if route is None:
            self._status_only(404)
            return
        spec, request_number = route
        if spec.fail_status is not None and (spec.fail_times is None or request_number < spec.fail_times):
            self._status_only(spec.fail_status, {"Retry-After": spec.retry_after} if spec.retry_after else {})
            return

        payload = spec.payload
        if spec.wrong_bytes and payload:
            payload = bytes([payload[0] ^ 0xFF]) + payload[1:]
        total = len(payload)
        status, first, last = 200, 0, total - 1
        match = _RANGE.match(self.headers.get("Range", ""))
        if spec.honour_range and match:
            first = int(match.group(1))
            last = min(int(match.group(2)), total - 1) if match.group(2) else total - 1
            if first >= total:
                self._status_only(416, {"Content-Range": f"bytes */{total}"})
                return
            status = 206
        body = payload[first:last + 1]

        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes" if spec.honour_range else "none")
        if status == 206:
            self.send_header("Content-Range", f"bytes {first}-{last}/{total}")
        dropping = request_number < spec.drop_times
        if dropping:
            self.send_header("Connection", "close")
        self.end_headers()

        to_send = body[: int(len(body) * spec.drop_at)] if dropping else body
        for offset in range(0, len(to_send), spec.chunk_size):
            if self.server.owner._stopping.is_set():
                break
            self.wfile.write(to_send[offset: offset + spec.chunk_size])
            self.wfile.flush()
            if spec.chunk_delay:
                time.sleep(spec.chunk_delay)
        if dropping:
            # Close while the client still expects bytes: it sees an incomplete read.
            self.close_connection = True

    def _status_only(self, status: int, headers: Optional[dict] = None):
        body = f"{status}\n".encode()
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a slow handler must not keep the test process alive
    owner: "LocalHTTPServer"


class LocalHTTPServer:
    """HTTP server on 127.0.0.1 (a free port) running in a daemon thread."""

    def __init__(self):
        self._lock = threading.Lock()
        self._routes: dict[str, Route] = {}
        self._stopping = threading.Event()
        self.requests: list[RecordedRequest] = []
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.owner = self
        self.port = self._httpd.server_address[1]
        # A short poll interval makes shutdown (once per test) take milliseconds, not 0.5 s.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="test-http-server", daemon=True
        )
        self._thread.start()

    def add(self, path: str, payload: bytes, **behaviour) -> str:
        """Serve `payload` at `path` (replacing any earlier route); return its URL."""
        with self._lock:
            self._routes[path] = Route(payload=payload, **behaviour)
        return self.url(path)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def requests_for(self, path: str) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.path == path]

    def clear_requests(self) -> None:
        with self._lock:
            self.requests.clear()

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def _next_route(self, path: str) -> Optional[tuple[Route, int]]:
        """The route for `path` and how many requests it answered before this one."""
        with self._lock:
            route = self._routes.get(path)
            if route is None:
                return None
            number = route.served
            route.served += 1
            return route, number

    def close(self) -> None:
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)
