"""Why a shard stops early, as exception classes that carry their exit code and a CamelCase reason.

Permanent errors (exit 2) are configuration the user must fix: retrying the Job cannot help. Transient
errors (exit 1) are worth retrying: the Job restarts the pod and the shard resumes where it stopped.
"""

from __future__ import annotations

EXIT_COMPLETE = 0
EXIT_TRANSIENT = 1
EXIT_PERMANENT = 2


class EvaluatorError(Exception):
    """A shard cannot finish. `reason` is CamelCase (it becomes a condition reason); the message says what
    is wrong, naming the field, line or record, and what to do."""

    exit_code = EXIT_TRANSIENT

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class ConfigError(EvaluatorError):
    """A permanent problem with the run's spec, its dataset or its credentials: exit 2, do not retry."""

    exit_code = EXIT_PERMANENT


class DatasetSourceError(ConfigError):
    """The dataset source (path, URL or ConfigMap key) is missing or unreadable; the message names it."""


class InvalidDatasetError(ConfigError):
    """The dataset has malformed lines and onInvalidLine is Fail, or no valid record at all."""


class CallRejected(ConfigError):
    """The endpoint refused a call in a way retrying cannot fix (401, 403, 404, 400)."""


class TransientError(EvaluatorError):
    """Worth retrying: exit 1, the Job restarts the pod and the shard resumes."""

    exit_code = EXIT_TRANSIENT


class ModelCallFailed(TransientError):
    """A model or judge call still failed after execution.maxAttempts attempts (429, 5xx, timeouts)."""


class EvidenceStoreError(TransientError):
    """Evidence chunks or the shard status could not be read or written (e.g. the Kubernetes API failed)."""
