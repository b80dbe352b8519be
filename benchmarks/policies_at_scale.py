"""Many RoutePolicies at once: time to steady state, the operator's peak memory and its steady load, against a
real kube-apiserver (+ kube-controller-manager, which turns the evaluation Jobs into Pods).

    .venv/bin/python benchmarks/policies_at_scale.py [--policies 200 1000] [--namespaces 10] [--candidates 1]
        [--observe 60] [--alert-rounds 20] [--timeout 900] [--reconcile-interval 10]

Per size, on a fresh control plane: HTTPRoute objects (one per policy) and a `prompts` ConfigMap per namespace
are created first, then `assay operator` starts (default reconcile interval, 10 s), then the RoutePolicies
are created from 8 client threads. Steady state: every policy has Ready=True and status.lastKnownGood, and
every QualificationRun the policies asked for exists and has been started by the operator (phase Running:
its Job created; no executor runs here, so the runs stay Running and their Pods Pending).

Measured: time from the first create to steady state; the operator's peak RSS (VmHWM in /proc/<pid>/status)
and CPU seconds; then, over --observe seconds of steady state, the operator's CPU share and how many timer
reconciles it completed against the 2 x objects / interval the timers ask for (counted in its log); then
every run is given a verdict (Failed, written to its status as the operator writes one) and measured: the time
until every policy shows it (NotQualified: learnt from its runs' watch events, not from a timer), and over
--observe seconds of that idle state the CPU share, the timer reconciles per second and the RSS; then
--alert-rounds promote-then-alert rounds on one policy (benchmarks/rollback_latency.py's round) among all the
others. Prints a Markdown table.
"""

# The kubernetes client's generated stubs want model objects; this script passes plain dicts.
# mypy: disable-error-code="arg-type"
from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import os
import pathlib
import re
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from kubernetes import client

import rollback_latency as bench
from assay.gateways import httproute

CLIENT_THREADS = 8
TIMERS = ("routepolicy_tick", "routepolicy_resync", "qualificationrun_tick")


@dataclasses.dataclass
class Sample:
    at: float
    rss_kib: int
    hwm_kib: int
    cpu_seconds: float


class ProcessWatch:
    """Samples one process's memory and CPU time every `interval` seconds from /proc."""

    def __init__(self, pid: int, *, interval: float = 1.0) -> None:
        self.pid = pid
        self.interval = interval
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="process-watch", daemon=True)

    def read(self) -> Sample:
        fields = dict(line.split(":", 1) for line in pathlib.Path(f"/proc/{self.pid}/status").read_text().splitlines())
        stat = pathlib.Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        return Sample(
            at=time.monotonic(),
            rss_kib=int(fields["VmRSS"].split()[0]),
            hwm_kib=int(fields["VmHWM"].split()[0]),
            cpu_seconds=(int(stat[11]) + int(stat[12])) / ticks,  # utime + stime
        )

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.samples.append(self.read())
            except (FileNotFoundError, ProcessLookupError):
                return

    def __enter__(self) -> ProcessWatch:
        self.samples.append(self.read())
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


@dataclasses.dataclass
class Result:
    policies: int
    namespaces: int
    runs: int = 0
    jobs: int = 0
    pods: int = 0
    create_seconds: float = 0.0
    ready_seconds: float | None = None
    steady_seconds: float | None = None
    peak_rss_mib: float = 0.0
    steady_rss_mib: float = 0.0
    cpu_to_steady: float = 0.0
    steady_cpu_share: float = 0.0
    ticks_per_second: float = 0.0
    ticks_wanted: float = 0.0
    list_seconds: float = 0.0  # one list of every RoutePolicy, as the webhook makes per delivery
    decided_seconds: float | None = None  # every run given a verdict -> every policy NotQualified
    idle_cpu_share: float = 0.0
    idle_ticks_per_second: float = 0.0
    idle_rss_mib: float = 0.0
    alerts: list[bench.Round] = dataclasses.field(default_factory=list)


def timed(action: Callable[[], Any]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def in_parallel(work: Callable[[Any], Any], items: Iterable[Any]) -> None:
    with concurrent.futures.ThreadPoolExecutor(CLIENT_THREADS) as pool:
        for done in pool.map(work, items):
            del done


def count(api: client.ApiClient, kind: str) -> int:
    """Objects of a kind across namespaces, listed in pages."""
    total, token = 0, None
    while True:
        if kind == "jobs":
            page: Any = client.BatchV1Api(api).list_job_for_all_namespaces(limit=500, _continue=token)
        elif kind == "pods":
            page = client.CoreV1Api(api).list_pod_for_all_namespaces(limit=500, _continue=token)
        else:
            raise ValueError(kind)
        total += len(page.items)
        token = page.metadata._continue
        if not token:
            return total


def custom_items(api: client.ApiClient, plural: str) -> list[dict[str, Any]]:
    result: Any = client.CustomObjectsApi(api).list_cluster_custom_object(bench.GROUP, bench.VERSION, plural)
    return list(result.get("items", []))


def is_ready(policy: dict[str, Any]) -> bool:
    status = policy.get("status") or {}
    ready = any(c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions") or [])
    runs = [c for c in status.get("candidates") or [] if c.get("run")]
    return ready and bool(status.get("lastKnownGood")) and len(runs) == len(policy["spec"]["candidates"])


def ticks(log: pathlib.Path, offset: int) -> tuple[int, int]:
    """Completed timer reconciles logged after byte `offset`, and the log's size now. Each record is logged in
    two formats; kopf's own (`[time] logger [INFO    ] message`) is counted."""
    data = log.read_bytes()
    new = data[offset:]
    done = sum(
        len(re.findall(rf"\[INFO +\] (?:\[[^\]]*\] )?Timer '{tick}' succeeded".encode(), new)) for tick in TIMERS
    )
    return done, len(data)


def run_size(
    size: int,
    *,
    namespaces: int,
    candidates: int,
    observe: float,
    alert_rounds: int,
    timeout: float,
    reconcile_interval: float,
    decide: bool = True,
) -> Result:
    result = Result(policies=size, namespaces=namespaces)
    with tempfile.TemporaryDirectory(prefix="assay-scale-bench-") as tmp:
        workdir = pathlib.Path(tmp)
        with bench.control_plane(workdir) as plane:
            api = bench.api_client(plane.kubeconfig)
            spaces = [f"scale-{n}" for n in range(namespaces)]
            names = [(spaces[i % namespaces], f"route-{i}") for i in range(size)]
            for namespace in spaces:
                bench.prepare_namespace(api, namespace)
            resource = httproute.HTTP_ROUTE
            custom = client.CustomObjectsApi(api)
            in_parallel(
                lambda item: custom.create_namespaced_custom_object(
                    resource.group,
                    resource.versions[0],
                    item[0],
                    resource.plural,
                    bench.route_object(httproute.KIND, item[1]),
                ),
                names,
            )
            chosen = dict(list(bench.CANDIDATES.items())[:candidates])
            # The policy the alert rounds use has both candidates: promotions alternate between them, since
            # the same assay.dev/promote value does not act twice.
            candidates_of = {name: bench.CANDIDATES if name == names[0][1] else chosen for _, name in names}
            runs_wanted = sum(len(c) for c in candidates_of.values())
            log_path = workdir / "operator.log"
            with bench.operator(plane.kubeconfig, log_path, reconcile_interval=reconcile_interval) as running:
                assert running.proc is not None
                with ProcessWatch(running.proc.pid) as watch:
                    started = time.monotonic()
                    cpu_at_start = watch.samples[0].cpu_seconds
                    in_parallel(
                        lambda item: custom.create_namespaced_custom_object(
                            bench.GROUP,
                            bench.VERSION,
                            item[0],
                            "routepolicies",
                            bench.policy_body(
                                item[1],
                                {"kind": httproute.KIND, "routeRef": {"name": item[1]}},
                                candidates=candidates_of[item[1]],
                            ),
                        ),
                        names,
                    )
                    result.create_seconds = time.monotonic() - started
                    print(f"  {size}: created in {result.create_seconds:.0f} s", file=sys.stderr, flush=True)
                    wait_steady(api, result, size=size, runs_wanted=runs_wanted, started=started, timeout=timeout)
                    steady = watch.read()
                    result.cpu_to_steady = steady.cpu_seconds - cpu_at_start
                    result.steady_rss_mib = steady.rss_kib / 1024

                    result.steady_cpu_share, result.ticks_per_second, _ = observed(watch, log_path, observe)
                    result.ticks_wanted = (size + runs_wanted) / reconcile_interval

                    # Every run gets its verdict (written as the operator writes one; no evaluator runs here):
                    # each policy learns it from its runs' watch events and goes idle (NotQualified).
                    if decide:
                        decided_at = time.monotonic()
                        in_parallel(lambda run: decide_run(custom, run), custom_items(api, "qualificationruns"))
                        wait_decided(api, result, size=size, started=decided_at, timeout=timeout)
                        time.sleep(reconcile_interval)  # the last timers in flight finish
                        result.idle_cpu_share, result.idle_ticks_per_second, rss = observed(watch, log_path, observe)
                        result.idle_rss_mib = rss

                    result.list_seconds = statistics.median(
                        timed(lambda: custom_items(api, "routepolicies")) for _ in range(5)
                    )
                    result.runs = len(custom_items(api, "qualificationruns"))
                    result.jobs = count(api, "jobs")
                    result.pods = count(api, "pods")
                    if alert_rounds:
                        namespace, name = names[0]
                        rounds = bench.PolicyRounds(api, running, namespace, name)
                        restored = bench.baseline_weights(api, httproute.KIND, namespace, name)
                        result.alerts = rounds.run(alert_rounds, list(bench.CANDIDATES), restored=restored)
                        rounds.webhook.close()
                    result.peak_rss_mib = max(s.hwm_kib for s in [*watch.samples, watch.read()]) / 1024
    return result


def observed(watch: ProcessWatch, log_path: pathlib.Path, seconds: float) -> tuple[float, float, float]:
    """Over `seconds` from now: the operator's CPU share of a core, its timer reconciles per second, and its RSS
    (MiB) at the end."""
    before = watch.read()
    _, offset = ticks(log_path, 0)
    time.sleep(seconds)
    done, _ = ticks(log_path, offset)
    after = watch.read()
    elapsed = after.at - before.at
    return (after.cpu_seconds - before.cpu_seconds) / elapsed, done / elapsed, after.rss_kib / 1024


def decide_run(custom: client.CustomObjectsApi, run: dict[str, Any]) -> None:
    meta = run["metadata"]
    verdict = {"phase": "Failed", "reason": "BelowMargin", "message": "benchmark: a verdict written by hand"}
    custom.patch_namespaced_custom_object_status(
        bench.GROUP, bench.VERSION, meta["namespace"], "qualificationruns", meta["name"], {"status": verdict}
    )


def wait_decided(api: client.ApiClient, result: Result, *, size: int, started: float, timeout: float) -> None:
    """Poll until every policy shows its runs' verdicts (phase NotQualified)."""
    while time.monotonic() - started < timeout:
        settled = sum(
            1 for p in custom_items(api, "routepolicies") if (p.get("status") or {}).get("phase") == "NotQualified"
        )
        if settled == size:
            result.decided_seconds = time.monotonic() - started
            return
        time.sleep(1)
    print(f"  {size}: policies did not all reach NotQualified within {timeout:g} s", file=sys.stderr)


def wait_steady(
    api: client.ApiClient, result: Result, *, size: int, runs_wanted: int, started: float, timeout: float
) -> None:
    """Poll until every policy is Ready with a baseline snapshot and every run was started."""
    last_report = 0.0
    while time.monotonic() - started < timeout:
        ready = sum(is_ready(p) for p in custom_items(api, "routepolicies"))
        if ready == size and result.ready_seconds is None:
            result.ready_seconds = time.monotonic() - started
        runs = custom_items(api, "qualificationruns")
        running = sum(1 for r in runs if (r.get("status") or {}).get("phase") == "Running")
        if ready == size and running == runs_wanted:
            result.steady_seconds = time.monotonic() - started
            return
        if time.monotonic() - last_report > 30:
            last_report = time.monotonic()
            print(
                f"  {size}: {time.monotonic() - started:.0f} s: {ready} ready, {running}/{len(runs)} runs started",
                file=sys.stderr,
                flush=True,
            )
        time.sleep(2)
    print(f"  {size}: not steady within {timeout:g} s", file=sys.stderr)


def table(results: list[Result]) -> str:
    def seconds(value: float | None) -> str:
        return f"{value:.0f} s" if value is not None else "not reached"

    lines = [
        "| policies | QualificationRuns / Jobs / Pods | created in | all Ready + lastKnownGood | steady state "
        "| peak RSS (VmHWM) | RSS at steady | CPU to steady | steady CPU | timer reconciles done / asked "
        "| verdicts to all policies | idle CPU | idle timer reconciles | idle RSS "
        "| list all policies | alert server p50 / p99 | alert client p50 / p99 |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        server = [a.server for a in r.alerts]
        answer = [a.client for a in r.alerts]
        alerts = (
            (
                f"{bench.ms(bench.quantile(server, 0.5))} / {bench.ms(bench.quantile(server, 0.99))} ms",
                f"{bench.ms(bench.quantile(answer, 0.5))} / {bench.ms(bench.quantile(answer, 0.99))} ms",
            )
            if r.alerts
            else ("-", "-")
        )
        lines.append(
            f"| {r.policies} in {r.namespaces} namespaces | {r.runs} / {r.jobs} / {r.pods} "
            f"| {seconds(r.create_seconds)} "
            f"| {seconds(r.ready_seconds)} | {seconds(r.steady_seconds)} | {r.peak_rss_mib:.0f} MiB "
            f"| {r.steady_rss_mib:.0f} MiB | {r.cpu_to_steady:.0f} s | {r.steady_cpu_share:.0%} of a core "
            f"| {r.ticks_per_second:.0f}/s of {r.ticks_wanted:.0f}/s "
            f"| {seconds(r.decided_seconds)} | {r.idle_cpu_share:.1%} of a core | {r.idle_ticks_per_second:.2f}/s "
            f"| {r.idle_rss_mib:.0f} MiB | {bench.ms(r.list_seconds)} ms "
            f"| {alerts[0]} | {alerts[1]} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--policies", type=int, nargs="+", default=[1000], help="sizes to measure (default 1000)")
    parser.add_argument("--namespaces", type=int, default=10, help="policies are spread over this many namespaces")
    parser.add_argument("--candidates", type=int, default=1, choices=[1, 2], help="candidates per policy")
    parser.add_argument("--observe", type=float, default=60, help="seconds of steady state observed")
    parser.add_argument(
        "--reconcile-interval", type=float, default=10, help="the operator's timer interval (its default: 10 s)"
    )
    parser.add_argument("--alert-rounds", type=int, default=20, help="promote-then-alert rounds at that scale")
    parser.add_argument("--timeout", type=float, default=900, help="give up on steady state after this long")
    args = parser.parse_args()
    print(f"machine: {bench.machine_note()}", file=sys.stderr)
    started = time.monotonic()
    results = []
    for size in args.policies:
        results.append(
            run_size(
                size,
                namespaces=args.namespaces,
                candidates=args.candidates,
                observe=args.observe,
                reconcile_interval=args.reconcile_interval,
                alert_rounds=args.alert_rounds,
                timeout=args.timeout,
            )
        )
        print(table(results[-1:]), file=sys.stderr, flush=True)
    print(table(results))
    print(f"\n{bench.machine_note()}; {time.monotonic() - started:.0f} s in all")


if __name__ == "__main__":
    main()
