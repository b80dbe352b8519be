"""`make demo`: the whole loop on this machine, narrated.

A real control plane, a real LiteLLM proxy in front of simulated models (with assay's sampler callback and its
Prometheus metrics), a real Prometheus scraping it when one is installed, the operator, and an application
sending requests on the route. A RoutePolicy with one good and one bad cheaper candidate and a live quality
watch: qualification, the verdicts, the promotion, the watch judging the promoted model against the baseline
on live traffic, the provider degrading that model, assay proving the drop and rolling back by itself, the
reports, and `assay top`. Ctrl-C stops everything cleanly.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import io
import json
import os
import pathlib
import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import httpx

from assaylab import controlplane, monitoring, simulator
from assaylab.operator_process import LOOPBACK_EGRESS
from assaylab.stack import LocalStack

POLICY = "support-summary"
CANDIDATE = "gpt-4o-mini"
WEBHOOK_TOKEN = "demo-webhook-token"
RECORDER_TOKEN = "demo-recorder-token"  # the operator's and the sampler's copy of the same Secret
# The demo's watch: every request the promoted arm serves is sampled, and the e-detector's threshold is
# 0.1 days x 100,000 samples a day = 10,000 (a false alarm within the first 100 samples has probability at most
# 1%). The defaults are 1% sampled, 500 a day and 365 days between false alarms: c = 182,500.
WATCH = {"sampleRate": 1.0, "maxSamplesPerDay": 100_000, "meanDaysBetweenFalseAlarms": 0.1, "maxCostPerDay": 100}
HELD_SAMPLES = 20  # judged while the candidate holds its quality, before the simulator degrades it
TRAFFIC_PER_SECOND = 4.0


class Narrator:
    def __init__(self) -> None:
        self.started = time.monotonic()
        self.step_started = self.started
        self.timings: list[tuple[str, float]] = []

    def step(self, text: str) -> None:
        self.step_started = time.monotonic()
        print(f"\n==> {text}", flush=True)

    def done(self, label: str, detail: str = "") -> None:
        took = time.monotonic() - self.step_started
        self.timings.append((label, took))
        print(f"    {detail + ' ' if detail else ''}({took:.1f}s)", flush=True)

    def say(self, text: str) -> None:
        print(f"    {text}", flush=True)


def _wait(
    predicate: Callable[[], Any], *, timeout: float, every: float = 1.0, tick: Callable[[], None] | None = None
) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if tick:
            tick()
        time.sleep(every)
    raise TimeoutError("timed out")


def _fmt(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, float) else "-"


def _ask(stack: LocalStack, route: str) -> str | None:
    """The model LiteLLM used to answer a request for the route; None while LiteLLM restarts."""
    from assaylab import litellm

    try:
        response = httpx.post(
            f"{stack.litellm_url}/v1/chat/completions",
            headers={"Authorization": f"Bearer {litellm.TEST_MASTER_KEY}"},
            json={"model": route, "messages": [{"role": "user", "content": "Summarize the ticket about billing."}]},
            timeout=30,
        )
    except httpx.TransportError:
        return None
    if response.status_code != 200:
        return None
    served = response.headers.get("x-litellm-model-name") or response.json().get("model", "?")
    return served.split("/", 1)[-1]


class Traffic:
    """The application: requests on the route from a background thread at a steady rate (prompts from the
    simulator's generator, another seed than the qualification dataset's); counts which model answered, and
    never keeps or prints a prompt's or an answer's text."""

    def __init__(self, url: str, route: str, prompts: Sequence[Mapping[str, Any]], *, per_second: float) -> None:
        from assaylab import litellm

        self.url, self.route, self.prompts, self.per_second = url, route, prompts, per_second
        self.headers = {"Authorization": f"Bearer {litellm.TEST_MASTER_KEY}"}
        self.served: collections.Counter[str] = collections.Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="demo-traffic", daemon=True)

    def _run(self) -> None:
        sent = 0
        with httpx.Client(timeout=30) as client:
            while not self._stop.is_set():
                started = time.monotonic()
                body = {"model": self.route, "messages": self.prompts[sent % len(self.prompts)]["messages"]}
                sent += 1
                try:
                    response = client.post(f"{self.url}/v1/chat/completions", headers=self.headers, json=body)
                    model = response.headers.get("x-litellm-model-name", "?") if response.status_code == 200 else ""
                    self.served[model.split("/", 1)[-1] or f"HTTP {response.status_code}"] += 1
                except httpx.TransportError:  # LiteLLM restarting after a route change
                    self.served["unavailable"] += 1
                self._stop.wait(max(0.0, 1 / self.per_second - (time.monotonic() - started)))

    def start(self) -> Traffic:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(35)


@contextlib.contextmanager
def _environ(values: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables for the processes started inside (LiteLLM, the operator), then restore them."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _condition(status: Mapping[str, Any], type_: str) -> dict[str, Any]:
    return next((c for c in status.get("conditions", []) if c.get("type") == type_), {})


def _watch_line(watch: Mapping[str, Any]) -> str:
    e_value, threshold = watch.get("eValue"), watch.get("threshold")
    evidence = f"e-value {e_value:.3g} of threshold {threshold:,.0f}" if e_value is not None and threshold else "-"
    return (
        f"{watch.get('samples', 0)} samples judged: {watch.get('wins', 0)} wins / {watch.get('ties', 0)} ties / "
        f"{watch.get('losses', 0)} losses, mean score {_fmt(watch.get('meanScore'))} "
        f"(drift below {_fmt(watch.get('driftMargin'))}), {evidence}"
    )


def _spend_line(status: Mapping[str, Any], baseline_is: str) -> str:
    spend = status.get("spend") or {}
    day, realized = spend.get("day") or {}, spend.get("realized") or {}
    baseline = realized.get("baselineCostPerRequestUsd")
    figure = f" (baseline ${baseline:.6f} a request, {baseline_is})" if baseline is not None else ""
    return f"status.spend: last day {day.get('display', '-')}; realized saving {realized.get('display', '-')}{figure}"


def run(*, samples: int, out: pathlib.Path) -> int:
    from assay.watch import litellm_sampler

    sampler = pathlib.Path(litellm_sampler.__file__)
    recorder_port = controlplane.free_port()
    sampler_env = {
        "ASSAY_RECORDER_URL": f"http://127.0.0.1:{recorder_port}",  # the operator's webhook server hosts it
        "ASSAY_RECORDER_TOKEN": RECORDER_TOKEN,
        "ASSAY_SAMPLER_REFRESH_SECONDS": "1",
    }
    with _environ(sampler_env):
        return _run(samples=samples, out=out, recorder_port=recorder_port, sampler=sampler)


def _run(*, samples: int, out: pathlib.Path, recorder_port: int, sampler: pathlib.Path) -> int:
    from assay.spend import sources

    n = Narrator()
    print("assay demo: qualify cheaper models on your own prompts, promote, watch quality live, roll back on drift.")
    # LiteLLM runs assay's sampler callback (the file beside its config, as a ConfigMap mount would hold it) and
    # labels assay's own calls, so the route's spend leaves them out.
    stack = LocalStack(
        namespace="assay-demo",
        reconcile_interval=1.0,
        webhook_token=WEBHOOK_TOKEN,
        operator=False,
        litellm_settings={
            "callbacks": ["prometheus", "assay_sampler.sampler"],
            "custom_prometheus_tags": [sources.ASSAY_CALL_TAG],
        },
    )
    stack.webhook_port = recorder_port
    shutil.copy(sampler, stack.workdir / "assay_sampler.py")
    prometheus: monitoring.Prometheus | None = None
    traffic: Traffic | None = None
    try:
        n.step(
            "Starting a local control plane (etcd, kube-apiserver, kube-controller-manager), the LLM simulator, "
            "a LiteLLM proxy with assay's sampler, Prometheus, the local Job executor and the operator"
        )
        stack.start()
        operator_env: dict[str, str] = {}
        if monitoring.find_prometheus():
            target = monitoring.ScrapeTarget("litellm", stack.litellm_url.removeprefix("http://"), "/metrics/")
            config = monitoring.prometheus_config([target], alertmanager="127.0.0.1:9", interval_s=1.0)
            prometheus = monitoring.Prometheus(config, workdir=stack.workdir / "prometheus").start()
            operator_env = {"ASSAY_PROMETHEUS_URL": prometheus.url, "ASSAY_SPEND_INTERVAL": "2"}
        with _environ(operator_env):
            stack.start_operator()
        n.say(f"kube-apiserver at {stack.plane.url if stack.plane else '?'}, LiteLLM at {stack.litellm_url}")
        if prometheus:
            n.say(f"Prometheus at {prometheus.url} scrapes LiteLLM's /metrics/ every second; the operator reads spend")
        else:
            n.say("no Prometheus binary (hack/debian-packages.sh installs it): the spend part is skipped")
        n.done("start")

        n.step(f"Recording {samples} prompts of the team's traffic into ConfigMap 'prompts'")
        dataset = simulator.make_dataset(samples, seed=42)
        stack.put_dataset("prompts", dataset)
        n.say(f"route '{stack.route}' is served by {_ask(stack, stack.route)} today")
        # Live traffic from then on: what the spend is measured on, and what the watch samples after a promotion.
        traffic = Traffic(
            stack.litellm_url, stack.route, simulator.make_dataset(200, seed=7), per_second=TRAFFIC_PER_SECOND
        ).start()
        n.say(f"the application sends {TRAFFIC_PER_SECOND:g} requests a second on '{stack.route}' from now on")
        n.done("dataset")

        n.step(
            "kubectl apply RoutePolicy: baseline gpt-4o; candidates gpt-4o-mini (good) and tiny-llm (bad); "
            f"spec.watch: sample rate {WATCH['sampleRate']:g}, {WATCH['meanDaysBetweenFalseAlarms']:g} days between "
            f"false alarms at {WATCH['maxSamplesPerDay']:,} samples a day"
        )
        stack.create(stack.policy(POLICY, qualification={"test": {"maxSamples": samples}}, watch=WATCH))
        n.done("apply")

        n.step("Qualifying: one QualificationRun (a batch Job) per candidate, blind judge, sequential test")
        last: dict[str, str] = {}

        def progress() -> None:
            for run_obj in stack.list_runs():
                st = run_obj.get("status") or {}
                stats = st.get("statistics") or {}
                line = (
                    f"{run_obj['metadata']['labels'].get('assay.dev/candidate', '?'):>5}  "
                    f"{st.get('phase', 'Pending'):<12} pairs {(st.get('progress') or {}).get('display', '0'):>8}  "
                    f"estimate {_fmt(stats.get('estimate'))}  bounds [{_fmt(stats.get('lowerBound'))}, "
                    f"{_fmt(stats.get('upperBound'))}]"
                )
                if last.get(run_obj["metadata"]["name"]) != line:
                    last[run_obj["metadata"]["name"]] = line
                    n.say(line)

        def decided() -> bool:
            runs = stack.list_runs()
            return len(runs) == 2 and all(
                (r.get("status") or {}).get("phase") in {"Passed", "Failed", "Inconclusive", "Error"} for r in runs
            )

        _wait(decided, timeout=600, tick=progress)
        progress()
        for run_obj in stack.list_runs():
            st = run_obj["status"]
            n.say(f"{run_obj['metadata']['name']}: {st['phase']} ({st.get('reason')}): {st.get('message')}")
        n.done("qualification")

        n.step("Promotion: the passing candidate takes the route in LiteLLM (config rewritten, proxy rolled)")
        try:
            policy = _wait(
                lambda: (
                    (p := stack.get("RoutePolicy", POLICY)).get("status", {}).get("phase")
                    in {"Promoted", "NotQualified", "Degraded"}
                    and p
                ),
                timeout=180,
            )
        except TimeoutError:
            policy = stack.get("RoutePolicy", POLICY)
        status = policy.get("status", {})
        n.say(
            f"policy phase {status.get('phase')}; active route {json.dumps(status.get('activeRoute', {}).get('model'))}"
            f"; savings {status.get('savings', {}).get('display', '-')}"
        )
        if status.get("phase") == "Promoted":
            served = _wait(lambda: (m := _ask(stack, stack.route)) not in (None, stack.baseline) and m, timeout=180)
            n.say(f"a request for '{stack.route}' is now answered by {served}")
        n.done("promotion")

        out.mkdir(parents=True, exist_ok=True)
        if status.get("phase") == "Promoted":
            n.step(
                "Live quality watch: LiteLLM's sampler sends the requests gpt-4o-mini served to assay's recorder; "
                "each is replayed to the baseline gpt-4o and judged blind in both orders, into the e-detector"
            )
            if prometheus:
                with contextlib.suppress(TimeoutError):
                    _wait(lambda: (stack.get("RoutePolicy", POLICY).get("status") or {}).get("spend"), timeout=30)
                n.say(_spend_line(stack.get("RoutePolicy", POLICY).get("status") or {}, "frozen at the promotion"))
                n.say(
                    "'measuring' is the honest display for a day: the promoted figure is a whole day's cost per request"
                )
            held = _wait(
                lambda: (
                    (w := (stack.get("RoutePolicy", POLICY).get("status") or {}).get("watch") or {}).get("samples", 0)
                    >= HELD_SAMPLES
                    and w
                ),
                timeout=240,
                every=0.5,
            )
            after_held = stack.get("RoutePolicy", POLICY)["status"]
            n.say(f"holding its quality: {_watch_line(held)}")
            n.say(
                f"phase {after_held.get('phase')}, condition Watched {_condition(after_held, 'Watched').get('status')}"
                f", no alarm; watching has cost ${held.get('costUsd', 0):.4f}"
            )
            n.done("watch")

            n.step("Drift: the provider degrades gpt-4o-mini (the simulator's quality for it drops to 0); no alert")
            assert stack.simulator is not None
            stack.simulator.set_quality(CANDIDATE, 0.0)
            dropped = time.monotonic()
            shown = [held.get("samples", 0)]

            def rolled_back() -> dict[str, Any] | None:
                current = stack.get("RoutePolicy", POLICY).get("status") or {}
                watch = current.get("watch") or {}
                if watch.get("samples", 0) >= shown[-1] + 5 and current.get("phase") == "Promoted":
                    shown.append(watch["samples"])
                    n.say(f"{time.monotonic() - dropped:5.1f}s  {_watch_line(watch)}")
                if current.get("phase") == "RolledBack" and "pending" not in current:
                    return current
                return None

            rolled = _wait(rolled_back, timeout=300, every=0.2)
            detected_in = time.monotonic() - dropped
            watch = rolled.get("watch") or {}
            n.say(f"drift proven at sample {watch.get('alarmedAt')}: {_watch_line(watch)}")
            reason = _condition(rolled, "RolledBack").get("reason")
            n.say(
                f"rolled back by assay itself, reason {reason}, {detected_in:.1f}s after the drop "
                f"({watch.get('samples', 0) - held.get('samples', 0)} samples later): phase {rolled.get('phase')}, "
                f"active {rolled.get('activeRoute', {}).get('model')}, external alerts: "
                f"{'none' if 'lastAlert' not in rolled else 'some'}"
            )
            served = _wait(lambda: (m := _ask(stack, stack.route)) == stack.baseline and m, timeout=180)
            n.say(
                f"after LiteLLM rolled, '{stack.route}' is answered by {served} again "
                f"({time.monotonic() - dropped:.1f}s after the drop)"
            )
            # The policy's final status for whoever checks the run (tests/integration/test_demo.py): no text in it.
            (out / f"{POLICY}-status.json").write_text(json.dumps(stack.get("RoutePolicy", POLICY)["status"], indent=2))
            n.done("rollback")
        traffic.stop()
        n.say(f"the application's requests were answered by: {dict(sorted(traffic.served.items()))}")

        n.step("Writing the qualification reports (confidence sequence, scores, cost and latency, guardrails)")
        from assay.report import cluster, render

        out.mkdir(parents=True, exist_ok=True)
        for run_obj in stack.list_runs():
            run_name = run_obj["metadata"]["name"]
            report = cluster.run_report(stack.namespace, run_name)
            html = out / f"{run_name}.html"
            html.write_text(render.to_html(report))
            (out / f"{run_name}.md").write_text(render.to_markdown(report))
            n.say(f"{html}  (and .md)")
        if status.get("phase") == "Promoted":
            watch_report = cluster.watch_report(stack.namespace, POLICY)
            html = out / f"{POLICY}-watch.html"
            html.write_text(render.watch_to_html(watch_report))
            (out / f"{POLICY}-watch.md").write_text(render.watch_to_markdown(watch_report))
            n.say(f"{html}  (and .md): the live score over time, the e-value against its threshold")
        n.done("reports")

        if prometheus:
            n.step("assay top: routes ranked by spend, from LiteLLM's metrics through Prometheus")
            from assay.spend import command

            table, errors, page = io.StringIO(), io.StringIO(), io.StringIO()
            top_args = ["--prometheus-url", prometheus.url, "-n", stack.namespace, "--window", "1d"]
            with _environ(LOOPBACK_EGRESS):  # Prometheus listens on loopback here, as everything in the lab
                code = command.main(top_args, stdout=table, stderr=errors)
                command.main([*top_args, "--output", "html"], stdout=page, stderr=io.StringIO())
            for line in (table.getvalue() + errors.getvalue()).rstrip().splitlines():
                n.say(line)
            if page.getvalue():
                (out / "spend.html").write_text(page.getvalue())
                n.say(f"{out / 'spend.html'}: the same ranking as a page of the report")
            n.say(
                f"(exit {code}; the watch's own calls (tag assay-watch) are left out, as in status.spend; the rows "
                "named after model groups are the qualification Jobs' calls, which address the models, not the route)"
            )
            n.say(_spend_line(stack.get("RoutePolicy", POLICY).get("status") or {}, "following the route again"))
            n.done("spend")

        n.step("Summary")
        for label, took in n.timings:
            n.say(f"{label:<14} {took:6.1f}s")
        n.say(f"total          {time.monotonic() - n.started:6.1f}s")
        n.say(f"open the reports in {out.resolve()}")
        return 0
    except KeyboardInterrupt:
        print("\ninterrupted: stopping everything", flush=True)
        return 130
    finally:
        if traffic:
            traffic.stop()
        if prometheus:
            prometheus.stop()
        stack.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m assaylab.demo", description=__doc__)
    parser.add_argument("--samples", type=int, default=400, help="recorded prompts in the demo dataset")
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("out/demo"), help="where the report goes")
    args = parser.parse_args(argv)
    return run(samples=args.samples, out=args.out)


if __name__ == "__main__":
    sys.exit(main())
