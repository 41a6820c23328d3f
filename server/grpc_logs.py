"""grpc's own log lines, made to say what happened in labelgate's terms.

When a caller goes away (its deadline passes, or it cancels) between the moment a handler has its
answer and the moment grpc sends it, grpc's aio server logs the failed send at ERROR with a
traceback from its Cython core. Nothing is wrong with the server and nothing was lost but that
answer, so the line becomes one INFO line without the traceback.
"""

from __future__ import annotations

import logging

GRPC_CORE_LOGGER = "grpc._cython.cygrpc"
UNSENT_ANSWER = ("an answer to %s was not sent: its caller had gone (deadline passed or cancelled), "
                 "or it was larger than --max-message-bytes")


class UnsentAnswerFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        # By name: the class lives in grpc's private Cython module.
        if type(error).__name__ == "ExecuteBatchError":
            record.levelno, record.levelname = logging.INFO, "INFO"
            record.msg, record.exc_info, record.exc_text, record.stack_info = UNSENT_ANSWER, None, None, None
            return logging.getLogger(record.name).isEnabledFor(logging.INFO)
        return True


def quiet_unsent_answers() -> None:
    """Installs the filter on grpc's core logger, once however often it is called."""
    logger = logging.getLogger(GRPC_CORE_LOGGER)
    if not any(isinstance(existing, UnsentAnswerFilter) for existing in logger.filters):
        logger.addFilter(UnsentAnswerFilter())
