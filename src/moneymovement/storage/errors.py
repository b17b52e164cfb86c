"""Storage failures the service layer reacts to, free of asyncpg's own types."""

from __future__ import annotations


class StorageError(Exception):
    """Base of the storage failures below."""


class SerializationConflict(StorageError):
    """The transaction lost a race (40001, 40P01, or a duplicate request id insert):
    nothing was written and the whole unit of work may be retried."""

    def __init__(self, message: str, *, on_request_id: bool = False) -> None:
        super().__init__(message)
        self.on_request_id = on_request_id


class DatabaseUnavailable(StorageError):
    """The database could not be reached, or the connection broke.

    If it broke during COMMIT the outcome is unknown: never retry blindly; the caller
    retries with the same request id and finds the recorded outcome if it committed.
    """
