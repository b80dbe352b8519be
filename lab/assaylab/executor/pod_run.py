"""One pod as this executor handles it: the record the reconcile loop keeps, and the node it stands in for."""

from __future__ import annotations

import dataclasses
import datetime
import enum
import json
import pathlib
import subprocess
from typing import Any

NODE_NAME = "assay-local"
LOCAL_IP = "127.0.0.1"


class State(enum.Enum):
    WAITING = "waiting"  # claimed and bound, not started yet (configuration missing)
    RUNNING = "running"
    BACKOFF = "backoff"  # restartPolicy OnFailure/Always: waiting to start again
    STOPPING = "stopping"  # SIGTERM sent; SIGKILL at kill_at
    DONE = "done"  # terminal status written (or the pod is gone)


@dataclasses.dataclass
class PodRun:
    """What this executor does for one pod."""

    namespace: str
    name: str
    uid: str
    pod: dict[str, Any]
    directory: pathlib.Path
    state: State = State.WAITING
    process: subprocess.Popen[bytes] | None = None
    start_time: str = ""  # status.startTime: when the pod was first handled here
    started_at: str = ""  # when the current process started
    restart_count: int = 0
    last_terminated: dict[str, Any] | None = None
    waiting: tuple[str, str] | None = None  # (reason, message) last reported while not running
    retry_at: float = 0.0
    kill_at: float | None = None
    killed: bool = False
    stop_reason: str | None = None  # "Deleted" or "DeadlineExceeded"
    deletion_done: bool = False
    kubeconfig: pathlib.Path | None = None
    container_id: str = ""
    unsent_status: dict[str, Any] | None = None  # decided but not yet written (the API call failed)

    @property
    def log_path(self) -> pathlib.Path:
        return self.directory / "log"

    @property
    def termination_log(self) -> pathlib.Path:
        return self.directory / "termination-log"

    @property
    def workdir(self) -> pathlib.Path:
        return self.directory / "work"

    @property
    def container(self) -> dict[str, Any]:
        return dict(self.pod["spec"]["containers"][0])


def now() -> str:
    """The time as the kubelet writes it in a pod's status."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def response_json(response: Any) -> Any:
    """The body of an API call made with `_preload_content=False` (plain dicts, camelCase, as served)."""
    return json.loads(response.data)
