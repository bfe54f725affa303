"""Exception types that tell the user which file, row and field to fix."""

from __future__ import annotations

from pathlib import Path


class LongtailError(Exception):
    """Base class for every error Longtail raises on purpose."""


class ConfigError(LongtailError):
    """The configuration file is missing, malformed or has invalid values."""


class InputDataError(LongtailError):
    """An input file cannot be read as the table it should be."""

    def __init__(
        self,
        path: str | Path,
        problem: str,
        *,
        row: int | None = None,
        column: str | None = None,
    ) -> None:
        self.path = str(path)
        self.problem = problem
        self.row = row
        self.column = column
        where = [self.path]
        if row is not None:
            where.append(f"row {row}")
        if column is not None:
            where.append(f"column '{column}'")
        super().__init__(f"{', '.join(where)}: {problem}")


class ReconciliationError(LongtailError):
    """Kept plus quarantined rows do not add up to the input rows."""


class ExecutorError(LongtailError):
    """The configured executor (e.g. a Spark master) cannot run the pipeline."""


class NotMappableError(ExecutorError):
    """A component that needs the whole table in one place was asked to run per partition."""


class InsufficientMemoryError(LongtailError):
    """An in-process step would need more memory than is available; it is refused before loading anything."""


class PrivacyError(LongtailError):
    """A privacy step cannot run as configured (e.g. pseudonymisation is on but no key is set)."""


class EventValidationError(LongtailError):
    """A posted event breaks the canonical events schema; nothing of its batch is written."""


class UnknownIdError(LongtailError):
    """A request names a user or item that the service does not know."""


class StoreError(LongtailError):
    """The event store cannot be opened, migrated or written."""


class LeakageError(LongtailError):
    """Training data shares keys with evaluation data (e.g. a re-sampled row copied from the test split)."""


class NonFiniteScoreError(LongtailError):
    """A recommender returned NaN or +inf scores: a NaN compares false with everything and would rank first."""


class IdempotencyKeyReusedError(LongtailError):
    """An Idempotency-Key already answered a different request; a retry must resend the same request."""


class DataWarning(UserWarning):
    """Input data was read, but changed on the way in (e.g. float ids `13085.0` written as `13085`); the message says how."""
