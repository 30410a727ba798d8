"""Backend failures the request runner distinguishes: worth retrying, or not."""

from __future__ import annotations


class BackendError(Exception):
    """A backend request failed in a way that retrying will not fix (bad request, auth, unknown model)."""


class TransientBackendError(BackendError):
    """A backend request failed in a way that may pass on retry (timeout, 429, 5xx, garbled body).

    ``retry_after`` holds the server's requested wait in seconds when it sent one; ``reason`` is a short
    label for the run summary ("http 429", "timeout", "malformed response", "connection").
    """

    def __init__(
        self, message: str, retry_after: float | None = None, status: int | None = None, reason: str | None = None
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.status = status
        self.reason = reason or (f"http {status}" if status else "transient error")
