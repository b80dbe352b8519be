"""Evaluator throughput against the LLM simulator, and the judge calls agreement saves.

    .venv/bin/python benchmarks/evaluator_throughput.py [--pairs 1500] [--latency-ms 200] [--concurrency 64]

Runs `evaluate_shard` in-process (one shard, FileSink in a temporary directory) against the simulator in
its own process (`python -m assaylab.simulator`), where every model answers after exactly L ms.
execution.concurrency C bounds the evaluator's concurrent HTTP calls, so no evaluator can make more than
C/L calls a second; a pair costs k calls (baseline + candidate + 2 judge calls, or 2 when the answers
agree), so the pair limit is C/(k L). The share of that limit reached is the share of call slots kept busy.

Two datasets: one where no answers agree (every pair is judged: k = 4) and one where half agree (the
baseline always answers ideally, the candidate half the time), which also measures the judge calls saved.
Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import httpx
import yaml

from assay.api import QualificationRunSpec
from assay.evaluator import evaluate_shard, sinks
from assaylab import simulator


@dataclasses.dataclass(frozen=True)
class Outcome:
    name: str
    pairs: int
    positions: int
    seconds: float
    calls: int
    judge_calls: int
    judge_calls_saved: int
    agreed_pairs: int
    cpu_seconds: float
    median_latency_ms: float

    def row(self, *, concurrency: int, latency_ms: float) -> str:
        limit_calls = concurrency / (latency_ms / 1000)
        calls_per_s = self.calls / self.seconds
        calls_per_position = self.calls / self.positions
        saved_share = self.judge_calls_saved / (self.judge_calls + self.judge_calls_saved)
        return (
            f"| {self.name} | {self.positions} ({self.pairs} pairs) | {self.seconds:.1f} s | "
            f"{self.positions / self.seconds:.1f} | {calls_per_position:.2f} | "
            f"{limit_calls / calls_per_position:.1f} | {calls_per_s:.0f} / {limit_calls:.0f} | "
            f"**{calls_per_s / limit_calls:.1%}** | {self.median_latency_ms:.0f} ms | "
            f"{self.cpu_seconds / self.calls * 1000:.2f} ms | {self.agreed_pairs / self.pairs:.0%} | "
            f"{saved_share:.1%} |"
        )


@contextlib.contextmanager
def simulator_process(config: dict[str, Any], workdir: pathlib.Path) -> Iterator[str]:
    """The simulator in its own process (so it does not share a core with the evaluator); yields its URL."""
    path = workdir / "simulator.yaml"
    path.write_text(yaml.safe_dump(config))
    proc = subprocess.Popen(
        [sys.executable, "-m", "assaylab.simulator", "--config", str(path), "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        yield proc.stdout.readline().strip()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def stats(url: str) -> dict[str, Any]:
    return dict(httpx.get(f"{url}/stats", timeout=10).json())


async def measure(
    name: str, *, candidate_quality: float, pairs: int, latency_ms: float, concurrency: int, workdir: pathlib.Path
) -> Outcome:
    model = {"latency_ms": latency_ms}
    config = {
        "seed": 1,
        "models": {
            "baseline": {**model, "quality": 1.0},
            "candidate": {**model, "quality": candidate_quality},
            "judge": {**model, "role": "judge"},
        },
    }
    dataset = workdir / f"{name}.jsonl"
    dataset.write_text("".join(json.dumps(r) + "\n" for r in simulator.make_dataset(pairs, seed=2)))
    with simulator_process(config, workdir) as url:
        spec = QualificationRunSpec.model_validate(
            {
                "endpoint": {"url": f"{url}/v1"},
                "baseline": {"model": "baseline"},
                "candidate": {"name": "candidate", "model": "candidate"},
                "dataset": {"path": str(dataset)},
                "judge": {"model": "judge"},
                "test": {"maxSamples": pairs},
                "execution": {"concurrency": concurrency, "chunkSize": 25},
            }
        )
        started, cpu_started = time.perf_counter(), time.process_time()
        result = await evaluate_shard(
            spec, shard=0, shards=1, sink=sinks.FileSink(workdir / name, 0), api_key=None, judge_api_key=None
        )
        seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
        served = stats(url)["models"]
    records, _ = sinks.read_evidence_dir(workdir / name)
    agreed = sum(1 for r in records[0] if r["agreement"] and not r["control"])
    latencies = [r["latency_ms"][side] for r in records[0] for side in ("baseline", "candidate")]
    return Outcome(
        name=name,
        pairs=pairs,
        positions=result.positions,
        seconds=seconds,
        calls=sum(m["requests"] for m in served.values()),
        judge_calls=result.judge_calls,
        judge_calls_saved=result.judge_calls_saved,
        agreed_pairs=agreed,
        cpu_seconds=cpu_seconds,
        median_latency_ms=statistics.median(v for v in latencies if v is not None),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--pairs", type=int, default=1500)
    parser.add_argument("--latency-ms", type=float, default=200.0)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="assay-bench-") as tmp:
        workdir = pathlib.Path(tmp)
        outcomes = [
            asyncio.run(
                measure(
                    name,
                    candidate_quality=quality,
                    pairs=args.pairs,
                    latency_ms=args.latency_ms,
                    concurrency=args.concurrency,
                    workdir=workdir,
                )
            )
            for name, quality in (("none agree", 0.0), ("half agree", 0.5))
        ]
    print(f"L = {args.latency_ms:g} ms, C = {args.concurrency}, controlShare 0.08 (controls are always judged)\n")
    print(
        "| dataset | positions | wall time | positions/s | calls/position | limit C/(kL) | calls/s vs C/L "
        "| share of limit | median call latency | evaluator CPU/call | pairs agreed | judge calls saved |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for outcome in outcomes:
        print(outcome.row(concurrency=args.concurrency, latency_ms=args.latency_ms))


if __name__ == "__main__":
    main()
