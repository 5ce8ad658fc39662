"""The error tree of automl.

Every error automl raises on purpose derives from :class:`AutomlError`, one child per
capability, so callers can catch as broadly or narrowly as they need::

    AutomlError
    ├── ConfigError            a pipeline spec is missing, malformed or invalid
    ├── DataValidationError    a batch does not match the pipeline's schema (it is quarantined)
    ├── DataSourceError        an object store or SQL source cannot be read (unreachable after
    │                          retries, credentials missing or refused, bucket or table missing)
    ├── DriftCheckError        drift could not be computed for a batch
    ├── TuningError            hyperparameter search failed or produced no usable trial
    ├── TrackingError          MLflow tracking or the model registry failed
    ├── SchedulerError         the service could not schedule or run its jobs
    └── StateError             the workspace state database cannot be used by this automl

Messages say what failed, show the offending value and say what to do. Adapters translate
third-party exceptions with ``raise XError(...) from exc`` so the cause stays attached.
The CLI prints an ``AutomlError`` as one line on stderr and exits with code 1.
"""

from __future__ import annotations

__all__ = [
    "AutomlError",
    "ConfigError",
    "DataSourceError",
    "DataValidationError",
    "DriftCheckError",
    "SchedulerError",
    "StateError",
    "TrackingError",
    "TuningError",
]


class AutomlError(Exception):
    """Root of every error automl raises on purpose."""


class ConfigError(AutomlError):
    """A pipeline spec is missing, malformed or has an invalid field."""


class DataValidationError(AutomlError):
    """A data batch is unreadable, empty or does not match the pipeline's schema.

    Args:
        message: What is wrong, naming the file and the column where it applies.
        reason_code: A short machine-readable code (``unreadable``, ``empty``,
            ``missing_columns``, ``unexpected_columns``, ``bad_dtype``, ``no_target``,
            ``empty_column``, ``non_finite``, ``out_of_range``, ``label_type``, ``new_class``,
            ``duplicate``, ``dangling_link``; with late labels also ``no_id``,
            ``missing_id``, ``duplicate_id``, ``known_id`` and, for label rows,
            ``missing_label``; the README's "Validation rules" and "Late labels" list them).
    """

    def __init__(self, message: str, *, reason_code: str = "invalid") -> None:
        super().__init__(message)
        self.reason_code = reason_code


class DataSourceError(AutomlError):
    """A data source (an object store prefix, a SQL table) could not be read.

    Raised once transient errors have been retried up to the bound, or at once for errors that
    retrying cannot fix (no credentials, credentials refused, a missing bucket or table). The
    cycle that meets it ends with nothing of the failed read recorded, and the next cycle tries
    again.
    """


class DriftCheckError(AutomlError):
    """Drift between the reference and a batch could not be computed."""


class TuningError(AutomlError):
    """The hyperparameter search failed or produced no usable trial."""


class TrackingError(AutomlError):
    """MLflow tracking or the model registry could not be reached or refused a call."""


class SchedulerError(AutomlError):
    """The service could not schedule or run its jobs."""


class StateError(AutomlError):
    """The workspace state database cannot be used, e.g. a newer automl has upgraded it."""
