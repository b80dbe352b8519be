"""Alert to restored route: how long the operator takes from a drift alert reaching its webhook to the baseline
route written back, per gateway adapter, against a real kube-apiserver.

    .venv/bin/python benchmarks/rollback_latency.py [--rounds 200] [--restart-rounds 10] [--only KIND ...]

Every round: promote a candidate by annotation (`assay.dev/promote`, alternating two candidates, since each
distinct value is one command), wait for phase Promoted, then POST a new firing alert (fresh fingerprint and
startsAt) to the operator's webhook, the way Alertmanager delivers it. Two times are taken per round:

- server: the operator's own `assay_alert_to_rollback_seconds` histogram, from the request's arrival to the
  restored route written. Each round adds exactly one observation (checked), so the round's value is the
  difference of the histogram's `_sum` before and after: exact, not bucketed.
- client: the webhook's answer as the sender sees it, on a kept-alive connection. The answer comes after the
  status is recorded, the Event posted and the firing remembered, so it is the larger one. The route object
  (or the proxy's alias) is checked to be back at the baseline when the answer arrives.

Adapters: HTTPRoute and EnvoyAIGatewayRoute (upstream CRDs from hack/upstream-crds.sh; one weight patch),
LiteLLMAdminAPI (against tests/contract's stand-in of LiteLLM's admin API: read, POST /config/update, read
back), each in its own namespace of one control plane with one operator. Then LiteLLMConfigMap through the
local stack with a real LiteLLM 1.108.7 proxy, which is restarted on every switch: fewer rounds, and a third
time, until the proxy answers the route with the baseline model again. Prints Markdown tables.
"""

# The kubernetes client's generated stubs want model objects; this script passes plain dicts.
# mypy: disable-error-code="arg-type"
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import itertools
import os
import pathlib
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import httpx
import yaml
from kubernetes import client

from assay.gateways import envoy_ai_gateway, httproute, weighted_route
from assaylab import alertmanager, controlplane
from assaylab.operator_process import OperatorProcess
from assaylab.stack import apply_crds

REPO = pathlib.Path(__file__).resolve().parents[1]
TOKEN = "benchmark-webhook-token"
ALERT_NAME = "LLMRouteQualityDrift"
GROUP, VERSION = "assay.dev", "v1alpha1"
ROUTE_OBJECT = "chat"
BASELINE = "gpt-big"
CANDIDATES = {"small": "small-backend", "mid": "mid-backend"}
WEIGHTED: dict[str, weighted_route.RouteResource] = {
    httproute.KIND: httproute.HTTP_ROUTE,
    envoy_ai_gateway.KIND: envoy_ai_gateway.AI_GATEWAY_ROUTE,
}
ADMIN = "LiteLLMAdminAPI"
RESTART = "LiteLLMConfigMap"

# --- a control plane with assay's and the upstream CRDs, and the operator (shared with policies_at_scale) -----


@contextlib.contextmanager
def control_plane(workdir: pathlib.Path, *, controller_manager: bool = True) -> Iterator[controlplane.ControlPlane]:
    """etcd + kube-apiserver (+ kube-controller-manager) with assay's CRDs and the upstream route CRDs."""
    plane = controlplane.ControlPlane(
        controlplane.test_binaries(), workdir=workdir / "cp", controller_manager=controller_manager
    )
    plane.start()
    try:
        api = api_client(plane.kubeconfig)
        upstream = subprocess.run(
            ["bash", str(REPO / "hack" / "upstream-crds.sh")], capture_output=True, text=True, check=True
        )
        upstream_dir = pathlib.Path(upstream.stdout.strip().splitlines()[-1])
        apply_crds(api, [*sorted((REPO / "crds").glob("*.yaml")), *sorted(upstream_dir.glob("*.yaml"))])
        yield plane
    finally:
        plane.stop()


def api_client(kubeconfig: pathlib.Path) -> client.ApiClient:
    from kubernetes import config

    configuration = client.Configuration()
    config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)
    configuration.connection_pool_maxsize = 16  # the scale benchmark creates objects from a thread pool
    return client.ApiClient(configuration)


@contextlib.contextmanager
def operator(
    kubeconfig: pathlib.Path, log_path: pathlib.Path, *, reconcile_interval: float = 10.0, **env: str
) -> Iterator[OperatorProcess]:
    """`assay operator` as a process with its alert webhook; extra environment variables from `env`."""
    running = OperatorProcess(
        kubeconfig,
        log_path=log_path,
        reconcile_interval=reconcile_interval,
        webhook_port=controlplane.free_port(),
        webhook_token=TOKEN,
        extra_env=env,
    ).start(timeout=120)
    try:
        yield running
    finally:
        running.stop()


def metrics_text(running: OperatorProcess) -> str:
    return httpx.get(f"http://127.0.0.1:{running.metrics_port}/metrics", timeout=30).text


def metric(text: str, name: str) -> float:
    found = re.search(rf"^{re.escape(name)} ([0-9.e+-]+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def route_object(kind: str, name: str = ROUTE_OBJECT) -> dict[str, Any]:
    """A route object whose rule 0 sends everything to the baseline and keeps a weight-0 ref per candidate."""
    resource = WEIGHTED[kind]
    port = {"port": 8000} if kind == httproute.KIND else {}
    refs = [{"name": BASELINE, "weight": 100, **port}]
    refs += [{"name": backend, "weight": 0, **port} for backend in CANDIDATES.values()]
    return {
        "apiVersion": f"{resource.group}/{resource.versions[0]}",
        "kind": resource.kind,
        "metadata": {"name": name},
        "spec": {"parentRefs": [{"name": "gateway"}], "rules": [{"backendRefs": refs}]},
    }


def policy_body(name: str, gateway: dict[str, Any], *, candidates: dict[str, str] | None = None) -> dict[str, Any]:
    """A RoutePolicy promoted only by hand. Its qualification names the `prompts` ConfigMap (so it is Ready);
    without an executor its QualificationRuns never evaluate. `candidates`: name -> backend (or model)."""
    chosen = CANDIDATES if candidates is None else candidates
    weighted = gateway["kind"] in WEIGHTED
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "RoutePolicy",
        "metadata": {"name": name},
        "spec": {
            "promptType": name,
            "gateway": gateway,
            "baseline": {"model": BASELINE},
            "candidates": [
                {"name": c, "model": f"model-{c}", "backend": b} if weighted else {"name": c, "model": b}
                for c, b in chosen.items()
            ],
            "qualification": {
                "endpoint": {"url": "http://127.0.0.1:9/v1"},
                "dataset": {"configMapRef": {"name": "prompts", "key": "prompts.jsonl"}},
                "judge": {"model": "judge-large"},
            },
            "promotion": {"automatic": False},
            "rollback": {"alertSelector": {"matchLabels": {"alertname": ALERT_NAME, "route": name}}},
        },
    }


def prepare_namespace(api: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(api)
    core.create_namespace({"metadata": {"name": namespace}})
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "prompts"}, "data": {"prompts.jsonl": "{}\n"}})


def machine_note() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return f"{datetime.date.today()}, {os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, load {load}"


# --- one policy, promoted and rolled back round after round --------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Round:
    server: float  # seconds, the operator's histogram: arrival -> restored route written
    client: float  # seconds, POST -> answer
    restored_at_answer: bool
    served: float | None = None  # seconds, POST -> the proxy answering with the baseline (restart path)


_firings = itertools.count(1)


def alert_payload(namespace: str, route: str) -> dict[str, Any]:
    """A new firing (fresh fingerprint and startsAt) as Alertmanager's v4 webhook delivers it."""
    firing = next(_firings)
    starts_at = datetime.datetime.now(datetime.UTC).isoformat().replace("+00:00", "Z")
    labels = {"alertname": ALERT_NAME, "route": route, "namespace": namespace}
    firing_alert = alertmanager.alert(labels, starts_at=starts_at, fingerprint=f"{os.getpid():08x}{firing:08x}")
    return alertmanager.notification(firing_alert)


class PolicyRounds:
    """Promote-then-alert rounds for one RoutePolicy, timed."""

    def __init__(self, api: client.ApiClient, running: OperatorProcess, namespace: str, name: str) -> None:
        self.custom = client.CustomObjectsApi(api)
        self.operator = running
        self.namespace = namespace
        self.name = name
        self.promotions = 0
        self.webhook = httpx.Client(
            base_url=f"http://127.0.0.1:{running.webhook_port}",
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=60,
        )

    def status(self) -> dict[str, Any]:
        obj: Any = self.custom.get_namespaced_custom_object(GROUP, VERSION, self.namespace, "routepolicies", self.name)
        return dict(obj.get("status") or {})

    def wait(self, predicate: Callable[[dict[str, Any]], bool], what: str, *, timeout: float = 120) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            now = self.status()
            if predicate(now):
                return now
            time.sleep(0.02)
        raise TimeoutError(f"{self.namespace}/{self.name}: no {what} within {timeout:g} s")

    def promote(self, candidate: str) -> None:
        # kopf ignores changes to annotations under its own storage prefix (assay.dev/), so a changed
        # assay.dev/promote alone waits for the reconcile timer (10 s); a second annotation outside that prefix
        # makes the change visible to the update handler, so rounds do not wait for the timer.
        self.promotions += 1
        nudge = {"assay-benchmark/promotion": str(self.promotions)}
        patch = {"metadata": {"annotations": {"assay.dev/promote": candidate, **nudge}}}
        self.custom.patch_namespaced_custom_object(GROUP, VERSION, self.namespace, "routepolicies", self.name, patch)
        self.wait(lambda s: s.get("phase") == "Promoted" and s.get("promotedCandidate") == candidate, "Promoted")

    def run(
        self,
        rounds: int,
        candidates: Sequence[str],
        *,
        restored: Callable[[], bool],
        serving: Callable[[], str | None] | None = None,
        baseline_model: str = BASELINE,
        progress: str = "",
    ) -> list[Round]:
        """`rounds` promote-then-alert rounds. With `serving` (the model that answers the route now), each
        round also waits for the promoted model to serve before alerting, and times the baseline's return."""
        self.wait(lambda s: bool(s.get("lastKnownGood")), "baseline snapshot")
        results = []
        for number, candidate in zip(range(rounds), itertools.cycle(candidates), strict=False):
            self.promote(candidate)
            if serving is not None:
                wanted = self.status()["activeRoute"]["model"]
                wait_until(answered_by(serving, wanted), f"the proxy serving {wanted}")
            before = metrics_text(self.operator)
            started = time.perf_counter()
            answer = self.webhook.post("/alerts", json=alert_payload(self.namespace, self.name))
            took = time.perf_counter() - started
            is_restored = restored()
            if answer.status_code != 200 or answer.json()["restored"] != [f"{self.namespace}/{self.name}"]:
                raise RuntimeError(f"round {number}: webhook answered {answer.status_code} {answer.text}")
            served = None
            if serving is not None:
                wait_until(answered_by(serving, baseline_model), "the proxy serving the baseline again")
                served = time.perf_counter() - started
            after = metrics_text(self.operator)
            name = "assay_alert_to_rollback_seconds"
            count = metric(after, f"{name}_count") - metric(before, f"{name}_count")
            if count != 1:
                raise RuntimeError(f"round {number}: {count:g} rollback observations instead of 1")
            server = metric(after, f"{name}_sum") - metric(before, f"{name}_sum")
            results.append(Round(server=server, client=took, restored_at_answer=is_restored, served=served))
            if progress and (number + 1) % 50 == 0:
                print(f"  {progress}: {number + 1}/{rounds}", file=sys.stderr, flush=True)
        return results


def answered_by(serving: Callable[[], str | None], model: str) -> Callable[[], bool]:
    return lambda: serving() == model


def wait_until(predicate: Callable[[], bool], what: str, *, timeout: float = 180, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise TimeoutError(f"no {what} within {timeout:g} s")


# --- the adapters ---------------------------------------------------------------------------------------------


def weighted_rounds(api: client.ApiClient, running: OperatorProcess, kind: str, rounds: int) -> list[Round]:
    resource = WEIGHTED[kind]
    namespace = f"bench-{kind.lower()}"
    prepare_namespace(api, namespace)
    custom = client.CustomObjectsApi(api)
    custom.create_namespaced_custom_object(
        resource.group, resource.versions[0], namespace, resource.plural, route_object(kind)
    )
    gateway = {"kind": kind, "routeRef": {"name": ROUTE_OBJECT}}
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "routepolicies", policy_body("bench", gateway))
    restored = baseline_weights(api, kind, namespace, ROUTE_OBJECT)
    return PolicyRounds(api, running, namespace, "bench").run(
        rounds, list(CANDIDATES), restored=restored, progress=kind
    )


def baseline_weights(api: client.ApiClient, kind: str, namespace: str, name: str) -> Callable[[], bool]:
    """A check that the route object's rule is back at the baseline (100, every candidate 0)."""
    resource = WEIGHTED[kind]
    custom = client.CustomObjectsApi(api)

    def restored() -> bool:
        obj: Any = custom.get_namespaced_custom_object(
            resource.group, resource.versions[0], namespace, resource.plural, name
        )
        weights = {ref["name"]: ref["weight"] for ref in obj["spec"]["rules"][0]["backendRefs"]}
        return weights == {BASELINE: 100, **{backend: 0 for backend in CANDIDATES.values()}}

    return restored


def admin_rounds(api: client.ApiClient, running: OperatorProcess, rounds: int) -> list[Round]:
    sys.path.insert(0, str(REPO / "tests" / "contract"))
    from litellm_admin_contract import LiteLLMAdminContract, ProxyState

    namespace = "bench-admin"
    prepare_namespace(api, namespace)
    master_key = "sk-benchmark-master"
    client.CoreV1Api(api).create_namespaced_secret(
        namespace, {"metadata": {"name": "litellm-master"}, "stringData": {"key": master_key}}
    )
    models = {"small": "gpt-small", "mid": "gpt-mid"}
    state = ProxyState(
        master_key=master_key,
        model_groups=[BASELINE, *models.values()],
        db_router_settings={"model_group_alias": {"bench": BASELINE, "other-team": "gpt-mid"}},
    )
    with LiteLLMAdminContract(state) as proxy:
        gateway = {
            "kind": ADMIN,
            "url": proxy.url,
            "masterKeySecretRef": {"name": "litellm-master", "key": "key"},
        }
        client.CustomObjectsApi(api).create_namespaced_custom_object(
            GROUP, VERSION, namespace, "routepolicies", policy_body("bench", gateway, candidates=models)
        )
        return PolicyRounds(api, running, namespace, "bench").run(
            rounds, list(models), restored=lambda: state.aliases().get("bench") == BASELINE, progress=ADMIN
        )


def restart_rounds(rounds: int, workdir: pathlib.Path) -> list[Round]:
    """LiteLLMConfigMap through the local stack: a real LiteLLM proxy, restarted when its Deployment rolls."""
    from assaylab import litellm, simulator
    from assaylab.stack import LocalStack

    if litellm.find_litellm() is None:
        raise SystemExit("LiteLLM is not installed: run hack/litellm.sh (or pass --restart-rounds 0)")
    with LocalStack(
        namespace="bench-restart", executor=False, webhook_token=TOKEN, workdir=workdir, reconcile_interval=10
    ) as stack:
        stack.put_dataset("prompts", simulator.make_dataset(5, seed=1))
        selector = {"matchLabels": {"alertname": ALERT_NAME, "route": "bench"}}
        stack.create(stack.policy("bench", promotion={"automatic": False}, rollback={"alertSelector": selector}))
        proxy = httpx.Client(
            base_url=stack.litellm_url, headers={"Authorization": f"Bearer {litellm.TEST_MASTER_KEY}"}, timeout=30
        )

        def serving() -> str | None:
            try:
                answer = proxy.post(
                    "/v1/chat/completions",
                    json={"model": stack.route, "messages": [{"role": "user", "content": "hello"}]},
                )
            except httpx.TransportError:
                return None  # restarting
            if answer.status_code != 200:
                return None
            return answer.headers["x-litellm-model-name"].split("/", 1)[-1]

        def restored() -> bool:
            config_map = client.CoreV1Api(stack.api).read_namespaced_config_map("litellm-config", stack.namespace)
            aliases = yaml.safe_load((config_map.data or {})["config.yaml"])["router_settings"]["model_group_alias"]
            return bool(aliases[stack.route] == stack.baseline)

        assert stack.api is not None and stack.operator is not None
        return PolicyRounds(stack.api, stack.operator, stack.namespace, "bench").run(
            rounds,
            ["mini", "tiny"],
            restored=restored,
            serving=serving,
            baseline_model=stack.baseline,
            progress=RESTART,
        )


# --- report ---------------------------------------------------------------------------------------------------


def quantile(values: Sequence[float], q: float) -> float:
    """The q-quantile by linear interpolation between order statistics (numpy's default)."""
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def ms(value: float) -> str:
    return f"{value * 1000:.0f}" if value >= 0.1 else f"{value * 1000:.1f}"


def table(results: dict[str, list[Round]]) -> str:
    lines = [
        "| adapter | rounds | server p50 | server p99 | server max | client p50 | client p99 | client max "
        "| restored at answer | served by baseline p50 / max |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for kind, rows in results.items():
        server = [r.server for r in rows]
        answer = [r.client for r in rows]
        served = [r.served for r in rows if r.served is not None]
        lines.append(
            f"| {kind} | {len(rows)} | {ms(quantile(server, 0.5))} ms | {ms(quantile(server, 0.99))} ms "
            f"| {ms(max(server))} ms | {ms(quantile(answer, 0.5))} ms | {ms(quantile(answer, 0.99))} ms "
            f"| {ms(max(answer))} ms | {sum(r.restored_at_answer for r in rows)}/{len(rows)} "
            f"| {f'{statistics.median(served):.1f} s / {max(served):.1f} s' if served else '-'} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--rounds", type=int, default=200, help="rounds per fast adapter (default 200)")
    parser.add_argument("--restart-rounds", type=int, default=10, help="rounds through a restarting LiteLLM")
    parser.add_argument(
        "--only", nargs="*", choices=[*WEIGHTED, ADMIN, RESTART], help="adapters to measure (default: all)"
    )
    args = parser.parse_args()
    chosen = args.only or [*WEIGHTED, ADMIN, RESTART]
    print(f"machine: {machine_note()}", file=sys.stderr)
    results: dict[str, list[Round]] = {}
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="assay-rollback-bench-") as tmp:
        workdir = pathlib.Path(tmp)
        fast = [kind for kind in chosen if kind != RESTART]
        if fast:
            with control_plane(workdir, controller_manager=False) as plane:
                api = api_client(plane.kubeconfig)
                with operator(plane.kubeconfig, workdir / "operator.log") as running:
                    for kind in fast:
                        if kind == ADMIN:
                            results[kind] = admin_rounds(api, running, args.rounds)
                        else:
                            results[kind] = weighted_rounds(api, running, kind, args.rounds)
        if RESTART in chosen and args.restart_rounds > 0:
            results[RESTART] = restart_rounds(args.restart_rounds, workdir / "stack")
    print(table(results))
    print(f"\n{machine_note()}; {time.monotonic() - started:.0f} s in all")


if __name__ == "__main__":
    main()
