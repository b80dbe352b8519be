"""`make demo`: the whole loop on this machine, narrated.

A real control plane, a real LiteLLM proxy in front of simulated models, the operator, a RoutePolicy with one
good and one bad cheaper candidate: qualification, the verdicts, the promotion, a request served by the new
model, a drift alert, the rollback, and a report. Ctrl-C stops everything cleanly.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time
from collections.abc import Callable
from typing import Any

import httpx

from assaylab import alertmanager, simulator
from assaylab.stack import LocalStack

POLICY = "support-summary"
WEBHOOK_TOKEN = "demo-webhook-token"


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


def run(*, samples: int, out: pathlib.Path) -> int:
    n = Narrator()
    print("assay demo: qualify cheaper models on your own prompts, promote, roll back on drift.")
    stack = LocalStack(namespace="assay-demo", reconcile_interval=1.0, webhook_token=WEBHOOK_TOKEN)
    try:
        n.step(
            "Starting a local control plane (etcd, kube-apiserver, kube-controller-manager), the LLM simulator, "
            "a LiteLLM proxy, the local Job executor and the operator"
        )
        stack.start()
        n.done("start", f"kube-apiserver at {stack.plane.url if stack.plane else '?'}, LiteLLM at {stack.litellm_url}")

        n.step(f"Recording {samples} prompts of the team's traffic into ConfigMap 'prompts'")
        stack.put_dataset("prompts", simulator.make_dataset(samples, seed=42))
        n.say(f"route '{stack.route}' is served by {_ask(stack, stack.route)} today")
        n.done("dataset")

        n.step("kubectl apply RoutePolicy: baseline gpt-4o; candidates gpt-4o-mini (good) and tiny-llm (bad)")
        stack.create(stack.policy(POLICY, qualification={"test": {"maxSamples": samples}}))
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

        if status.get("phase") == "Promoted":
            n.step("Drift: Alertmanager fires LLMRouteQualityDrift at the operator's webhook")
            alert = alertmanager.notification(
                alertmanager.alert(
                    {"alertname": "LLMRouteQualityDrift", "route": stack.route, "namespace": stack.namespace},
                    annotations={"summary": "judge win rate of the live route dropped"},
                    fingerprint="d3m0d3m0d3m0d3m0",
                )
            )
            sent = time.monotonic()
            answer = httpx.post(
                f"http://127.0.0.1:{stack.webhook_port}/alerts",
                json=alert,
                headers={"Authorization": f"Bearer {WEBHOOK_TOKEN}"},
                timeout=30,
            )
            restored_in = time.monotonic() - sent
            rolled = stack.get("RoutePolicy", POLICY)["status"]
            n.say(
                f"webhook answered {answer.status_code}; route restored in {restored_in * 1000:.0f} ms "
                f"(phase {rolled.get('phase')}, active {rolled.get('activeRoute', {}).get('model')})"
            )
            served = _wait(lambda: (m := _ask(stack, stack.route)) == stack.baseline and m, timeout=180)
            n.say(f"after LiteLLM rolled, '{stack.route}' is answered by {served} again")
            n.done("rollback")

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
        n.done("reports")

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
        stack.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m assaylab.demo", description=__doc__)
    parser.add_argument("--samples", type=int, default=400, help="recorded prompts in the demo dataset")
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("out/demo"), help="where the report goes")
    args = parser.parse_args(argv)
    return run(samples=args.samples, out=args.out)


if __name__ == "__main__":
    sys.exit(main())
