"""What the operator's spend loop costs at 1,000 (and 5,000) RoutePolicies: queries to Prometheus a round and a
minute, and the operator's CPU a round, against 10 policies measured in the same run.

    .venv/bin/python benchmarks/spend_queries.py [--rounds 7] [--sizes 10 1000 5000]

A real Prometheus (Debian's, `assaylab.monitoring`) scrapes a prometheus_client exporter that plays a LiteLLM
proxy with 5,000 routes: `litellm_spend_metric_total` and `litellm_proxy_total_requests_metric_total` per route
(with LiteLLM's `tag_assay_watch` label), incremented between scrapes. The spend loop's read
(`handle_spend.read_round`: every policy's 1d / 7d / 30d spend and requests, and the month-end forecast's days)
runs over N policy bodies, each on its own route. The status writes are not part of it: a policy is written
only when a figure changed, which is a property of the traffic, not of N. The first round reads the month's
complete days. Later rounds keep them and ask only the windows and today.

Prints a Markdown table: queries a round (first, then steady), queries a minute at the default interval
(ASSAY_SPEND_INTERVAL, 300 s), median wall and CPU time a round, and the CPU a round against N = 10.
"""

from __future__ import annotations

import argparse
import datetime
import os
import pathlib
import statistics
import sys
import tempfile
import threading
import time

import prometheus_client
from prometheus_client import core

sys.path[:0] = [
    str(pathlib.Path(__file__).resolve().parents[1] / "operator"),
    str(pathlib.Path(__file__).resolve().parents[1] / "lab"),
]

from assay.controllers import handle_spend  # noqa: E402
from assay.spend import prometheus, reading  # noqa: E402
from assaylab import monitoring  # noqa: E402

os.environ.setdefault("ASSAY_EGRESS_ALLOW_LOOPBACK", "true")  # the benchmark's Prometheus is on loopback
ROUTES = 5000
INTERVAL_S = float(os.environ.get("ASSAY_SPEND_INTERVAL", "300"))


class FakeLiteLLM:
    """LiteLLM's two counters for ROUTES routes, moving on every scrape."""

    def __init__(self) -> None:
        self.ticks = 0
        self._lock = threading.Lock()

    def collect(self):  # type: ignore[no-untyped-def]
        with self._lock:
            self.ticks += 1
            ticks = self.ticks
        spend = core.CounterMetricFamily("litellm_spend_metric", "USD", labels=["requested_model", "tag_assay_watch"])
        requests = core.CounterMetricFamily(
            "litellm_proxy_total_requests_metric", "requests", labels=["requested_model", "tag_assay_watch"]
        )
        for index in range(ROUTES):
            spend.add_metric([f"route-{index}", "false"], ticks * 0.001 * (1 + index % 7))
            requests.add_metric([f"route-{index}", "false"], ticks * (1 + index % 7))
        yield spend
        yield requests


def policy(index: int) -> dict:
    return {
        "apiVersion": "assay.dev/v1alpha1",
        "kind": "RoutePolicy",
        "metadata": {"name": f"p{index}", "namespace": "bench", "uid": f"uid-{index}", "generation": 1},
        "spec": {"promptType": f"route-{index}", "gateway": {"kind": "LiteLLMConfigMap"}},
        "status": {},
    }


def measure(client: prometheus.Querier, size: int, rounds: int) -> dict[str, float]:
    policies = [policy(index) for index in range(size)]
    days = reading.PastDays()
    sent: list[int] = []
    wall: list[float] = []
    cpu: list[float] = []
    for _ in range(rounds):
        now = datetime.datetime.now(datetime.UTC)
        started, started_cpu = time.perf_counter(), time.process_time()
        outcomes, count = handle_spend.read_round(client, policies, now=now, host="bench", days=days)
        wall.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
        sent.append(count)
        failed = [outcome for _, outcome in outcomes if outcome.readings is None]
        assert not failed, f"every route read: {failed[0].message if failed else ''}"
        time.sleep(1.0)
    steady = sent[1:]
    return {
        "first": sent[0],
        "steady": statistics.median(steady),
        "per_minute": statistics.median(steady) * 60 / INTERVAL_S,
        "wall": statistics.median(wall[1:]),
        "cpu": statistics.median(cpu[1:]),
        "first_wall": wall[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 1000, 5000])
    args = parser.parse_args()
    registry = prometheus_client.CollectorRegistry()
    registry.register(FakeLiteLLM())
    server, _ = prometheus_client.start_http_server(0, addr="127.0.0.1", registry=registry)
    port = server.server_address[1]
    with tempfile.TemporaryDirectory() as work:
        config = monitoring.prometheus_config(
            [monitoring.ScrapeTarget("litellm", f"127.0.0.1:{port}")], alertmanager="127.0.0.1:9", interval_s=1.0
        )
        with monitoring.Prometheus(config, workdir=pathlib.Path(work)) as server_:
            time.sleep(8)  # a few scrapes, so every window has an increase
            with prometheus.PrometheusClient(server_.url) as client:
                results = {size: measure(client, size, args.rounds) for size in args.sizes}
    server.shutdown()
    reference = results[min(results)]
    print(f"spend loop read, {args.rounds} rounds a size (median of the steady ones), {ROUTES} routes exported, "
          f"load {os.getloadavg()[0]:.2f}")  # fmt: skip
    print()
    print("| policies | queries, first round | queries a round after | queries a minute (300 s) | wall a round | "
          "CPU a round | CPU vs 10 policies |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for size, found in results.items():
        ratio = found["cpu"] / reference["cpu"]
        print(
            f"| {size:,} | {found['first']:.0f} | {found['steady']:.0f} | {found['per_minute']:.1f} | "
            f"{found['wall'] * 1000:.0f} ms | {found['cpu'] * 1000:.0f} ms | {ratio:.2f}x |"
        )


if __name__ == "__main__":
    main()
