"""A caller that leaves before its answer is sent is an INFO line, not an ERROR with a traceback."""

from __future__ import annotations

import logging

import pytest
from grpc._cython.cygrpc import ExecuteBatchError

from labelgate.server.grpc_logs import GRPC_CORE_LOGGER, UnsentAnswerFilter, quiet_unsent_answers


@pytest.fixture
def grpc_core_log(caplog):
    logger = logging.getLogger(GRPC_CORE_LOGGER)
    before = list(logger.filters)
    quiet_unsent_answers()
    quiet_unsent_answers()
    caplog.set_level(logging.INFO, GRPC_CORE_LOGGER)
    yield logger, caplog
    logger.filters[:] = before


def _log_raised(logger, error):
    try:
        raise error
    except Exception:
        logger.exception("ExecuteBatchError raised in core by servicer method [%s]", "/labelgate.v1.Labelgate/Segment")


def test_a_failed_send_becomes_one_info_line_without_traceback(grpc_core_log):
    logger, caplog = grpc_core_log
    assert sum(isinstance(each, UnsentAnswerFilter) for each in logger.filters) == 1

    _log_raised(logger, ExecuteBatchError("Failed execute_batch"))

    [record] = caplog.records
    assert record.levelno == logging.INFO and record.exc_info is None
    assert "Traceback" not in caplog.text
    assert "an answer to /labelgate.v1.Labelgate/Segment was not sent" in caplog.text


def test_other_grpc_errors_keep_their_level_and_traceback(grpc_core_log):
    logger, caplog = grpc_core_log

    _log_raised(logger, RuntimeError("something else"))

    [record] = caplog.records
    assert record.levelno == logging.ERROR and record.exc_info is not None
    assert "Traceback" in caplog.text


def test_quiet_at_warning_level(grpc_core_log):
    logger, caplog = grpc_core_log
    caplog.set_level(logging.WARNING, GRPC_CORE_LOGGER)

    _log_raised(logger, ExecuteBatchError("Failed execute_batch"))

    assert caplog.records == []
