"""How many chat completions a second the LLM simulator serves, so a benchmark knows it is not the bottleneck.

    .venv/bin/python benchmarks/simulator_throughput.py [--requests 2000] [--concurrency 32]

Prints requests per second and the median and p99 client-side latency for zero-latency answers and judge
verdicts. Only the simulator runs here (no LiteLLM).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import httpx

from assay.qualification import judge
from assaylab import simulator as sim


async def _run(model: str, bodies: list[dict[str, object]], *, concurrency: int) -> None:
    config = {"seed": 1, "models": {"answer": {"quality": 0.8}, "judge": {"role": "judge", "noise": 0.05}}}
    latencies: list[float] = []
    async with sim.SimulatorServer(config) as server:
        limits = httpx.Limits(max_connections=concurrency)
        async with httpx.AsyncClient(base_url=server.base_url, limits=limits, timeout=30) as client:
            semaphore = asyncio.Semaphore(concurrency)

            async def one(body: dict[str, object]) -> None:
                async with semaphore:
                    started = time.perf_counter()
                    response = await client.post("/chat/completions", json=body)
                    response.raise_for_status()
                    latencies.append(time.perf_counter() - started)

            started = time.perf_counter()
            await asyncio.gather(*(one(body) for body in bodies))
            elapsed = time.perf_counter() - started
    latencies.sort()
    p99 = latencies[int(0.99 * (len(latencies) - 1))]
    print(
        f"{model:7s} {len(bodies)} requests, concurrency {concurrency}: {len(bodies) / elapsed:7.0f} req/s, "
        f"median {statistics.median(latencies) * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    records = sim.make_dataset(args.requests, seed=1)
    answers: list[dict[str, object]] = [{"model": "answer", "messages": r["messages"]} for r in records]
    verdicts: list[dict[str, object]] = [
        {
            "model": "judge",
            "messages": judge.build_judge_messages(r["messages"], sim.ideal_answer(r["messages"][0]["content"]), "No."),
        }
        for r in records
    ]
    asyncio.run(_run("answer", answers, concurrency=args.concurrency))
    asyncio.run(_run("judge", verdicts, concurrency=args.concurrency))


if __name__ == "__main__":
    main()
