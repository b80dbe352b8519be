"""Faults on the evaluation path, with real parts: the control plane, the operator, the local Job executor
running the evaluator, a real LiteLLM proxy and the LLM simulator behind it.

What it must show: rate limits and server errors do not change a verdict; an evaluator killed mid-run is
replaced and resumes with no gap and no duplicate; so is a Job deleted by hand, until too many were lost
(then the run ends in Error, JobLost); malformed dataset lines are reported by line number
(skipped or fatal, as configured); a missing Secret or dataset ConfigMap holds the run, without a Job,
until it exists; a judge that cannot tell a degraded answer from the intact one fails the run.

One LocalStack serves the module (starting one costs ~20 s); each test works in a namespace of its own.
"""

from __future__ import annotations

import contextlib
import json
import signal
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pytest
from kubernetes import client

import realparts
from assay import GROUP, VERSION
from assay.controllers import conditions
from assay.evaluator import kube as evidence_store
from assaylab import litellm, simulator
from assaylab import stack as local_stack
from conftest import wait_for

pytestmark = [
    pytest.mark.integration,
    pytest.mark.litellm,
    realparts.needs(f"LiteLLM {litellm.LITELLM_VERSION}", litellm.find_litellm(), "run hack/litellm.sh"),
]

VERDICTS = {"Passed", "Failed", "Inconclusive"}
FINAL = VERDICTS | {"Error"}

# The demo world's models with a judge that has no position bias or noise (so that an equal candidate passes on
# the datasets below rather than failing the 90% control guardrail by a control or two), plus a judge that cannot
# tell quality apart. Answers and verdicts depend only on (seed, model, prompt): fault rates change which requests
# fail, never what a success says.
WORLD: dict[str, Any] = {
    "seed": 7,
    "models": {
        "gpt-4o": {"quality": 0.8, "latency_ms": 20, "latency_jitter_ms": 10},
        "gpt-4o-mini": {"quality": 0.8, "latency_ms": 10, "latency_jitter_ms": 5},
        "tiny-llm": {"quality": 0.35, "verbosity": 1.3, "latency_ms": 5},
        "judge-large": {"role": "judge", "latency_ms": 15},
        "judge-blind": {"role": "judge", "insensitive": True, "latency_ms": 15},
    },
}
FAULTS = {"error_rate": 0.1, "rate_limit_rate": 0.1, "retry_after_s": 0.2}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[local_stack.LocalStack]:
    with local_stack.running(
        namespace="faults",
        models=list(WORLD["models"]),
        simulator_config=WORLD,
        workdir=tmp_path_factory.mktemp("faults-stack"),
    ) as running:
        yield running


class Namespace:
    """One test's namespace in the shared stack, with the LiteLLM key Secret every run uses."""

    def __init__(self, stack: local_stack.LocalStack, name: str) -> None:
        self.stack = stack
        self.name = name
        self.core = client.CoreV1Api(stack.api)
        self.custom = client.CustomObjectsApi(stack.api)
        self.batch = client.BatchV1Api(stack.api)

    def create_secret(self, name: str = local_stack.LITELLM_KEY_SECRET) -> None:
        secret = client.V1Secret(
            metadata=client.V1ObjectMeta(name=name), string_data={"api-key": litellm.TEST_MASTER_KEY}
        )
        self.core.create_namespaced_secret(self.name, secret)

    def put_dataset(self, name: str, lines: Sequence[Mapping[str, Any] | str]) -> None:
        """A dataset ConfigMap; a str line is written as is (to make malformed lines), a mapping as JSON."""
        text = "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines)
        config_map = client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name), data={"prompts.jsonl": text})
        self.core.create_namespaced_config_map(self.name, config_map)

    def create_run(
        self,
        name: str,
        *,
        candidate: str = "gpt-4o-mini",
        judge: str = "judge-large",
        dataset: str = "prompts",
        secret: str = local_stack.LITELLM_KEY_SECRET,
        test: Mapping[str, Any] | None = None,
        execution: Mapping[str, Any] | None = None,
        on_invalid_line: str = "Skip",
    ) -> None:
        """A QualificationRun made by hand: `candidate` against gpt-4o through the stack's LiteLLM."""
        spec = {
            "endpoint": {
                "url": self.stack.litellm_url + "/v1",
                "apiKeySecretRef": {"name": secret, "key": "api-key"},
            },
            "baseline": {"model": "gpt-4o"},
            "candidate": {"name": candidate.replace(".", "-"), "model": candidate},
            "dataset": {"configMapRef": {"name": dataset, "key": "prompts.jsonl"}, "onInvalidLine": on_invalid_line},
            "judge": {"model": judge},
            "test": dict(test or {}),
            "execution": {"concurrency": 16, "chunkSize": 10, **(execution or {})},
        }
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "QualificationRun", "metadata": {"name": name}}
        self.custom.create_namespaced_custom_object(
            GROUP, VERSION, self.name, "qualificationruns", {**body, "spec": spec}
        )

    def status(self, name: str) -> dict[str, Any]:
        run: dict[str, Any] = self.custom.get_namespaced_custom_object(  # type: ignore[assignment]
            GROUP, VERSION, self.name, "qualificationruns", name
        )
        return dict(run.get("status") or {})

    def wait_final(self, name: str, *, timeout: float = 120) -> dict[str, Any]:
        def final() -> dict[str, Any] | None:
            status = self.status(name)
            return status if status.get("phase") in FINAL else None

        result: dict[str, Any] = wait_for(final, timeout=timeout, interval=0.5, what=f"a verdict on {name}")
        return result

    def jobs(self) -> list[Any]:
        return list(self.batch.list_namespaced_job(self.name).items)

    def pods_of(self, run: str) -> list[Any]:
        return list(self.core.list_namespaced_pod(self.name, label_selector=f"{GROUP}/run={run}").items)

    def evidence(self, run: str) -> list[dict[str, Any]]:
        """Every evidence record the run's pods wrote, in position order (duplicates kept)."""
        records_by_shard, _ = evidence_store.read_evidence_configmaps(self.core, self.name, run)
        return sorted((r for shard in records_by_shard.values() for r in shard), key=lambda r: int(r["seq"]))


@pytest.fixture
def namespace(stack: local_stack.LocalStack, request: pytest.FixtureRequest) -> Iterator[Namespace]:
    name = "f-" + request.node.name.removeprefix("test_").replace("_", "-")[:50].strip("-")
    core = client.CoreV1Api(stack.api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    space = Namespace(stack, name)
    space.create_secret()
    yield space
    # The namespace controller deletes what is left (a Job still running after a failed assertion).
    with contextlib.suppress(client.ApiException):
        core.delete_namespace(name)


@contextlib.contextmanager
def faults(stack: local_stack.LocalStack, **rates: float) -> Iterator[None]:
    """Every simulated model (the judges included) fails requests at `rates` until the block ends."""
    assert stack.simulator is not None
    served = stack.simulator.server.simulator
    clean = served.config
    models = {name: behaviour.model_copy(update=rates) for name, behaviour in clean.models.items()}
    served.config = clean.model_copy(update={"models": models})
    try:
        yield
    finally:
        served.config = clean


def without_latency(record: Mapping[str, Any]) -> dict[str, Any]:
    """An evidence record without what legitimately differs between two evaluations: latencies."""
    kept = {k: v for k, v in record.items() if k != "latency_ms"}
    if isinstance(kept.get("control_other"), Mapping):
        kept["control_other"] = {k: v for k, v in kept["control_other"].items() if k != "latency_ms"}
    return kept


def verdict_of(status: Mapping[str, Any]) -> dict[str, Any]:
    stats = status.get("statistics") or {}
    return {
        "phase": status.get("phase"),
        "reason": status.get("reason"),
        "decidedAtSample": status.get("decidedAtSample"),
        "estimate": stats.get("estimate"),
        "lowerBound": stats.get("lowerBound"),
        "upperBound": stats.get("upperBound"),
    }


def test_rate_limits_and_server_errors_do_not_change_the_verdict(stack, namespace):
    namespace.put_dataset("prompts", simulator.make_dataset(300, seed=21))
    test = {"maxSamples": 300}
    candidates = {"mini": "gpt-4o-mini", "tiny": "tiny-llm"}
    for short, model in candidates.items():
        namespace.create_run(f"clean-{short}", candidate=model, test=test)
    clean = {short: namespace.wait_final(f"clean-{short}") for short in candidates}
    assert clean["mini"]["phase"] == "Passed", json.dumps(clean["mini"], indent=1)
    assert clean["tiny"]["phase"] == "Failed", clean["tiny"]

    assert stack.simulator is not None
    before = stack.simulator.stats()["models"]
    with faults(stack, **FAULTS):
        for short, model in candidates.items():
            namespace.create_run(f"faulty-{short}", candidate=model, test=test)
        faulty = {short: namespace.wait_final(f"faulty-{short}", timeout=180) for short in candidates}
    after = stack.simulator.stats()["models"]

    for model in ("gpt-4o", "gpt-4o-mini", "tiny-llm", "judge-large"):
        assert after[model]["rate_limited"] > before[model]["rate_limited"], f"{model} never answered 429"
        assert after[model]["errors"] > before[model]["errors"], f"{model} never answered 500"
    for short in candidates:
        assert verdict_of(faulty[short]) == verdict_of(clean[short]), short
        decided = clean[short]["progress"]["evaluated"]
        clean_evidence = [without_latency(r) for r in namespace.evidence(f"clean-{short}")[:decided]]
        faulty_evidence = [without_latency(r) for r in namespace.evidence(f"faulty-{short}")[:decided]]
        assert faulty_evidence == clean_evidence, f"{short}: the evidence differs beyond latencies"


def test_killed_evaluator_is_replaced_and_resumes_without_gap_or_duplicate(stack, namespace):
    namespace.put_dataset("prompts", simulator.make_dataset(300, seed=7))
    # An equal candidate that passes only after ~260 pairs on this dataset: time to kill the evaluator mid-run.
    settings: dict[str, Any] = {"test": {"maxSamples": 300}, "execution": {"concurrency": 8}}
    namespace.create_run("reference", **settings)
    namespace.create_run("killed", **settings)

    def evaluator_mid_run() -> tuple[str, int] | None:
        status = namespace.status("killed")
        assert status.get("phase") not in FINAL, "the run decided before the evaluator could be killed"
        evaluated = (status.get("progress") or {}).get("evaluated") or 0
        alive = set(stack.executor.running_pods())
        pods = [p.metadata.name for p in namespace.pods_of("killed") if p.metadata.name in alive]
        return (pods[0], evaluated) if pods and evaluated >= 20 else None

    first_pod, evaluated_at_kill = wait_for(evaluator_mid_run, timeout=90, what="evidence from the evaluator")
    stack.executor.kill(first_pod, signal.SIGKILL, namespace=namespace.name)
    replacement = wait_for(
        lambda: [p.metadata.name for p in namespace.pods_of("killed") if p.metadata.name != first_pod],
        timeout=60,
        what="the Job's replacement pod",
    )
    killed = namespace.wait_final("killed", timeout=150)
    reference = namespace.wait_final("reference")

    assert replacement, "the Job retried the killed pod"
    assert killed["progress"]["evaluated"] > evaluated_at_kill, "the run went on after the kill"
    written = [r["seq"] for r in namespace.evidence("killed")]
    assert len(written) == len(set(written)), "a position was written twice"
    assert written == list(range(len(written))), "a position is missing"
    assert len(written) >= killed["progress"]["evaluated"]
    assert verdict_of(killed) == verdict_of(reference)
    consumed = killed["progress"]["evaluated"]
    assert [without_latency(r) for r in namespace.evidence("killed")[:consumed]] == [
        without_latency(r) for r in namespace.evidence("reference")[:consumed]
    ]


def delete_job(namespace: Namespace, name: str) -> None:
    """Delete a Job by hand as `kubectl delete job` does (its pods go with it)."""
    namespace.batch.delete_namespaced_job(name, namespace.name, propagation_policy="Background")


def test_deleted_job_is_recreated_and_the_run_decides_as_if_nothing_happened(stack, namespace):
    namespace.put_dataset("prompts", simulator.make_dataset(300, seed=7))
    settings: dict[str, Any] = {"test": {"maxSamples": 300}, "execution": {"concurrency": 8}}
    namespace.create_run("reference", **settings)
    namespace.create_run("deleted", **settings)

    def evaluating() -> int | None:
        status = namespace.status("deleted")
        assert status.get("phase") not in FINAL, "the run decided before its Job could be deleted"
        evaluated = (status.get("progress") or {}).get("evaluated") or 0
        return evaluated if evaluated >= 20 else None

    evaluated_at_delete = wait_for(evaluating, timeout=90, what="evidence from the evaluator")
    delete_job(namespace, "deleted-eval")
    replaced = wait_for(
        lambda: (status := namespace.status("deleted")).get("jobName") == "deleted-eval-r1" and status,
        timeout=60,
        what="a replacement Job in status.jobName",
    )
    deleted = namespace.wait_final("deleted", timeout=150)
    reference = namespace.wait_final("reference")

    assert "deleted-eval disappeared" in replaced["message"]
    assert deleted["progress"]["evaluated"] > evaluated_at_delete, "the replacement went on from the evidence"
    written = [r["seq"] for r in namespace.evidence("deleted")]
    assert len(written) == len(set(written)), "a position was written twice"
    assert written == list(range(len(written))), "a position is missing"
    assert verdict_of(deleted) == verdict_of(reference)


def test_a_run_whose_jobs_keep_disappearing_ends_in_error_job_lost(stack, namespace):
    namespace.put_dataset("prompts", simulator.make_dataset(300, seed=7))
    namespace.create_run("lost", test={"maxSamples": 300}, execution={"concurrency": 2})

    names = ["lost-eval", "lost-eval-r1", "lost-eval-r2", "lost-eval-r3"]
    for name in names:  # the first Job and every replacement the operator makes, each deleted as it appears
        wait_for(lambda name=name: namespace.status("lost").get("jobName") == name, timeout=60, what=name)
        wait_for(lambda name=name: name in {job.metadata.name for job in namespace.jobs()}, timeout=30, what=name)
        delete_job(namespace, name)
    status = namespace.wait_final("lost", timeout=60)

    assert (status["phase"], status["reason"]) == ("Error", "JobLost"), status.get("message")
    assert "lost-eval-r3 disappeared" in status["message"]
    time.sleep(3)  # a few reconciles (every second): no further Job
    assert namespace.jobs() == []
    assert namespace.status("lost")["phase"] == "Error"


def malformed_dataset(size: int) -> list[Mapping[str, Any] | str]:
    """`size` valid records with three malformed lines: 3 (not JSON), 7 (no messages), 12 (a repeated id)."""
    records = simulator.make_dataset(size, seed=5)
    lines: list[Mapping[str, Any] | str] = list(records)
    lines.insert(2, "this line is not JSON")
    lines.insert(6, {"id": "no-messages", "metadata": {"note": "messages are missing"}})
    lines.insert(11, dict(records[0]))
    return lines


def test_malformed_lines_are_skipped_and_named_by_line_number(stack, namespace):
    namespace.put_dataset("prompts", malformed_dataset(150))
    namespace.create_run("skip", candidate="tiny-llm", test={"maxSamples": 150})

    status = namespace.wait_final("skip")

    assert status["phase"] in VERDICTS, status.get("message")
    assert status["invalidLines"] == [3, 7, 12]
    assert status["progress"]["invalidLines"] == 3
    valid = conditions.get(status["conditions"], "DatasetValid")
    assert valid is not None and valid["status"] == "False" and valid["reason"] == "InvalidLines"
    assert "lines 3, 7, 12" in valid["message"]


def test_malformed_lines_fail_the_run_when_configured(stack, namespace):
    namespace.put_dataset("prompts", malformed_dataset(150))
    namespace.create_run("strict", candidate="tiny-llm", on_invalid_line="Fail")

    status = namespace.wait_final("strict")

    assert (status["phase"], status["reason"]) == ("Error", "InvalidDatasetLines"), status.get("message")
    for line in (3, 7, 12):
        assert f"line {line}:" in status["message"]
    assert "duplicate id" in status["message"] and "not valid JSON" in status["message"]
    valid = conditions.get(status["conditions"], "DatasetValid")
    assert valid is not None and valid["status"] == "False" and "lines 3, 7, 12" in valid["message"]
    assert "skipped" not in valid["message"], "with onInvalidLine Fail nothing is skipped"


def held_without_a_job(namespace: Namespace, run: str) -> dict[str, Any]:
    """The run's Ready condition once it is False, after checking that no Job was made meanwhile."""

    def not_ready() -> Mapping[str, Any] | None:
        ready = conditions.get(namespace.status(run).get("conditions"), "Ready")
        return ready if ready is not None and ready["status"] == "False" else None

    ready = dict(wait_for(not_ready, timeout=30, what=f"Ready=False on {run}"))
    time.sleep(3)  # a few reconciles (every second): still held
    assert namespace.jobs() == [], "no evaluation Job while a reference is missing"
    assert namespace.status(run).get("phase") in (None, "Pending")
    return ready


def test_missing_secret_holds_the_run_until_it_exists(stack, namespace):
    namespace.put_dataset("prompts", simulator.make_dataset(150, seed=8))
    namespace.create_run("late-secret", candidate="tiny-llm", secret="late-keys", test={"maxSamples": 150})

    ready = held_without_a_job(namespace, "late-secret")
    assert ready["reason"] == "SecretNotFound" and "'late-keys'" in ready["message"]

    namespace.create_secret("late-keys")
    status = namespace.wait_final("late-secret")
    assert status["phase"] == "Failed", status.get("message")
    assert conditions.is_true(status["conditions"], "Ready")


def test_missing_dataset_configmap_holds_the_run_until_it_exists(stack, namespace):
    namespace.create_run("late-dataset", candidate="tiny-llm", dataset="late-prompts", test={"maxSamples": 150})

    ready = held_without_a_job(namespace, "late-dataset")
    assert ready["reason"] == "ConfigMapNotFound" and "'late-prompts'" in ready["message"]

    namespace.put_dataset("late-prompts", simulator.make_dataset(150, seed=8))
    status = namespace.wait_final("late-dataset")
    assert status["phase"] == "Failed", status.get("message")
    assert conditions.is_true(status["conditions"], "Ready")


def test_judge_that_cannot_tell_a_degraded_answer_fails_the_run(stack, namespace):
    namespace.put_dataset("prompts", simulator.make_dataset(200, seed=13))
    namespace.create_run(
        "blind", judge="judge-blind", test={"maxSamples": 200, "controlShare": 0.15, "minControls": 10}
    )

    status = namespace.wait_final("blind")

    assert (status["phase"], status["reason"]) == ("Failed", "JudgeInsensitive"), status.get("message")
    assert status["progress"]["controls"] >= 10
    assert status["statistics"]["controlCatchRate"] < 0.9
