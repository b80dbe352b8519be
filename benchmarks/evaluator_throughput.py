"""Evaluator throughput against the LLM simulator: share of C/L, CPU per call and peak RSS per pod.

    .venv/bin/python benchmarks/evaluator_throughput.py [--ideal-seconds 8] [--latency-ms 200] \\
        [--concurrency 64 256] [--pods 1 4] [--agree 0 0.5] [--runs 3] [--simulators 2]

Each pod is its own process running `evaluate_shard` for shard i of P (FileSink in a temporary directory),
as an Indexed Job's pods do; all of them start together once imported. The simulator
(`python -m assaylab.simulator`) runs in `--simulators` processes sharing one port (SO_REUSEPORT), where
every model answers after exactly L ms. execution.concurrency C bounds each pod's concurrent calls, so P
pods can make at most P C/L calls a second; that share, the pods' calls/s over P C/L, is how busy the call
slots are kept. Each pod gets the pairs it would finish in `--ideal-seconds` at C/L (C/(4L) pairs a second;
`--pairs` sets them instead) and the dataset holds P times as many, so every pod has the same work.

The reference, measured in the same run just before the evaluator: P processes with C aiohttp loops each,
sending the same mix of requests (baseline, candidate, two judge orders) to the same simulator processes
for `--reference-seconds`. It is what this machine serves at that concurrency with a near-free client;
where it falls short of P C/L the machine (simulator plus client on shared cores), not the evaluator, is
the limit, and the evaluator's share of the reference says how much of what remains it uses.

`--agree` is the candidate's quality: 0 makes every pair judged (4 calls), 0.5 makes half of the answers
agree with the ideal baseline's (their 2 judge calls saved). Prints one Markdown row per (C, P, dataset):
medians over `--runs`, with the range of the share of C/L and the load average during the runs.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import pathlib
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import Any

import yaml

SHARD_WORKER = "--shard-worker"
REFERENCE_WORKER = "--reference-worker"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _peak_rss_mib() -> float:
    """This process's peak resident set (VmHWM), MiB."""
    for line in pathlib.Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _process_cpu_seconds(pid: int) -> float:
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime


def _calls_of(record: dict[str, Any]) -> int:
    """HTTP calls one evidence record took (no retries happen against this simulator)."""
    calls = int(record["judge_calls"])
    calls += 0 if record["replayed_baseline"] else 1
    calls += 1 if record["latency_ms"]["candidate"] is not None else 0
    calls += 1 if "control_other" in record else 0
    return calls


# --- the pod: one shard in its own process ------------------------------------------------------------------


async def _run_shard(job: dict[str, Any]) -> dict[str, Any]:
    from assay.api import QualificationRunSpec
    from assay.evaluator import evaluate_shard, sinks

    spec = QualificationRunSpec.model_validate(job["spec"])
    out = pathlib.Path(job["out"])
    print("ready", flush=True)
    sys.stdin.readline()  # "go": every pod starts at once
    started, cpu_started = time.perf_counter(), _cpu_seconds()
    result = await evaluate_shard(
        spec,
        shard=job["shard"],
        shards=job["shards"],
        sink=sinks.FileSink(out, job["shard"]),
        api_key=None,
        judge_api_key=None,
    )
    seconds, cpu = time.perf_counter() - started, _cpu_seconds() - cpu_started
    records, _ = sinks.read_evidence_dir(out)
    mine = records.get(job["shard"], [])
    latencies = [r["latency_ms"][s] for r in mine for s in ("baseline", "candidate") if r["latency_ms"][s] is not None]
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "peak_rss_mib": _peak_rss_mib(),
        "positions": result.positions,
        "calls": sum(_calls_of(r) for r in mine),
        "judge_calls": result.judge_calls,
        "judge_calls_saved": result.judge_calls_saved,
        "retries": result.retries,
        "agreed": sum(1 for r in mine if r["agreement"] and not r["control"]),
        "pairs": sum(1 for r in mine if not r["control"]),
        "latencies_ms": latencies,
    }


# --- the reference: the same requests from a near-free client -----------------------------------------------


async def _run_reference(job: dict[str, Any]) -> dict[str, Any]:
    import aiohttp

    from assay.qualification import judge

    questions = [r["messages"] for r in job["records"]]
    payloads: list[dict[str, Any]] = []
    for messages in questions:
        text = "An answer of a few sentences. " * 8
        payloads += [
            {"model": "baseline", "messages": messages},
            {"model": "candidate", "messages": messages},
            {"model": "judge", "messages": judge.build_judge_messages(messages, text, text[::-1])},
            {"model": "judge", "messages": judge.build_judge_messages(messages, text[::-1], text)},
        ]
    url = f"{job['url']}/v1/chat/completions"
    calls = 0
    connector = aiohttp.TCPConnector(limit=job["concurrency"])
    async with aiohttp.ClientSession(connector=connector) as session:
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)
        started, cpu_started = time.perf_counter(), _cpu_seconds()
        deadline = started + job["seconds"]

        async def loop(offset: int) -> None:
            nonlocal calls
            index = offset
            while time.perf_counter() < deadline:
                async with session.post(url, json=payloads[index % len(payloads)]) as response:
                    await response.read()
                calls += 1
                index += job["concurrency"]

        await asyncio.gather(*(loop(i) for i in range(job["concurrency"])))
        seconds, cpu = time.perf_counter() - started, _cpu_seconds() - cpu_started
    return {"seconds": seconds, "cpu_seconds": cpu, "calls": calls, "peak_rss_mib": _peak_rss_mib()}


def _worker(kind: str) -> None:
    job = json.loads(sys.stdin.readline())
    run = _run_shard if kind == SHARD_WORKER else _run_reference
    print(json.dumps(asyncio.run(run(job))), flush=True)


# --- the coordinator ----------------------------------------------------------------------------------------


class Simulators:
    """`count` simulator processes serving one port (SO_REUSEPORT)."""

    def __init__(self, config: dict[str, Any], workdir: pathlib.Path, *, count: int) -> None:
        path = workdir / "simulator.yaml"
        path.write_text(yaml.safe_dump(config))
        command = [sys.executable, "-m", "assaylab.simulator", "--config", str(path), "--reuse-port"]
        self.procs: list[subprocess.Popen[str]] = []
        first = subprocess.Popen(
            [*command, "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        self.procs.append(first)
        assert first.stdout is not None
        self.url = first.stdout.readline().strip()
        port = self.url.rsplit(":", 1)[1]
        for _ in range(count - 1):
            proc = subprocess.Popen(
                [*command, "--port", port], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
            )
            assert proc.stdout is not None
            proc.stdout.readline()
            self.procs.append(proc)

    def cpu_seconds(self) -> float:
        return sum(_process_cpu_seconds(p.pid) for p in self.procs)

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            proc.wait(timeout=10)


def _run_workers(kind: str, jobs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Start one process per job, wait until all are ready, start them together, collect their results."""
    env = {**os.environ, "ASSAY_EGRESS_ALLOW_LOOPBACK": "true"}
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, kind], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
        )
        for _ in jobs
    ]
    for proc, job in zip(procs, jobs, strict=True):
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(json.dumps(job) + "\n")
        proc.stdin.flush()
    for proc in procs:
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "ready":
            raise RuntimeError(f"worker {proc.pid} did not start")
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    results = []
    for proc in procs:
        assert proc.stdout is not None
        results.append(json.loads(proc.stdout.readline()))
        proc.wait(timeout=60)
    return results


@dataclasses.dataclass(frozen=True)
class Run:
    """One measurement of P pods at concurrency C, and the reference measured just before it."""

    seconds: float
    calls: int
    positions: int
    pairs: int
    agreed: int
    judge_calls: int
    judge_calls_saved: int
    retries: int
    cpu_per_call_ms: float
    simulator_cpu_per_call_ms: float
    peak_rss_mib: float
    median_latency_ms: float
    mean_latency_ms: float
    reference_calls_per_s: float
    reference_cpu_per_call_ms: float
    load: tuple[float, float]

    @property
    def calls_per_s(self) -> float:
        return self.calls / self.seconds


def measure(
    *,
    agree: float,
    pairs: int,
    pods: int,
    concurrency: int,
    latency_ms: float,
    simulators: int,
    reference_seconds: float,
    workdir: pathlib.Path,
) -> Run:
    from assaylab import simulator

    model = {"latency_ms": latency_ms}
    config = {
        "seed": 1,
        "models": {
            "baseline": {**model, "quality": 1.0},
            "candidate": {**model, "quality": agree},
            "judge": {**model, "role": "judge"},
        },
    }
    records = simulator.make_dataset(pairs * pods, seed=2)
    dataset = workdir / "dataset.jsonl"
    dataset.write_text("".join(json.dumps(r) + "\n" for r in records))
    load_before = os.getloadavg()[0]
    sims = Simulators(config, workdir, count=simulators)
    try:
        reference_job = {
            "url": sims.url,
            "concurrency": concurrency,
            "seconds": reference_seconds,
            "records": records[:200],
        }
        reference = _run_workers(REFERENCE_WORKER, [reference_job] * pods)
        reference_calls = sum(r["calls"] for r in reference)
        reference_per_s = reference_calls / max(r["seconds"] for r in reference)
        reference_cpu = sum(r["cpu_seconds"] for r in reference) / reference_calls
        spec = {
            "endpoint": {"url": f"{sims.url}/v1"},
            "baseline": {"model": "baseline"},
            "candidate": {"name": "candidate", "model": "candidate"},
            "dataset": {"path": str(dataset)},
            "judge": {"model": "judge"},
            "test": {"maxSamples": pairs * pods},
            "execution": {"concurrency": concurrency, "chunkSize": 25},
        }
        out = workdir / f"evidence-{time.monotonic_ns()}"
        simulator_cpu_before = sims.cpu_seconds()
        shards = _run_workers(
            SHARD_WORKER, [{"spec": spec, "out": str(out), "shard": i, "shards": pods} for i in range(pods)]
        )
        simulator_cpu = sims.cpu_seconds() - simulator_cpu_before
    finally:
        sims.stop()
    calls = sum(s["calls"] for s in shards)
    return Run(
        seconds=max(s["seconds"] for s in shards),
        calls=calls,
        positions=sum(s["positions"] for s in shards),
        pairs=sum(s["pairs"] for s in shards),
        agreed=sum(s["agreed"] for s in shards),
        judge_calls=sum(s["judge_calls"] for s in shards),
        judge_calls_saved=sum(s["judge_calls_saved"] for s in shards),
        retries=sum(s["retries"] for s in shards),
        cpu_per_call_ms=sum(s["cpu_seconds"] for s in shards) / calls * 1000,
        simulator_cpu_per_call_ms=simulator_cpu / calls * 1000,
        peak_rss_mib=max(s["peak_rss_mib"] for s in shards),
        median_latency_ms=statistics.median(v for s in shards for v in s["latencies_ms"]),
        mean_latency_ms=statistics.fmean(v for s in shards for v in s["latencies_ms"]),
        reference_calls_per_s=reference_per_s,
        reference_cpu_per_call_ms=reference_cpu * 1000,
        load=(load_before, os.getloadavg()[0]),
    )


HEADER = (
    "| C | pods | dataset | positions | wall time | calls/s | limit P·C/L | share of C/L | range | reference calls/s "
    "| share of reference | call latency median / mean | evaluator CPU/call | simulator CPU/call | peak RSS/pod "
    "| judge calls saved | load avg |\n" + "|---" * 17 + "|"
)


def row(runs: Sequence[Run], *, concurrency: int, pods: int, agree: float, latency_ms: float) -> str:
    limit = pods * concurrency / (latency_ms / 1000)
    shares = [r.calls_per_s / limit for r in runs]

    def median(values: Sequence[float]) -> float:
        return statistics.median(values)

    first = runs[0]
    saved = first.judge_calls_saved / max(1, first.judge_calls + first.judge_calls_saved)
    loads = [v for r in runs for v in r.load]
    name = "none agree" if agree == 0 else f"{first.agreed / first.pairs:.0%} agree"
    return (
        f"| {concurrency} | {pods} | {name} | {first.positions} | {median([r.seconds for r in runs]):.1f} s "
        f"| {median([r.calls_per_s for r in runs]):.0f} | {limit:.0f} | **{median(shares):.1%}** "
        f"| {min(shares):.1%}-{max(shares):.1%} | {median([r.reference_calls_per_s for r in runs]):.0f} "
        f"| {median([r.calls_per_s / r.reference_calls_per_s for r in runs]):.1%} "
        f"| {median([r.median_latency_ms for r in runs]):.0f} / {median([r.mean_latency_ms for r in runs]):.0f} ms "
        f"| {median([r.cpu_per_call_ms for r in runs]):.2f} ms "
        f"| {median([r.simulator_cpu_per_call_ms for r in runs]):.2f} ms "
        f"| {median([r.peak_rss_mib for r in runs]):.0f} MiB | {saved:.1%} | {min(loads):.1f}-{max(loads):.1f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--pairs", type=int, help="pairs per pod (default: --ideal-seconds of work at C/L)")
    parser.add_argument("--ideal-seconds", type=float, default=8.0)
    parser.add_argument("--latency-ms", type=float, default=200.0)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--pods", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--agree", type=float, nargs="+", default=[0.0], help="candidate quality (0: none agree)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--simulators", type=int, default=2, help="simulator processes sharing the port")
    parser.add_argument("--reference-seconds", type=float, default=5.0)
    args = parser.parse_args()

    def pairs_per_pod(concurrency: int) -> int:
        return args.pairs or round(args.ideal_seconds * concurrency / (4 * args.latency_ms / 1000))

    pairs_text = f"{args.pairs} pairs" if args.pairs else f"{args.ideal_seconds:g} s of work at C/L"
    print(
        f"L = {args.latency_ms:g} ms, {pairs_text} per pod, {args.simulators} simulator processes, "
        f"{os.cpu_count()} cores, controlShare 0.08 (controls are always judged), medians of {args.runs} runs\n"
    )
    print(HEADER, flush=True)
    with tempfile.TemporaryDirectory(prefix="assay-bench-") as tmp:
        for concurrency in args.concurrency:
            for pods in args.pods:
                for agree in args.agree:
                    runs = [
                        measure(
                            agree=agree,
                            pairs=pairs_per_pod(concurrency),
                            pods=pods,
                            concurrency=concurrency,
                            latency_ms=args.latency_ms,
                            simulators=args.simulators,
                            reference_seconds=args.reference_seconds,
                            workdir=pathlib.Path(tmp),
                        )
                        for _ in range(args.runs)
                    ]
                    print(
                        row(runs, concurrency=concurrency, pods=pods, agree=agree, latency_ms=args.latency_ms),
                        flush=True,
                    )


if __name__ == "__main__":
    if len(sys.argv) == 2 and sys.argv[1] in (SHARD_WORKER, REFERENCE_WORKER):
        _worker(sys.argv[1])
    else:
        main()
