"""The local executor makes a kubelet-less control plane run Jobs: the job controller sees its pods start,
succeed, fail, retry and die exactly as it would in a cluster, and the processes get the environment and
the RBAC rights of their pod."""

from __future__ import annotations

import pathlib
import signal
import textwrap
from typing import Any

import pytest
from kubernetes import client

from assaylab import executor
from conftest import wait_for

pytestmark = pytest.mark.integration

RESTRICTED = {
    "runAsNonRoot": True,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}

# A process that reports SIGTERM in its log before exiting as a container would (128 + 15).
SLEEPER = """
import signal, sys, time
def stop(*_):
    print("got SIGTERM", flush=True)
    sys.exit(143)
signal.signal(signal.SIGTERM, stop)
print("running", flush=True)
time.sleep(120)
"""

# A process that fails on its first two attempts (counted in a file) and succeeds on the third.
FAILS_TWICE = """
import os, sys
path = os.environ["ATTEMPTS_FILE"]
earlier = len(open(path).read()) if os.path.exists(path) else 0
open(path, "a").write("x")
print("attempt", earlier + 1)
sys.exit(0 if earlier >= 2 else 1)
"""


@pytest.fixture
def local(kube, namespace, tmp_path) -> Any:
    with executor.LocalExecutor(kube.kubeconfig, namespaces=[namespace], workdir=tmp_path / "executor") as running:
        yield running


@pytest.fixture
def core(kube) -> client.CoreV1Api:
    return client.CoreV1Api(kube.api_client())


@pytest.fixture
def batch(kube) -> client.BatchV1Api:
    return client.BatchV1Api(kube.api_client())


def job(
    name: str, code: str, *, env: list[dict] | None = None, service_account: str | None = None, **spec: Any
) -> dict:
    """A Job running `python -c code` with a restricted securityContext, as the operator builds them."""
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "terminationGracePeriodSeconds": 5,
        "containers": [
            {
                "name": "evaluator",
                "image": "ghcr.io/assay/assay:dev",
                "command": ["python", "-c", textwrap.dedent(code)],
                "env": env or [],
                "securityContext": RESTRICTED,
            }
        ],
    }
    if service_account:
        pod_spec["serviceAccountName"] = service_account
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {"backoffLimit": 0, **spec, "template": {"spec": pod_spec}},
    }


def condition(batch: client.BatchV1Api, namespace: str, name: str, kind: str) -> Any:
    """The Job's condition of that type when it is True, else None."""
    status = batch.read_namespaced_job(name, namespace).status
    return next((c for c in status.conditions or [] if c.type == kind and c.status == "True"), None)


def pods_of(core: client.CoreV1Api, namespace: str, job_name: str) -> list[Any]:
    pods = core.list_namespaced_pod(namespace, label_selector=f"batch.kubernetes.io/job-name={job_name}").items
    return sorted(pods, key=lambda pod: pod.metadata.creation_timestamp)


def running_pod(local: executor.LocalExecutor, marker: str = "running") -> str:
    """The one pod whose process is running and has written `marker` to its log."""
    return wait_for(
        lambda: next((name for name in local.running_pods() if marker in local.logs(name)), None),
        what=f"a running process that printed {marker!r}",
    )


def test_job_process_gets_secret_and_completion_index_and_completes(local, core, batch, namespace):
    core.create_namespaced_secret(namespace, {"metadata": {"name": "gateway-key"}, "stringData": {"key": "sk-test"}})
    env = [
        {"name": "API_KEY", "valueFrom": {"secretKeyRef": {"name": "gateway-key", "key": "key"}}},
        {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
    ]
    code = """
    import os
    env = os.environ
    print("key=" + env["API_KEY"], "index=" + env["JOB_COMPLETION_INDEX"], "host=" + env["HOSTNAME"])
    print("pod=" + os.environ["POD"], "in-cluster=" + str("KUBERNETES_SERVICE_HOST" in os.environ))
    """
    batch.create_namespaced_job(namespace, job("env", code, env=env, completionMode="Indexed", completions=1))

    wait_for(lambda: condition(batch, namespace, "env", "Complete"), what="Job Complete")
    (pod,) = pods_of(core, namespace, "env")
    output = local.logs(pod.metadata.name)
    # The job controller gives an Indexed Job's pods the hostname <job>-<index>; HOSTNAME follows it.
    assert "key=sk-test index=0 host=env-0" in output
    assert f"pod={pod.metadata.name} in-cluster=False" in output
    assert pod.spec.node_name == executor.NODE_NAME
    assert pod.metadata.annotations[executor.EXECUTOR_ANNOTATION] == local.id
    assert pathlib.Path(pod.metadata.annotations[executor.LOG_ANNOTATION]).read_text() == output
    terminated = pod.status.container_statuses[0].state.terminated
    assert (pod.status.phase, terminated.exit_code, terminated.reason) == ("Succeeded", 0, "Completed")
    assert batch.read_namespaced_job("env", namespace).status.succeeded == 1


def test_termination_message_and_exit_code_reach_the_pod_status(local, core, batch, namespace):
    code = """
    import os, sys
    with open(os.environ["ASSAY_TERMINATION_LOG"], "w") as f:
        f.write("InvalidSpec: dataset.source is empty")
    sys.exit(2)
    """
    batch.create_namespaced_job(namespace, job("bad-config", code))

    failed = wait_for(lambda: condition(batch, namespace, "bad-config", "Failed"), what="Job Failed")
    assert failed.reason == "BackoffLimitExceeded"
    (pod,) = pods_of(core, namespace, "bad-config")
    terminated = pod.status.container_statuses[0].state.terminated
    assert pod.status.phase == "Failed"
    assert (terminated.exit_code, terminated.reason) == (2, "Error")
    assert terminated.message == "InvalidSpec: dataset.source is empty"


@pytest.mark.slow  # the job controller waits 10 s, then 20 s, before replacing a failed pod
def test_process_failing_twice_is_retried_until_it_succeeds(local, core, batch, namespace, tmp_path):
    attempts = tmp_path / "attempts"
    env = [{"name": "ATTEMPTS_FILE", "value": str(attempts)}]
    batch.create_namespaced_job(namespace, job("flaky", FAILS_TWICE, env=env, backoffLimit=3))

    wait_for(lambda: condition(batch, namespace, "flaky", "Complete"), timeout=90, what="Job Complete")
    status = batch.read_namespaced_job("flaky", namespace).status
    assert (status.failed, status.succeeded) == (2, 1)
    pods = pods_of(core, namespace, "flaky")
    assert [p.status.phase for p in pods] == ["Failed", "Failed", "Succeeded"]
    assert [local.logs(p.metadata.name).strip() for p in pods] == ["attempt 1", "attempt 2", "attempt 3"]


def test_killed_process_fails_its_pod_and_the_job_retries(local, core, batch, namespace, tmp_path):
    code = """
    import os, time
    marker = os.environ["FIRST_RUN"]
    if not os.path.exists(marker):
        open(marker, "w").close()
        print("running", flush=True)
        time.sleep(120)
    print("second attempt")
    """
    env = [{"name": "FIRST_RUN", "value": str(tmp_path / "first-run")}]
    batch.create_namespaced_job(namespace, job("crash", code, env=env, backoffLimit=1))

    first = running_pod(local)
    local.kill(first, signal.SIGKILL)

    wait_for(lambda: condition(batch, namespace, "crash", "Complete"), timeout=45, what="Job Complete after a retry")
    killed, retry = pods_of(core, namespace, "crash")
    assert killed.metadata.name == first
    assert (killed.status.phase, killed.status.container_statuses[0].state.terminated.exit_code) == ("Failed", 137)
    assert "second attempt" in local.logs(retry.metadata.name)
    status = batch.read_namespaced_job("crash", namespace).status
    assert (status.failed, status.succeeded) == (1, 1)


def test_kill_of_a_pod_that_is_not_running_says_so(local):
    with pytest.raises(executor.PodNotFoundError, match="no-such-pod"):
        local.kill("no-such-pod")


def test_indexed_job_runs_its_indices_in_parallel_and_completes_each(local, core, batch, namespace, tmp_path):
    # Each index waits until both have started: it completes only if the two really run at the same time.
    code = """
    import os, pathlib, time
    shared = pathlib.Path(os.environ["SHARED_DIR"])
    (shared / os.environ["JOB_COMPLETION_INDEX"]).touch()
    deadline = time.monotonic() + 20
    while len(list(shared.iterdir())) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    print("index", os.environ["JOB_COMPLETION_INDEX"], "saw", len(list(shared.iterdir())))
    """
    (tmp_path / "shared").mkdir()
    env = [{"name": "SHARED_DIR", "value": str(tmp_path / "shared")}]
    spec = {"completionMode": "Indexed", "completions": 2, "parallelism": 2}
    batch.create_namespaced_job(namespace, job("shards", code, env=env, **spec))

    wait_for(lambda: condition(batch, namespace, "shards", "Complete"), what="Job Complete")
    status = batch.read_namespaced_job("shards", namespace).status
    assert (status.completed_indexes, status.succeeded) == ("0,1", 2)
    outputs = sorted(local.logs(p.metadata.name).strip() for p in pods_of(core, namespace, "shards"))
    assert outputs == ["index 0 saw 2", "index 1 saw 2"]


def test_process_has_exactly_the_rights_of_the_job_service_account(local, core, batch, kube, namespace):
    rbac = client.RbacAuthorizationV1Api(kube.api_client())
    core.create_namespaced_service_account(namespace, {"metadata": {"name": "evaluator"}})
    rbac.create_namespaced_role(
        namespace,
        {
            "metadata": {"name": "evidence-writer"},
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create", "get", "list"]}],
        },
    )
    rbac.create_namespaced_role_binding(
        namespace,
        {
            "metadata": {"name": "evaluator"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "evidence-writer"},
            "subjects": [{"kind": "ServiceAccount", "name": "evaluator", "namespace": namespace}],
        },
    )
    code = """
    from kubernetes import client, config
    config.load_kube_config()
    api = client.ApiClient()
    review = client.AuthenticationV1Api(api).create_self_subject_review(
        {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
    )
    print("user", review.status.user_info.username)
    core = client.CoreV1Api(api)
    namespace = config.list_kube_config_contexts()[1]["context"]["namespace"]  # the pod's, as in a cluster
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "evidence-0"}, "data": {"n": "1"}})
    print("configmaps: created")
    for what in ("secret", "pod"):
        try:
            getattr(core, "list_namespaced_" + what)(namespace)
            print(what + "s: allowed")
        except client.ApiException as exc:
            print(what + "s:", exc.status)
    """
    batch.create_namespaced_job(namespace, job("rbac", code, service_account="evaluator"))

    wait_for(lambda: condition(batch, namespace, "rbac", "Complete"), what="Job Complete")
    output = local.logs(pods_of(core, namespace, "rbac")[0].metadata.name)
    assert f"user system:serviceaccount:{namespace}:evaluator" in output
    assert "configmaps: created" in output
    assert "secrets: 403" in output and "pods: 403" in output
    assert core.read_namespaced_config_map("evidence-0", namespace).data == {"n": "1"}


@pytest.mark.parametrize("propagation", ["Background", "Foreground"])
def test_deleting_the_job_terminates_its_process_and_the_pod_goes(local, core, batch, namespace, propagation):
    batch.create_namespaced_job(namespace, job("doomed", SLEEPER))
    pod = running_pod(local)

    batch.delete_namespaced_job("doomed", namespace, propagation_policy=propagation)

    wait_for(lambda: not local.running_pods(), what="the process to end")
    assert "got SIGTERM" in local.logs(pod)
    wait_for(lambda: not pods_of(core, namespace, "doomed"), what="the pod to be removed")
    if propagation == "Foreground":
        wait_for(lambda: not batch.list_namespaced_job(namespace).items, what="the Job to be removed")


def test_suspending_the_job_terminates_its_process(local, core, batch, namespace):
    batch.create_namespaced_job(namespace, job("paused", SLEEPER))
    pod = running_pod(local)

    batch.patch_namespaced_job("paused", namespace, {"spec": {"suspend": True}})

    wait_for(lambda: "got SIGTERM" in local.logs(pod), what="SIGTERM")
    wait_for(lambda: not pods_of(core, namespace, "paused"), what="the pod to be removed")
    assert condition(batch, namespace, "paused", "Suspended")


def test_job_past_its_active_deadline_terminates_its_process(local, core, batch, namespace):
    batch.create_namespaced_job(namespace, job("late", SLEEPER, activeDeadlineSeconds=3))
    pod = running_pod(local)

    failed = wait_for(lambda: condition(batch, namespace, "late", "Failed"), what="Job Failed")
    assert failed.reason == "DeadlineExceeded"
    wait_for(lambda: "got SIGTERM" in local.logs(pod), what="SIGTERM")
    wait_for(lambda: not local.running_pods(), what="the process to end")


def test_missing_secret_holds_the_pod_with_config_error_until_it_exists(local, core, batch, namespace):
    env = [{"name": "JUDGE_KEY", "valueFrom": {"secretKeyRef": {"name": "judge-key", "key": "key"}}}]
    code = 'import os; print("judge key", os.environ["JUDGE_KEY"])'
    batch.create_namespaced_job(namespace, job("waits", code, env=env))

    def waiting() -> Any:
        pods = pods_of(core, namespace, "waits")
        statuses = pods[0].status.container_statuses if pods else None
        return pods[0] if statuses and statuses[0].state.waiting else None

    pod = wait_for(waiting, what="a waiting container")
    assert pod.status.phase == "Pending"
    assert pod.status.container_statuses[0].state.waiting.reason == "CreateContainerConfigError"
    assert pod.status.container_statuses[0].state.waiting.message == 'secret "judge-key" not found'
    assert not local.running_pods()

    core.create_namespaced_secret(namespace, {"metadata": {"name": "judge-key"}, "stringData": {"key": "sk-judge"}})

    wait_for(lambda: condition(batch, namespace, "waits", "Complete"), what="Job Complete once the Secret exists")
    assert "judge key sk-judge" in local.logs(pod.metadata.name)


def test_two_executors_never_run_the_same_pod(kube, local, core, batch, namespace, tmp_path):
    ran = tmp_path / "ran"
    ran.mkdir()
    code = 'import os, pathlib; (pathlib.Path(os.environ["RAN"]) / os.environ["HOSTNAME"]).open("a").write("x")'
    with executor.LocalExecutor(kube.kubeconfig, namespaces=[namespace], workdir=tmp_path / "second") as second:
        env = [{"name": "RAN", "value": str(ran)}]
        batch.create_namespaced_job(namespace, job("many", code, env=env, completions=6, parallelism=6))
        wait_for(lambda: condition(batch, namespace, "many", "Complete"), what="Job Complete")
        owners = [p.metadata.annotations[executor.EXECUTOR_ANNOTATION] for p in pods_of(core, namespace, "many")]
    assert len(owners) == 6 and set(owners) <= {local.id, second.id}
    assert sorted(path.read_text() for path in ran.iterdir()) == ["x"] * 6


def test_on_failure_pods_restart_in_place_until_the_process_succeeds(local, core, batch, namespace, tmp_path):
    spec = job(
        "in-place", FAILS_TWICE, env=[{"name": "ATTEMPTS_FILE", "value": str(tmp_path / "attempts")}], backoffLimit=3
    )
    spec["spec"]["template"]["spec"]["restartPolicy"] = "OnFailure"
    batch.create_namespaced_job(namespace, spec)

    wait_for(lambda: condition(batch, namespace, "in-place", "Complete"), what="Job Complete")
    (pod,) = pods_of(core, namespace, "in-place")
    container = pod.status.container_statuses[0]
    assert (pod.status.phase, container.restart_count, container.last_state.terminated.exit_code) == ("Succeeded", 2, 1)
    assert local.logs(pod.metadata.name).split() == ["attempt", "1", "attempt", "2", "attempt", "3"]


def test_pod_past_its_own_active_deadline_fails_as_deadline_exceeded(local, core, batch, namespace):
    spec = job("pod-deadline", SLEEPER)
    spec["spec"]["template"]["spec"]["activeDeadlineSeconds"] = 2
    batch.create_namespaced_job(namespace, spec)
    pod_name = running_pod(local)

    failed = wait_for(lambda: condition(batch, namespace, "pod-deadline", "Failed"), what="Job Failed")
    assert failed.reason == "BackoffLimitExceeded"
    pod = core.read_namespaced_pod(pod_name, namespace)
    assert (pod.status.phase, pod.status.reason) == ("Failed", "DeadlineExceeded")
    assert pod.status.container_statuses[0].state.terminated.exit_code == 143
    assert "got SIGTERM" in local.logs(pod_name)


def test_deleting_a_job_whose_pod_waits_for_its_secret_removes_the_pod(local, core, batch, namespace):
    env = [{"name": "KEY", "valueFrom": {"secretKeyRef": {"name": "never-created", "key": "key"}}}]
    batch.create_namespaced_job(namespace, job("abandoned", "print('unreachable')", env=env))
    wait_for(
        lambda: any(p.status.container_statuses for p in pods_of(core, namespace, "abandoned")),
        what="the pod to report its waiting container",
    )

    batch.delete_namespaced_job("abandoned", namespace, propagation_policy="Foreground")

    wait_for(lambda: not batch.list_namespaced_job(namespace).items, what="the Job and its pod to be removed")
    assert not pods_of(core, namespace, "abandoned")


def test_restarted_executor_reports_the_processes_it_lost(kube, core, batch, namespace, tmp_path):
    first = executor.LocalExecutor(kube.kubeconfig, namespaces=[namespace], workdir=tmp_path / "first")
    with first:
        batch.create_namespaced_job(namespace, job("orphaned", SLEEPER))
        pod_name = running_pod(first)
    # The first executor is gone and took its process with it; the pod still says Running.
    assert core.read_namespaced_pod(pod_name, namespace).status.phase == "Running"

    with executor.LocalExecutor(
        kube.kubeconfig, namespaces=[namespace], workdir=tmp_path / "second", executor_id=first.id
    ):
        pod = wait_for(
            lambda: (p := core.read_namespaced_pod(pod_name, namespace)).status.phase == "Failed" and p,
            what="the lost pod to be reported Failed",
        )
    assert pod.status.container_statuses[0].state.terminated.reason == "ContainerStatusUnknown"
    assert wait_for(lambda: batch.read_namespaced_job("orphaned", namespace).status.failed == 1, what="a failure")


def test_pod_without_a_mounted_token_gets_no_credentials(local, core, batch, namespace):
    spec = job("no-token", 'import os; print("kubeconfig", os.environ.get("KUBECONFIG"))')
    spec["spec"]["template"]["spec"]["automountServiceAccountToken"] = False
    batch.create_namespaced_job(namespace, spec)

    wait_for(lambda: condition(batch, namespace, "no-token", "Complete"), what="Job Complete")
    assert local.logs(pods_of(core, namespace, "no-token")[0].metadata.name).strip() == "kubeconfig None"
