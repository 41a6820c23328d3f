from __future__ import annotations

import pytest

from server_process import ServerProcess, start_server


@pytest.fixture(scope="module")
def server(demo_weights, tmp_path_factory) -> ServerProcess:
    """One real labelgate server per test module, serving the demo weights on a free port."""
    running = start_server(tmp_path_factory.mktemp("server"), demo_weights)
    yield running
    assert running.stop() == 0, running.log()
