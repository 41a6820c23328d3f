"""The python-flavour model (models/export/triton_python_model.py) in a real tritonserver: a request that
fails its input checks comes back INVALID_ARGUMENT, which the Triton connection turns into
InvalidInput (the caller's mistake), while the other requests of the batch are answered."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from add_graph import write_add_model
from triton_server import TritonServer

from labelgate.models.triton.connection import TritonConnection
from labelgate.models.export.triton_repository import PYTHON_MODEL_TEMPLATE
from labelgate.core.errors import InvalidInput

# Input "b" is optional to Triton, so a request without it reaches the model's own checks.
CONFIG = """name: "add"
backend: "python"
max_batch_size: 8
input [
  { name: "a" data_type: TYPE_FP32 dims: [ 2 ] },
  { name: "b" data_type: TYPE_FP32 dims: [ 2 ] optional: true }
]
output [ { name: "total" data_type: TYPE_FP32 dims: [ 2 ] } ]
instance_group [ { kind: KIND_CPU count: 1 } ]
"""


@pytest.fixture(scope="module")
def connection(tmp_path_factory):
    repository = tmp_path_factory.mktemp("triton-add-repo")
    write_add_model(repository / "add" / "1" / "model.onnx")
    shutil.copyfile(PYTHON_MODEL_TEMPLATE, repository / "add" / "1" / "model.py")
    (repository / "add" / "config.pbtxt").write_text(CONFIG)
    triton = TritonServer(repository, tmp_path_factory.mktemp("triton-add")).start()
    connection = TritonConnection(triton.url, timeout_s=60)
    yield connection
    connection.close()
    triton.stop()


def test_a_request_failing_the_models_input_checks_is_invalid_input(connection):
    ones = np.ones((1, 2), np.float32)
    missing, complete = connection.infer_many("add", [{"a": ones}, {"a": ones, "b": ones}], ["total"])

    assert isinstance(missing, InvalidInput), missing
    assert "missing input tensor 'b'" in str(missing)
    assert not isinstance(complete, Exception) and complete["total"].tolist() == [[2.0, 2.0]]
