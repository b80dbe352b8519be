"""`python -m assay.evaluator`: the program a QualificationRun's Job runs, one shard per pod.

The environment is the contract with the operator:
    ASSAY_RUN_NAME, ASSAY_NAMESPACE, ASSAY_RUN_UID   the run (evidence ConfigMaps are owned by it)
    ASSAY_RUN_SPEC                                   the QualificationRunSpec as JSON (camelCase)
    ASSAY_SHARDS, JOB_COMPLETION_INDEX               shard count and this pod's shard (default 0)
    ASSAY_ENDPOINT_API_KEY, ASSAY_JUDGE_API_KEY      bearer tokens, optional, never logged
    ASSAY_EVIDENCE_DIR                               write evidence as local files instead (offline, tests)
    ASSAY_LOG_TEXT=1                                 allow prompt/answer text in debug logs (default never)
Exit codes: 0 shard complete, 1 transient failure or stopped (the Job retries and the shard resumes),
2 permanent configuration error. A non-zero exit writes its message to /dev/termination-log (when that
file exists) and, where possible, to the shard status.
"""

from __future__ import annotations

import asyncio
import logging
import os
import pathlib
import signal
import sys
from collections.abc import Mapping

import pydantic
from kubernetes import client

from assay import egress
from assay.api import qualificationrun
from assay.evaluator import errors, kube, shard, sinks, sources

log = logging.getLogger("assay.evaluator")

TERMINATION_LOG = "/dev/termination-log"


def _write_termination_message(message: str, *, path: str) -> None:
    # Kubernetes mounts this file into the container; elsewhere it does not exist and we create nothing.
    target = pathlib.Path(path)
    if target.is_file() and os.access(target, os.W_OK):
        target.write_text(message[:4000])


def _int_env(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise errors.ConfigError(f"{name}={raw!r} is not an integer", reason="InvalidEnvironment") from None


def _spec_from_env(env: Mapping[str, str]) -> qualificationrun.QualificationRunSpec:
    raw = env.get("ASSAY_RUN_SPEC")
    if not raw:
        raise errors.ConfigError("ASSAY_RUN_SPEC is not set: the Job must carry the run's spec", reason="InvalidSpec")
    try:
        return qualificationrun.QualificationRunSpec.model_validate_json(raw)
    except pydantic.ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in exc.errors()[:5])
        raise errors.ConfigError(
            f"ASSAY_RUN_SPEC is not a valid QualificationRunSpec: {problems}", reason="InvalidSpec"
        ) from None


def _sink(env: Mapping[str, str], api: client.CoreV1Api | None, *, shard_index: int) -> sinks.EvidenceSink:
    evidence_dir = env.get("ASSAY_EVIDENCE_DIR")
    if evidence_dir:
        return sinks.FileSink(evidence_dir, shard_index)
    run_name = env.get("ASSAY_RUN_NAME")
    if not run_name:
        raise errors.ConfigError(
            "ASSAY_RUN_NAME is not set: evidence ConfigMaps are named after the run", reason="InvalidEnvironment"
        )
    assert api is not None
    namespace = env.get("ASSAY_NAMESPACE", "default")
    return kube.ConfigMapSink(api, namespace, run_name, env.get("ASSAY_RUN_UID") or None, shard_index)


async def _run(env: Mapping[str, str], *, stop: asyncio.Event) -> int:
    spec = _spec_from_env(env)
    shards = _int_env(env, "ASSAY_SHARDS", spec.execution.parallelism)
    shard_index = _int_env(env, "JOB_COMPLETION_INDEX", 0)
    api: client.CoreV1Api | None = None
    read_config_map: sources.ConfigMapReader | None = None
    # Offline runs (ASSAY_EVIDENCE_DIR) need the cluster only for a configMapRef dataset.
    if not env.get("ASSAY_EVIDENCE_DIR") or spec.dataset.config_map_ref is not None:
        api = await asyncio.to_thread(kube.core_v1_api)
        read_config_map = kube.config_map_reader(api, env.get("ASSAY_NAMESPACE", "default"))
    result = await shard.evaluate_shard(
        spec,
        shard=shard_index,
        shards=shards,
        sink=_sink(env, api, shard_index=shard_index),
        api_key=env.get("ASSAY_ENDPOINT_API_KEY") or None,
        judge_api_key=env.get("ASSAY_JUDGE_API_KEY") or None,
        dataset_loader=sources.make_loader(
            read_config_map=read_config_map, timeout=spec.execution.request_timeout_seconds
        ),
        stop=stop,
        log_text=env.get("ASSAY_LOG_TEXT") == "1",
    )
    if result.stopped:
        raise errors.TransientError(
            f"stopped by SIGTERM with {result.written_before + result.written} of {result.positions} positions "
            "written; a restart resumes after them",
            reason="Stopped",
        )
    return errors.EXIT_COMPLETE


async def _main_async(env: Mapping[str, str]) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        return await _run(env, stop=stop)
    except egress.EgressDenied as exc:  # the URL or its address is refused: a retry would be refused again
        raise errors.ConfigError(str(exc), reason="EgressDenied") from None


def main(env: Mapping[str, str] | None = None, *, termination_log: str | None = None) -> int:
    """Run this pod's shard; returns the exit code."""
    env = os.environ if env is None else env
    # A kubelet maps terminationMessagePath into the container; the local executor names its file in env.
    termination_log = termination_log or env.get("ASSAY_TERMINATION_LOG") or TERMINATION_LOG
    logging.basicConfig(
        level=logging.DEBUG if env.get("ASSAY_LOG_LEVEL", "").upper() == "DEBUG" else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # httpx logs every request URL at INFO; counts are enough.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        return asyncio.run(_main_async(env))
    except errors.EvaluatorError as exc:
        kind = "permanent" if exc.exit_code == errors.EXIT_PERMANENT else "transient"
        log.error("%s (%s, %s)", exc, exc.reason, kind)
        _write_termination_message(f"{exc.reason}: {exc}", path=termination_log)
        return exc.exit_code
    except Exception as exc:  # a bug or an unforeseen failure: retry rather than fail the run for good
        log.exception("unexpected error")
        _write_termination_message(f"InternalError: {type(exc).__name__}: {exc}", path=termination_log)
        return errors.EXIT_TRANSIENT
