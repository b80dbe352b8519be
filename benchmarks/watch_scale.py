"""The live quality watch at 100 routes: sample-to-verdict latency, throughput, and the operator's CPU and RSS,
with the real operator (a process) against a real kube-apiserver.

    .venv/bin/python benchmarks/watch_scale.py [--routes 100] [--rate 1.0] [--seconds 120] [--idle 60]
        [--burst-rate 20] [--burst-seconds 60] [--llm-latency-ms 400] [--route-check-interval 30]

Setup, on one fresh control plane (etcd + kube-apiserver, no controller-manager): `--routes` RoutePolicies in
one namespace, each with spec.watch (sampleRate 1, caps far above what is sent, so no sample is refused) on
the gateway the sampler exists for, LiteLLM through its admin API (tests/contract's stand-in of the proxy's
admin API holds the aliases: one proxy, one alias per route). Each is promoted by hand to its candidate, one
after another (the adapter reads, changes and writes the whole alias map, so promotions to one proxy are not
made concurrently here), until every route is Promoted and listed by the recorder's GET /v1/sampling. Their
QualificationRuns are given a verdict first (no evaluator runs here), so nothing but the watch and the route
writer's read-back of each route (every `--route-check-interval` s, the operator's default 30) is in flight.

Samples reach the operator's recorder exactly as in production: assay's own LiteLLM callback
(`assay.watch.litellm_sampler.Sampler`, the file LiteLLM loads) is called with the logging kwargs LiteLLM
1.108.7 passes it (the alias asked for, the deployment that served it, the messages, the served answer), reads
GET /v1/sampling itself and POSTs /v1/samples with its bearer token. The only addition is an httpx event hook
on its client that timestamps each delivery's answer (202 queued). The served answers are the simulator's own
answers of the candidate model, computed in-process (no application request is made: what is measured is the
watch, not LiteLLM).

The operator's replay to the baseline and its two judge calls go straight to the LLM simulator (the policies'
qualification endpoint), not through a LiteLLM proxy: a LiteLLM process on the same two cores would take CPU
from the operator and add its own per-call overhead, and the proxy is already in the replay path of
tests/integration/test_quality_watch.py. Every simulated call takes `--llm-latency-ms` (uniform jitter of
half of it), a stated stand-in for a provider's latency; with 0 the figures are the operator's own overhead.

Phases, one operator throughout, its CPU time and RSS read from /proc every second:

1. idle: every route promoted and watched, no sample, `--idle` seconds (the reference);
2. 10 routes: `--rate` samples a second spread round robin over the first 10 routes, `--seconds`;
3. all routes: the same rate over every route, `--seconds`;
4. burst: `--burst-rate` a second over every route, `--burst-seconds`, open loop (is the queue's 429 reached,
   and how many judged samples a second at most).

Sample-to-verdict latency: from the recorder's 202 for a sample to the watch event (one watch on
RoutePolicies in this process) showing that policy's status.watch.samples (or judgeErrors) one higher: the
score recorded in status and taken by the detector. In phases 2 and 3 a route gets a new sample only after the
previous one's verdict, so each increment belongs to exactly one sample (a route still waiting is skipped for
the next). Prompt and answer text is never logged or printed. Prints Markdown tables.
"""

# The kubernetes client's generated stubs want model objects; this script passes plain dicts.
# mypy: disable-error-code="arg-type"
from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import pathlib
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import httpx
from kubernetes import client, watch

import policies_at_scale as scale
import rollback_latency as bench
from assay.watch import litellm_sampler
from assaylab import simulator as sim

NAMESPACE = "bench-watch"
RECORDER_TOKEN = "benchmark-recorder-token"
BASELINE = "gpt-big"
CANDIDATE = "gpt-small"
JUDGE = "judge-large"
WATCH = {
    "sampleRate": 1.0,
    "maxSamplesPerDay": 1_000_000,
    "maxCostPerDay": 100_000,
    "meanDaysBetweenFalseAlarms": 1000,
}
QUESTIONS = 200


def simulator_config(latency_ms: float) -> dict[str, Any]:
    timing = {"latency_ms": latency_ms, "latency_jitter_ms": latency_ms / 2}
    return {
        "seed": 13,
        "models": {
            BASELINE: {"quality": 0.8, **timing},
            CANDIDATE: {"quality": 0.8, **timing},  # as good as the baseline: no drift, no alarm
            JUDGE: {"role": "judge", "noise": 0.05, **timing},
        },
    }


def policy(name: str, *, admin_url: str, endpoint: str) -> dict[str, Any]:
    body = bench.policy_body(
        name,
        {"kind": bench.ADMIN, "url": admin_url, "masterKeySecretRef": {"name": "litellm-master", "key": "key"}},
        candidates={"small": CANDIDATE},
    )
    spec = body["spec"]
    spec["qualification"]["endpoint"] = {"url": endpoint}
    spec["qualification"]["judge"] = {"model": JUDGE}
    spec["watch"] = dict(WATCH)
    return body


# --- the verdicts, from one watch on RoutePolicies ------------------------------------------------------------


class Verdicts:
    """status.watch.samples + judgeErrors per policy, and the monotonic time of every increment seen."""

    def __init__(self, api: client.ApiClient) -> None:
        self.custom = client.CustomObjectsApi(api)
        self.counts: dict[str, int] = {}
        self.failures = 0  # watch restarts: many in a row mean the kube-apiserver is gone
        self.alarms: set[str] = set()
        self.promoted: set[str] = set()
        self.changed = threading.Condition()
        self.times: dict[str, list[float]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="verdicts", daemon=True)

    def start(self) -> Verdicts:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            stream = watch.Watch()
            try:
                for event in stream.stream(
                    self.custom.list_namespaced_custom_object,
                    bench.GROUP,
                    bench.VERSION,
                    NAMESPACE,
                    "routepolicies",
                    timeout_seconds=300,
                ):
                    self._observe(event["object"], time.monotonic())
                    self.failures = 0
                    if self._stop.is_set():
                        break
            except Exception as exc:  # a dropped watch is resumed; a count seen twice is not an increment
                if self._stop.is_set():
                    return
                self.failures += 1
                if self.failures == 1 or self.failures % 50 == 0:
                    print(f"  verdict watch restarted: {type(exc).__name__}", file=sys.stderr, flush=True)
                time.sleep(0.2)

    def _observe(self, obj: dict[str, Any], at: float) -> None:
        name = obj["metadata"]["name"]
        status = obj.get("status") or {}
        watch_status = status.get("watch") or {}
        count = int(watch_status.get("samples", 0)) + int(watch_status.get("judgeErrors", 0))
        with self.changed:
            if status.get("phase") == "Promoted" and status.get("promotedCandidate") == "small":
                self.promoted.add(name)
            if watch_status.get("alarmedAt") is not None:
                self.alarms.add(name)
            before = self.counts.get(name, 0)
            if count > before:
                self.times.setdefault(name, []).extend([at] * (count - before))
                self.counts[name] = count
                self.changed.notify_all()

    def count(self, name: str) -> int:
        with self.changed:
            return self.counts.get(name, 0)

    def total(self) -> int:
        with self.changed:
            return sum(self.counts.values())


def judge_errors(api: client.ApiClient) -> int:
    items = scale.custom_items(api, "routepolicies")
    return sum(int(((p.get("status") or {}).get("watch") or {}).get("judgeErrors", 0)) for p in items)


# --- the sampler, as LiteLLM calls it ----------------------------------------------------------------------------


class Deliveries:
    """The answers to the sampler's deliveries: per policy, the time of each 202 and its outcome."""

    def __init__(self) -> None:
        self.accepted: dict[str, list[float]] = {}
        self.outcomes: dict[str, int] = {}
        self.latency: list[float] = []
        self.waiting: asyncio.Event = asyncio.Event()

    async def on_request(self, request: httpx.Request) -> None:
        request.extensions["sent_at"] = time.monotonic()

    async def on_response(self, response: httpx.Response) -> None:
        if response.request.url.path != litellm_sampler.SAMPLES_PATH:
            return
        at = time.monotonic()
        await response.aread()
        sent = response.request.extensions.get("sent_at")
        if isinstance(sent, float):
            self.latency.append(at - sent)
        try:
            outcome = str(response.json().get("outcome"))
        except (ValueError, AttributeError):
            outcome = f"HTTP {response.status_code}"
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1
        if response.status_code == 202 and outcome == "queued":
            policy_name = json.loads(response.request.content)["policy"].split("/", 1)[1]
            self.accepted.setdefault(policy_name, []).append(at)


def timed_sampler(recorder_url: str, deliveries: Deliveries) -> litellm_sampler.Sampler:
    sampler = litellm_sampler.Sampler(recorder_url=recorder_url, token=RECORDER_TOKEN, refresh_seconds=15)
    # The client Sampler._http would make (same timeout, no redirects), with hooks that only take the time.
    sampler._client = httpx.AsyncClient(
        timeout=litellm_sampler.DELIVERY_TIMEOUT_SECONDS,
        follow_redirects=False,
        event_hooks={"request": [deliveries.on_request], "response": [deliveries.on_response]},
    )
    return sampler


def logged_call(route: str, record: dict[str, Any], answer: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The kwargs and response object LiteLLM 1.108.7 hands a success callback for a request to alias `route`
    served by the candidate's deployment (as assay.watch.litellm_sampler.served reads them)."""
    messages = record["messages"]
    kwargs = {
        "model": CANDIDATE,
        "messages": messages,
        "litellm_params": {
            "metadata": {"model_group": route, "model_group_alias": route, "deployment_model_name": CANDIDATE}
        },
        "proxy_server_request": {"body": {"model": route, "messages": messages}},
        "standard_logging_object": {"model_group": route, "request_tags": []},
    }
    response = {
        "choices": [{"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": sim.prompt_tokens(messages), "completion_tokens": sim.count_tokens(answer)},
    }
    return kwargs, response


@dataclasses.dataclass
class Phase:
    name: str
    routes: int
    rate: float
    seconds: float = 0.0
    sent: int = 0
    skipped: int = 0  # a route still waiting for its previous verdict (closed loop only)
    verdicts: int = 0
    latencies: list[float] = dataclasses.field(default_factory=list)
    outcomes: dict[str, int] = dataclasses.field(default_factory=dict)
    cpu_share: float = 0.0
    rss_mib: float = 0.0
    accept_p50: float = 0.0
    drain_seconds: float = 0.0


async def drive(
    phase: Phase,
    *,
    names: Sequence[str],
    sampler: litellm_sampler.Sampler,
    deliveries: Deliveries,
    verdicts: Verdicts,
    calls: Sequence[tuple[dict[str, Any], dict[str, Any]]],
    open_loop: bool,
) -> None:
    """`phase.rate` sampled calls a second over `names`, round robin, for `phase.seconds`."""
    chosen = list(names[: phase.routes])
    pending: dict[str, int] = {}  # route -> the verdict count that answers its outstanding sample
    started = time.monotonic()
    slot = 0
    turn = 0
    while time.monotonic() - started < phase.seconds:
        if verdicts.failures > 25:
            raise RuntimeError("the watch on RoutePolicies keeps failing: is the kube-apiserver still running?")
        target = started + slot / phase.rate
        await asyncio.sleep(max(0.0, target - time.monotonic()))
        slot += 1
        for _ in range(len(chosen)):
            name = chosen[turn % len(chosen)]
            turn += 1
            if open_loop or verdicts.count(name) >= pending.get(name, 0):
                break
        else:
            phase.skipped += 1
            continue
        pending[name] = verdicts.count(name) + 1
        kwargs, response = calls[phase.sent % len(calls)]
        route_kwargs = json.loads(json.dumps(kwargs).replace(CANDIDATE_ROUTE, name))
        await sampler.async_log_success_event(route_kwargs, response, None, None)
        phase.sent += 1


CANDIDATE_ROUTE = "__route__"


def latencies_of(deliveries: Deliveries, verdicts: Verdicts, names: Sequence[str], since: float) -> list[float]:
    """For each sample accepted after `since`: the time from its 202 to the next verdict of its policy."""
    out = []
    with verdicts.changed:
        times = {n: list(v) for n, v in verdicts.times.items()}
    for name in names:
        accepted = [t for t in deliveries.accepted.get(name, []) if t >= since]
        decided = [t for t in times.get(name, []) if t >= since]
        for a in accepted:
            later = [d for d in decided if d >= a]
            if later:
                out.append(later[0] - a)
                decided.remove(later[0])
    return out


async def run_phases(
    args: argparse.Namespace,
    *,
    names: Sequence[str],
    recorder_url: str,
    verdicts: Verdicts,
    process: scale.ProcessWatch,
    calls: Sequence[tuple[dict[str, Any], dict[str, Any]]],
) -> tuple[list[Phase], Deliveries]:
    deliveries = Deliveries()
    sampler = timed_sampler(recorder_url, deliveries)
    listed = await sampler.routes()
    if sorted(listed) != sorted(names):
        raise RuntimeError(f"GET /v1/sampling lists {len(listed)} routes, not the {len(names)} promoted")
    phases: list[Phase] = []

    idle = Phase("idle: promoted and watched, no samples", len(names), 0.0, seconds=args.idle)
    before = process.read()
    await asyncio.sleep(args.idle)
    after = process.read()
    idle.cpu_share = (after.cpu_seconds - before.cpu_seconds) / (after.at - before.at)
    idle.rss_mib = after.rss_kib / 1024
    phases.append(idle)
    print(f"  idle: {idle.cpu_share:.1%} of a core", file=sys.stderr, flush=True)

    plan = [
        (Phase(f"{min(10, len(names))} routes sampled", min(10, len(names)), args.rate, args.seconds), False),
        (Phase(f"{len(names)} routes sampled", len(names), args.rate, args.seconds), False),
        (Phase(f"burst, {len(names)} routes, open loop", len(names), args.burst_rate, args.burst_seconds), True),
    ]
    for phase, open_loop in plan:
        if phase.seconds <= 0:
            continue
        outcomes_before = dict(deliveries.outcomes)
        accept_before = len(deliveries.latency)
        total_before = verdicts.total()
        since = time.monotonic()
        before = process.read()
        await drive(
            phase,
            names=names,
            sampler=sampler,
            deliveries=deliveries,
            verdicts=verdicts,
            calls=calls,
            open_loop=open_loop,
        )
        after = process.read()
        phase.cpu_share = (after.cpu_seconds - before.cpu_seconds) / (after.at - before.at)
        phase.rss_mib = after.rss_kib / 1024
        phase.verdicts = verdicts.total() - total_before  # within the phase's own time
        # let the queue drain before the next phase (and count how long that takes)
        drained_at = time.monotonic()
        queued_before = outcomes_before.get("queued", 0)
        while time.monotonic() - drained_at < 60:
            if verdicts.total() - total_before >= deliveries.outcomes.get("queued", 0) - queued_before:
                break
            await asyncio.sleep(0.1)
        phase.drain_seconds = time.monotonic() - drained_at
        phase.outcomes = {
            k: v - outcomes_before.get(k, 0) for k, v in deliveries.outcomes.items() if v - outcomes_before.get(k, 0)
        }
        accepts = deliveries.latency[accept_before:]
        phase.accept_p50 = statistics.median(accepts) if accepts else 0.0
        if not open_loop:
            phase.latencies = latencies_of(deliveries, verdicts, names[: phase.routes], since)
        phases.append(phase)
        print(
            f"  {phase.name}: sent {phase.sent}, {phase.verdicts} verdicts in the phase, {phase.cpu_share:.1%} of a "
            f"core, outcomes {phase.outcomes}",
            file=sys.stderr,
            flush=True,
        )
    if sampler._client is not None:
        await sampler._client.aclose()
    return phases, deliveries


def wait_status(
    custom: client.CustomObjectsApi, name: str, predicate: Callable[[dict[str, Any]], bool], what: str
) -> None:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        obj: Any = custom.get_namespaced_custom_object(bench.GROUP, bench.VERSION, NAMESPACE, "routepolicies", name)
        if predicate(obj.get("status") or {}):
            return
        time.sleep(0.05)
    raise TimeoutError(f"{NAMESPACE}/{name}: no {what} within 300 s")


def settle(api: client.ApiClient, custom: client.CustomObjectsApi, size: int) -> None:
    """Every policy's QualificationRun gets a verdict (Failed, written as the operator writes one; no evaluator
    runs here) and every policy shows it (NotQualified): nothing is left in flight, as after a real
    qualification, so the idle reference is the watch's own cost and not timers of runs that never end."""
    deadline = time.monotonic() + 300
    while len(runs := scale.custom_items(api, "qualificationruns")) < size:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(runs)} of {size} QualificationRuns created within 300 s")
        time.sleep(1)
    scale.in_parallel(lambda run: scale.decide_run(custom, run), runs)
    while True:
        phases = [(p.get("status") or {}).get("phase") for p in scale.custom_items(api, "routepolicies")]
        if phases.count("NotQualified") == size:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{phases.count('NotQualified')} of {size} policies NotQualified within 300 s")
        time.sleep(1)


def promote_all(api: client.ApiClient, names: Sequence[str]) -> float:
    """Promote every policy to its candidate, one after another; seconds taken."""
    custom = client.CustomObjectsApi(api)
    started = time.monotonic()
    for number, name in enumerate(names):
        wait_status(custom, name, lambda s: bool(s.get("lastKnownGood")), "baseline snapshot")
        patch = {"metadata": {"annotations": {"assay.dev/promote": "small", "assay-benchmark/promotion": "1"}}}
        custom.patch_namespaced_custom_object(bench.GROUP, bench.VERSION, NAMESPACE, "routepolicies", name, patch)
        wait_status(
            custom,
            name,
            lambda s: s.get("phase") == "Promoted" and s.get("promotedCandidate") == "small" and "pending" not in s,
            "Promoted",
        )
        if (number + 1) % 25 == 0:
            print(f"  promoted {number + 1}/{len(names)}", file=sys.stderr, flush=True)
    return time.monotonic() - started


def ms(value: float) -> str:
    return bench.ms(value)


def table(phases: Sequence[Phase], idle: Phase) -> str:
    lines = [
        "| phase | routes | offered / s | sent | 202 queued / 429 dropped / ignored | verdicts / s in phase "
        "| 202 p50 | sample-to-verdict p50 / p90 / p99 / max | operator CPU | CPU vs idle | CPU per verdict | RSS |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for p in phases:
        lat = p.latencies
        latency = (
            f"{ms(bench.quantile(lat, 0.5))} / {ms(bench.quantile(lat, 0.9))} / {ms(bench.quantile(lat, 0.99))} "
            f"/ {ms(max(lat))} ms (n={len(lat)})"
            if lat
            else "-"
        )
        outcomes = (
            f"{p.outcomes.get('queued', 0)} / {p.outcomes.get('dropped', 0)} / {p.outcomes.get('ignored', 0)}"
            if p.rate
            else "-"
        )
        ratio = f"{p.cpu_share / idle.cpu_share:.1f}x" if idle.cpu_share > 0 and p is not idle else "1x"
        # CPU above idle, per verdict recorded in the phase
        per = (p.cpu_share - idle.cpu_share) * p.seconds / p.verdicts if p.verdicts else None
        per_text = f"{per * 1000:.0f} ms" if per is not None else "-"
        lines.append(
            f"| {p.name} | {p.routes} | {p.rate:g} | {p.sent if p.rate else '-'} | {outcomes} "
            f"| {p.verdicts / p.seconds if p.rate else 0:.2f} | {ms(p.accept_p50) + ' ms' if p.rate else '-'} "
            f"| {latency} | {p.cpu_share:.1%} of a core | {ratio} | {per_text} "
            f"| {p.rss_mib:.0f} MiB |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--routes", type=int, default=100, help="watched RoutePolicies (default 100)")
    parser.add_argument("--rate", type=float, default=1.0, help="samples a second in phases 2 and 3 (default 1)")
    parser.add_argument("--seconds", type=float, default=120, help="length of phases 2 and 3 (default 120)")
    parser.add_argument("--idle", type=float, default=60, help="length of the idle reference (default 60)")
    parser.add_argument("--burst-rate", type=float, default=20, help="samples a second in the burst (default 20)")
    parser.add_argument("--burst-seconds", type=float, default=60, help="length of the burst (0: none)")
    parser.add_argument("--llm-latency-ms", type=float, default=400, help="every simulated call's mean latency")
    parser.add_argument(
        "--route-check-interval",
        type=float,
        default=30,
        help="seconds between the route writer's read-backs of each route (the operator's default: 30)",
    )
    parser.add_argument("--operator-log", type=pathlib.Path, help="keep the operator's log here")
    args = parser.parse_args()
    # The sampler warns on every 429 (policy and status only); the outcomes are counted and tabled instead.
    logging.getLogger(litellm_sampler.logger.name).setLevel(logging.ERROR)
    print(f"machine: {bench.machine_note()}", file=sys.stderr)
    started = time.monotonic()
    names = [f"route-{i}" for i in range(args.routes)]
    config = simulator_config(args.llm_latency_ms)
    parsed = sim.parse_config(config)
    records = sim.make_dataset(QUESTIONS, seed=13)
    calls = [
        logged_call(CANDIDATE_ROUTE, r, sim.model_answer(parsed, CANDIDATE, r["messages"][-1]["content"]).text)
        for r in records
    ]
    sys.path.insert(0, str(bench.REPO / "tests" / "contract"))
    from litellm_admin_contract import LiteLLMAdminContract, ProxyState

    with tempfile.TemporaryDirectory(prefix="assay-watch-bench-") as tmp, sim.BackgroundSimulator(config) as llm:
        workdir = pathlib.Path(tmp)
        master_key = "sk-benchmark-master"
        state = ProxyState(
            master_key=master_key,
            model_groups=[BASELINE, CANDIDATE],
            db_router_settings={"model_group_alias": dict.fromkeys(names, BASELINE)},
        )
        with bench.control_plane(workdir, controller_manager=False) as plane, LiteLLMAdminContract(state) as proxy:
            api = bench.api_client(plane.kubeconfig)
            bench.prepare_namespace(api, NAMESPACE)
            client.CoreV1Api(api).create_namespaced_secret(
                NAMESPACE, {"metadata": {"name": "litellm-master"}, "stringData": {"key": master_key}}
            )
            log_path = workdir / "operator.log"
            with bench.operator(
                plane.kubeconfig,
                log_path,
                ASSAY_RECORDER_TOKEN=RECORDER_TOKEN,
                ASSAY_ROUTE_CHECK_INTERVAL=f"{args.route_check_interval:g}",
            ) as running:
                assert running.proc is not None
                verdicts = Verdicts(api).start()
                with scale.ProcessWatch(running.proc.pid) as process:
                    custom = client.CustomObjectsApi(api)
                    scale.in_parallel(
                        lambda name: custom.create_namespaced_custom_object(
                            bench.GROUP,
                            bench.VERSION,
                            NAMESPACE,
                            "routepolicies",
                            policy(name, admin_url=proxy.url, endpoint=llm.base_url),
                        ),
                        names,
                    )
                    settle(api, custom, len(names))
                    took = promote_all(api, names)
                    wrong = {n: a for n, a in state.aliases().items() if a != CANDIDATE}
                    if wrong:
                        raise RuntimeError(f"{len(wrong)} aliases not at the candidate after promotion")
                    print(f"  {len(names)} promoted in {took:.0f} s", file=sys.stderr, flush=True)
                    time.sleep(20)  # the promotions' last reconciles and status writes finish
                    recorder_url = f"http://127.0.0.1:{running.webhook_port}"
                    phases, _ = asyncio.run(
                        run_phases(
                            args,
                            names=names,
                            recorder_url=recorder_url,
                            verdicts=verdicts,
                            process=process,
                            calls=calls,
                        )
                    )
                    peak = max(s.hwm_kib for s in [*process.samples, process.read()]) / 1024
                errors = judge_errors(api)
                if args.operator_log:
                    shutil.copyfile(log_path, args.operator_log)
                stats = llm.stats()["models"]
                verdicts.stop()
    print(table(phases, phases[0]))
    print(
        f"\n{args.routes} routes promoted one after another in {took:.0f} s; peak RSS (VmHWM) {peak:.0f} MiB; "
        f"judge errors {errors}; alarms {len(verdicts.alarms)}; simulator requests: "
        + ", ".join(f"{m} {s['requests']}" for m, s in stats.items())
        + f"; simulated LLM latency {args.llm_latency_ms:g} ms +- {args.llm_latency_ms / 2:g} ms per call"
        + f"; route read-back every {args.route_check_interval:g} s"
    )
    print(f"{bench.machine_note()}; {time.monotonic() - started:.0f} s in all")


if __name__ == "__main__":
    main()
