"""Process running: a pod's container as a local process in a directory of its own, in its own process group,
output to a log file, with the environment a container would see; and how it is stopped and reported ended."""

from __future__ import annotations

import contextlib
import datetime
import os
import pathlib
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from assaylab.executor import pod_run

# A container starts from its image's environment, not the node's: pass on only what a local process needs.
INHERITED_ENV = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "PYTHONPATH", "SSL_CERT_FILE", "SSL_CERT_DIR")
TERMINATION_LOG_ENV = "ASSAY_TERMINATION_LOG"
MAX_GRACE_SECONDS = 10.0
MAX_TERMINATION_MESSAGE_BYTES = 4096  # the kubelet's limit per container


def exit_code(returncode: int) -> int:
    """A Popen returncode as a container runtime reports it: death by signal N is 128 + N."""
    return 128 - returncode if returncode < 0 else returncode


def signal_group(process: subprocess.Popen[bytes], sig: int) -> None:
    """Send `sig` to the process and every child it started (its process group)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)


def process_environment(
    run: pod_run.PodRun,
    pod: Mapping[str, Any],
    env: Mapping[str, str],
    *,
    kubeconfig: pathlib.Path | None,
    inherit_env: Iterable[str],
) -> dict[str, str]:
    """What the process sees: a few variables of the executor's own environment, HOME and HOSTNAME, the
    termination log, KUBECONFIG when a token is mounted, then the container's `env`; never
    KUBERNETES_SERVICE_*, so clients do not try in-cluster config."""
    process_env = {name: os.environ[name] for name in inherit_env if name in os.environ}
    process_env.update(
        {
            "HOME": str(run.workdir),
            "HOSTNAME": pod["spec"].get("hostname") or run.name,
            TERMINATION_LOG_ENV: str(run.termination_log),
        }
    )
    if kubeconfig is not None:
        process_env["KUBECONFIG"] = str(kubeconfig)
    process_env.update(env)
    for name in ("KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT"):
        process_env.pop(name, None)  # no in-cluster config: the kubeconfig above is the credential
    return process_env


def spawn(run: pod_run.PodRun, argv: Sequence[str], env: Mapping[str, str]) -> subprocess.Popen[bytes]:
    """Start the process with an empty termination log, appending its output to the pod's log. Raises
    OSError when the program cannot be executed."""
    run.termination_log.write_bytes(b"")
    with run.log_path.open("ab") as output:
        return subprocess.Popen(
            list(argv),
            cwd=run.workdir,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so signals reach its children too
        )


def grace_seconds(pod: Mapping[str, Any]) -> float:
    """The deletion's grace period, else the pod's, at most MAX_GRACE_SECONDS."""
    grace = pod["metadata"].get("deletionGracePeriodSeconds")
    if grace is None:
        grace = pod["spec"].get("terminationGracePeriodSeconds", 30)
    return min(float(grace), MAX_GRACE_SECONDS)


def restart_delay(restart_count: int) -> float:
    """The back-off before restarting a container in place (10 s doubling in a kubelet, 1 s here)."""
    return min(2.0**restart_count, MAX_GRACE_SECONDS)


def past_deadline(run: pod_run.PodRun) -> bool:
    """Whether the pod has been active longer than its activeDeadlineSeconds."""
    deadline = run.pod["spec"].get("activeDeadlineSeconds")
    if deadline is None:
        return False
    started = datetime.datetime.strptime(run.start_time, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC)
    return (datetime.datetime.now(datetime.UTC) - started).total_seconds() >= float(deadline)


def termination_message(run: pod_run.PodRun, code: int) -> str:
    """What the program wrote to its termination log; with FallbackToLogsOnError and nothing written,
    the tail of its log on failure (as the kubelet does)."""
    with contextlib.suppress(OSError):
        written = run.termination_log.read_bytes()[:MAX_TERMINATION_MESSAGE_BYTES]
        if written:
            return written.decode(errors="replace")
    if code != 0 and run.container.get("terminationMessagePolicy") == "FallbackToLogsOnError":
        with contextlib.suppress(OSError):
            lines = run.log_path.read_bytes().splitlines()[-80:]
            return b"\n".join(lines)[-2048:].decode(errors="replace")
    return ""
