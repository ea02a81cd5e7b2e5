import pytest
import torch

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


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny tensors: one intra-op thread is much faster than a pool on busy cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
