import contextlib

import pytest
import torch

from tests.http_server import LocalHTTPServer
from tests.repo import serve_fixtures


@contextlib.contextmanager
def _local_http_server():
    with pytest.MonkeyPatch.context() as env:
        # A proxy configured in the environment must not intercept requests to 127.0.0.1.
        env.setenv("NO_PROXY", "127.0.0.1,localhost")
        env.setenv("no_proxy", "127.0.0.1,localhost")
        server = LocalHTTPServer()
        try:
            yield server
        finally:
            server.close()


@pytest.fixture
def http_server():
    """A local HTTP server with scriptable misbehaviour (see tests/http_server.py)."""
    with _local_http_server() as server:
        yield server


@pytest.fixture(scope="module")
def fixture_data(tmp_path_factory):
    """The tiny IMDb archive and book (tests/fixtures.py), served on 127.0.0.1 for the
    whole test module: the params overrides that point the acquire stages at them."""
    with _local_http_server() as server:
        yield serve_fixtures(server, tmp_path_factory.mktemp("fixture-data"))


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny tensors: one intra-op thread is much faster than a pool on busy cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
