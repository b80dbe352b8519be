"""What the executor raises, and what a pod that cannot start yet reports."""

from __future__ import annotations


class ExecutorError(RuntimeError):
    """A LocalExecutor call or its watch could not be served; the message says which pod or which event."""


class PodNotFoundError(ExecutorError):
    """No pod of that name was run (or is running) by this executor."""


class ContainerConfigError(Exception):
    """The container cannot be started yet; `reason` and the message are what a kubelet reports in
    `containerStatuses[].state.waiting` (the pod stays Pending and the executor retries)."""

    def __init__(self, message: str, *, reason: str = "CreateContainerConfigError") -> None:
        super().__init__(message)
        self.reason = reason
