"""Run Jobs' pods as local processes, as a kubelet would, where no container runtime runs.

    python -m assaylab.executor --kubeconfig K [--namespace N ...] [--selector S] [--workdir D]

The control plane in `assaylab.controlplane` has no scheduler and no kubelet, so the Pods that the job
controller creates stay Pending. `LocalExecutor` plays both parts for the pods it selects (default: pods
owned by Jobs, label `batch.kubernetes.io/job-name`), so the operator sees what it would see in a cluster:

- claims a Pending, unscheduled pod once (annotation `assay.dev/executor`, resourceVersion-guarded, so two
  executors never run the same pod) and binds it to the node name `assay-local` through `pods/binding`
  (the API server does not require a Node object for that);
- resolves the first container's environment as the kubelet does (`env`, `$(VAR)` expansion, secretKeyRef,
  configMapKeyRef, fieldRef, resourceFieldRef, envFrom with prefix); a missing Secret or key keeps the pod
  Pending with `waiting.reason: CreateContainerConfigError` and the kubelet's message, retried until it
  appears;
- mints a token for the pod's ServiceAccount (TokenRequest, bound to the pod) and hands the process a
  kubeconfig with it in `KUBECONFIG`, so the process has exactly the RBAC rights of that ServiceAccount;
- runs `command + args` with a leading `python` mapped to this interpreter, in a directory of its own,
  output to a log file (path in the annotation `assay.dev/executor-log`), never to our own output;
- reports Running / Succeeded / Failed through `pods/status` with the container state a kubelet writes,
  including the termination message;
- on pod deletion (a deleted Job, a suspended Job, a Job past its activeDeadlineSeconds: the job controller
  deletes the pods) sends SIGTERM, then SIGKILL after the grace period (capped at 10 s), writes the terminal
  status and removes the pod as the kubelet does (delete with grace period 0).

What a process sees, compared with a container:
    KUBECONFIG             a kubeconfig for the pod's ServiceAccount (only when a token would be mounted)
    ASSAY_TERMINATION_LOG  the local file standing in for `terminationMessagePath` (/dev/termination-log):
                           what the program writes there becomes `state.terminated.message`
    HOSTNAME               the pod's hostname: `spec.hostname` (`<job>-<index>` in Indexed Jobs), else its name
    HOME, working dir      a directory of the pod's own under the executor's workdir
    KUBERNETES_SERVICE_*   never set, so clients do not try in-cluster config
and only a few variables of the executor's own environment (PATH, locale, PYTHONPATH, ...: INHERITED_ENV).
Not modelled: images (the local interpreter stands in), volumes, `workingDir`, securityContext, probes,
service links, init or extra containers (a pod with them stays Pending with a message saying so).

One module a role, all re-exported here: `binding` (claim and bind), `environment` (env and command),
`tokens` (ServiceAccount tokens), `processes` (running and stopping), `pod_status` (what is reported),
`watching` (list and watch), `pod_run` (one pod's record), `errors`, and `local`: `LocalExecutor`, the
reconcile loop that ties them together.
"""

from assaylab.executor.binding import EXECUTOR_ANNOTATION, LOG_ANNOTATION
from assaylab.executor.environment import (
    DEFAULT_INTERPRETER_MAP,
    ApiConfigSource,
    ConfigSource,
    container_command,
    expand,
    field_value,
    local_allocatable,
    map_interpreter,
    parse_quantity,
    resolve_environment,
    resource_value,
)
from assaylab.executor.errors import ContainerConfigError, ExecutorError, PodNotFoundError
from assaylab.executor.local import DEFAULT_SELECTOR, LocalExecutor
from assaylab.executor.pod_run import LOCAL_IP, NODE_NAME
from assaylab.executor.pod_status import DEADLINE_MESSAGE
from assaylab.executor.processes import INHERITED_ENV, MAX_GRACE_SECONDS, TERMINATION_LOG_ENV, exit_code
from assaylab.executor.tokens import TOKEN_EXPIRATION_SECONDS

__all__ = [
    "DEADLINE_MESSAGE",
    "DEFAULT_INTERPRETER_MAP",
    "DEFAULT_SELECTOR",
    "EXECUTOR_ANNOTATION",
    "INHERITED_ENV",
    "LOCAL_IP",
    "LOG_ANNOTATION",
    "MAX_GRACE_SECONDS",
    "NODE_NAME",
    "TERMINATION_LOG_ENV",
    "TOKEN_EXPIRATION_SECONDS",
    "ApiConfigSource",
    "ConfigSource",
    "ContainerConfigError",
    "ExecutorError",
    "LocalExecutor",
    "PodNotFoundError",
    "container_command",
    "exit_code",
    "expand",
    "field_value",
    "local_allocatable",
    "map_interpreter",
    "parse_quantity",
    "resolve_environment",
    "resource_value",
]
