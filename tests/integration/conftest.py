from __future__ import annotations

import pytest

from reference import sam2_predictor
from server_process import ServerProcess, start_server


@pytest.fixture(scope="module")
def server(demo_weights, tmp_path_factory) -> ServerProcess:
    """One real labelgate server per test module, serving the demo weights on a free port."""
    running = start_server(tmp_path_factory.mktemp("server"), demo_weights)
    yield running
    assert running.stop() == 0, running.log()


@pytest.fixture(scope="module")
def stub(server):
    """Generated stubs on the module's server."""
    return server.stub()


@pytest.fixture(scope="module")
def predictor(demo_weights):
    """`SAM2ImagePredictor` over the demo checkpoint: the reference for SAM 2 masks."""
    return sam2_predictor(demo_weights)
