import pytest

from tests.http_server import LocalHTTPServer


@pytest.fixture
def http_server(monkeypatch):
    """A local HTTP server with scriptable misbehaviour (see tests/http_server.py)."""
    # A proxy configured in the environment must not intercept requests to 127.0.0.1.
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    server = LocalHTTPServer()
    try:
        yield server
    finally:
        server.close()
