"""The domain errors the service raises. No grpc here: `labelgate.server.status` maps them to
status codes in one place."""


class LabelgateError(Exception):
    """Base class; the message is shown to the caller, so make it actionable."""


class InvalidInput(LabelgateError):
    """The request is malformed: bad image, bad coordinates, empty prompt, ..."""


class NotFound(LabelgateError):
    """An image id or model name the server does not know."""


class NotReady(LabelgateError):
    """The server or a backend cannot serve right now (loading, shutting down, unreachable)."""


class Overloaded(LabelgateError):
    """A queue is full; the caller should back off and retry."""


class Unsupported(LabelgateError):
    """A feature this server was not configured for (e.g. text prompts without a detector)."""


class DeadlineExceeded(LabelgateError):
    """The request's deadline passed before its work could run."""


class Unauthenticated(LabelgateError):
    """The call lacks the credentials this server requires (its bearer token)."""
