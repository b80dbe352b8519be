"""One shard of a QualificationRun: load the dataset, fix the order, evaluate this shard's positions with
bounded concurrency and commit their evidence strictly in position order.

Positions are launched in order, at most `window` of them uncommitted at a time, and their calls share
execution.concurrency slots (older positions first). A record is committed only when every earlier
position of the shard is, and chunks of execution.chunkSize committed records are written as they fill.
On completion the last partial chunk is written; on stop (SIGTERM) or failure the in-order completed
prefix is written and nothing after it, so a restart resumes after the highest written position with no
duplicate and no gap.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import datetime
import logging
from collections.abc import Sequence
from typing import Any

from assay import httpclient
from assay.api import qualificationrun
from assay.evaluator import calls, dataset, errors, formats, pairs, plan, sinks, sources

log = logging.getLogger("assay.evaluator")

MAX_INVALID_LINES = 100
MAX_INVALID_REASONS = 20


@dataclasses.dataclass(frozen=True)
class ShardResult:
    """What one evaluate_shard call did. Counters are this process's; evidence holds the full story."""

    shard: int
    shards: int
    positions: int
    total_positions: int
    written_before: int
    written: int
    done: bool
    stopped: bool
    invalid_lines: list[int]
    judge_calls: int
    judge_calls_saved: int
    retries: int


@dataclasses.dataclass
class _Status:
    """The shard status document (status.json)."""

    shard: int
    shards: int
    positions: int = 0
    total_positions: int = 0
    written: int = 0
    done: bool = False
    invalid: list[dataset.InvalidLine] = dataclasses.field(default_factory=list)
    error: str | None = None
    error_reason: str | None = None
    error_permanent: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "shard": self.shard,
            "shards": self.shards,
            "positions": self.positions,
            "total_positions": self.total_positions,
            "written": self.written,
            "done": self.done,
            "invalid_lines": [i.line for i in self.invalid[:MAX_INVALID_LINES]],
            "invalid_count": len(self.invalid),
            "invalid_reasons": {str(i.line): i.reason for i in self.invalid[:MAX_INVALID_REASONS]},
            "error": self.error,
            "error_reason": self.error_reason,
            # A transient error is retried by the Job (the shard resumes): only a permanent one ends the run.
            "error_permanent": self.error_permanent,
            "updated_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        }


def _invalid_lines_error(invalid: Sequence[dataset.InvalidLine]) -> errors.InvalidDatasetError:
    shown = "; ".join(f"line {i.line}: {i.reason}" for i in invalid[:5])
    more = f" (and {len(invalid) - 5} more)" if len(invalid) > 5 else ""
    return errors.InvalidDatasetError(
        f"dataset has {len(invalid)} malformed line(s) and onInvalidLine is Fail: {shown}{more}; fix them or "
        "set dataset.onInvalidLine: Skip",
        reason="InvalidDatasetLines",
    )


async def evaluate_shard(
    spec: qualificationrun.QualificationRunSpec,
    *,
    shard: int,
    shards: int,
    sink: sinks.EvidenceSink,
    api_key: str | None,
    judge_api_key: str | None,
    dataset_loader: sources.DatasetLoader | None = None,
    stop: asyncio.Event | None = None,
    retry_policy: httpclient.RetryPolicy | None = None,
    log_text: bool = False,
) -> ShardResult:
    """Evaluate shard `shard` of `shards` into `sink`, resuming after what the sink already holds.

    Returns when the shard is complete (done=True) or `stop` was set (stopped=True, the completed prefix
    written). Raises ConfigError (permanent: exit 2) or TransientError (exit 1); either way the shard
    status records the error first. `judge_api_key` defaults to `api_key` when the judge uses the
    evaluation endpoint. Text is logged only with log_text=True, at debug level.
    """
    status = _Status(shard=shard, shards=shards)
    policy = retry_policy or httpclient.RetryPolicy(max_attempts=spec.execution.max_attempts)
    try:
        if not 0 <= shard < shards:
            raise errors.ConfigError(
                f"shard index {shard} is outside 0..{shards - 1}; check JOB_COMPLETION_INDEX and ASSAY_SHARDS",
                reason="InvalidShard",
            )
        format_check = formats.FormatCheck(spec.format)
        loader = dataset_loader or sources.make_loader(policy=policy, timeout=spec.execution.request_timeout_seconds)
        parsed = dataset.parse_jsonl(await loader(spec.dataset))
        status.invalid = parsed.invalid
        if parsed.invalid:
            log.warning("dataset: %d malformed line(s), first at line %d", len(parsed.invalid), parsed.invalid[0].line)
            if spec.dataset.on_invalid_line == "Fail":
                raise _invalid_lines_error(parsed.invalid)
        if not parsed.records:
            raise errors.InvalidDatasetError(
                "dataset has no valid record; each line needs an id and messages ending with a user turn",
                reason="DatasetEmpty",
            )
        sequence = plan.build_plan(
            parsed.records,
            seed=spec.test.seed,
            control_share=spec.test.control_share,
            max_samples=spec.test.max_samples,
        )
        mine = plan.shard_slots(sequence, shard=shard, shards=shards)
        last = await asyncio.to_thread(sink.existing_max_seq)
        todo = [s for s in mine if last is None or s.seq > last]
        status.positions, status.total_positions = len(mine), len(sequence)
        status.written = len(mine) - len(todo)
        status.done = not todo
        log.info(
            "shard %d/%d: %d of %d positions, %d already written; %d valid records, %d malformed lines",
            shard,
            shards,
            len(mine),
            len(sequence),
            status.written,
            len(parsed.records),
            len(parsed.invalid),
        )
        await asyncio.to_thread(sink.write_status, status.as_dict())
        written_before = status.written
        counters = pairs.Counters()
        stopped = False
        if todo:
            stopped = await _evaluate_slots(
                spec,
                todo,
                sink=sink,
                status=status,
                counters=counters,
                api_key=api_key,
                judge_api_key=judge_api_key,
                policy=policy,
                format_check=format_check,
                stop=stop or asyncio.Event(),
                log_text=log_text,
            )
        status.done = status.written == status.positions
        await asyncio.to_thread(sink.write_status, status.as_dict())
    except errors.EvaluatorError as exc:
        status.error, status.error_reason = str(exc), exc.reason
        status.error_permanent = exc.exit_code == errors.EXIT_PERMANENT
        with contextlib.suppress(errors.EvaluatorError):
            await asyncio.to_thread(sink.write_status, status.as_dict())
        raise
    log.info(
        "shard %d/%d: %s; %d/%d positions written (%d pairs, %d controls evaluated now), %d judge calls, "
        "%d saved by agreement, %d retries",
        shard,
        shards,
        "stopped" if stopped else "complete",
        status.written,
        status.positions,
        counters.pairs,
        counters.controls,
        counters.judge_calls,
        counters.judge_calls_saved,
        counters.retries,
    )
    return ShardResult(
        shard=shard,
        shards=shards,
        positions=status.positions,
        total_positions=status.total_positions,
        written_before=written_before,
        written=status.written - written_before,
        done=status.done,
        stopped=stopped,
        invalid_lines=[i.line for i in status.invalid],
        judge_calls=counters.judge_calls,
        judge_calls_saved=counters.judge_calls_saved,
        retries=counters.retries,
    )


async def _evaluate_slots(
    spec: qualificationrun.QualificationRunSpec,
    todo: Sequence[plan.Slot],
    *,
    sink: sinks.EvidenceSink,
    status: _Status,
    counters: pairs.Counters,
    api_key: str | None,
    judge_api_key: str | None,
    policy: httpclient.RetryPolicy,
    format_check: formats.FormatCheck,
    stop: asyncio.Event,
    log_text: bool,
) -> bool:
    """Evaluate and commit `todo` in order; True when stopped early by `stop`."""
    execution = spec.execution
    limit = calls.PriorityLimit(execution.concurrency)
    call_settings: dict[str, Any] = {
        "limit": limit,
        "policy": policy,
        "timeout": execution.request_timeout_seconds,
        "max_connections": execution.concurrency,
        "on_retry": counters.on_retry,
    }
    if judge_api_key is None and spec.judge.endpoint is None:
        judge_api_key = api_key
    judge_url = spec.judge.endpoint.url if spec.judge.endpoint else spec.endpoint.url
    async with contextlib.AsyncExitStack() as stack:
        endpoint = calls.ChatEndpoint(spec.endpoint.url, role="endpoint", api_key=api_key, **call_settings)
        stack.push_async_callback(endpoint.aclose)
        judge_endpoint = calls.ChatEndpoint(judge_url, role="judge", api_key=judge_api_key, **call_settings)
        stack.push_async_callback(judge_endpoint.aclose)
        evaluator = pairs.PairEvaluator(
            spec,
            endpoint=endpoint,
            judge_endpoint=judge_endpoint,
            format_check=format_check,
            shard=status.shard,
            counters=counters,
            log_text=log_text,
        )
        committer = _Committer(sink, status, chunk_size=execution.chunk_size)
        return await _pipeline(todo, evaluator, committer, window=4 * execution.concurrency, stop=stop)


class _Committer:
    """Buffers records in position order and writes them as chunks, updating the shard status."""

    def __init__(self, sink: sinks.EvidenceSink, status: _Status, *, chunk_size: int) -> None:
        self._sink = sink
        self._status = status
        self._chunk_size = chunk_size
        self._buffer: list[dict[str, Any]] = []

    async def add(self, record: dict[str, Any]) -> None:
        self._buffer.append(record)
        if len(self._buffer) >= self._chunk_size:
            await self.flush()

    async def flush(self) -> None:
        if not self._buffer:
            return
        chunk, self._buffer = self._buffer, []
        await asyncio.to_thread(self._sink.write_chunk, chunk)
        self._status.written += len(chunk)
        log.info(
            "shard %d: wrote positions %d..%d (%d records), %d/%d written",
            self._status.shard,
            chunk[0]["seq"],
            chunk[-1]["seq"],
            len(chunk),
            self._status.written,
            self._status.positions,
        )
        await asyncio.to_thread(self._sink.write_status, self._status.as_dict())


async def _pipeline(
    todo: Sequence[plan.Slot],
    evaluator: pairs.PairEvaluator,
    committer: _Committer,
    *,
    window: int,
    stop: asyncio.Event,
) -> bool:
    """Launch slots in order (at most `window` uncommitted), commit results in order. True when stopped."""
    pending: collections.deque[asyncio.Task[dict[str, Any]]] = collections.deque()
    wake = asyncio.Event()
    stop_watch = asyncio.create_task(stop.wait())
    stop_watch.add_done_callback(lambda _: wake.set())
    launched = 0
    failure: BaseException | None = None
    try:
        while True:
            while launched < len(todo) and len(pending) < window and not stop.is_set():
                task = asyncio.create_task(evaluator.evaluate(todo[launched]))
                task.add_done_callback(lambda _: wake.set())
                pending.append(task)
                launched += 1
            while pending and pending[0].done() and pending[0].exception() is None:
                await committer.add(pending.popleft().result())
            failed = next((t for t in pending if t.done() and t.exception() is not None), None)
            if failed is not None:
                failure = failed.exception()
                break
            if stop.is_set() or (not pending and launched == len(todo)):
                break
            if not pending:
                continue  # every launched slot committed before this wake: launch the next window
            await wake.wait()
            wake.clear()
    finally:
        stop_watch.cancel()
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, stop_watch, return_exceptions=True)
    # The in-order completed prefix: the last partial chunk, or what a stop or a failure leaves behind.
    await committer.flush()
    if failure is not None:
        raise failure
    return launched < len(todo) or bool(pending)
