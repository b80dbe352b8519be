"""`python -m assay.evaluator` as the Job runs it: environment in, evidence and exit code out, surviving
SIGKILL and stopping promptly on SIGTERM."""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from evaluator_harness import BASELINE, CANDIDATE, JUDGE, evidence, make_spec, without_latency, world, write_jsonl

from assay.evaluator import errors, job
from assaylab import simulator
from assaylab.operator_process import LOOPBACK_EGRESS

REPO = pathlib.Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def slow_sim() -> Iterator[simulator.BackgroundSimulator]:
    """Models answering in ~10 ms, so a 200-pair run takes a couple of seconds."""
    latency = {"latency_ms": 10, "latency_jitter_ms": 5}
    with simulator.BackgroundSimulator(world(**{BASELINE: latency, CANDIDATE: latency, JUDGE: latency})) as sim:
        yield sim


def job_env(spec: Any, evidence_dir: pathlib.Path, **extra: str) -> dict[str, str]:
    return {
        "ASSAY_RUN_NAME": "qr-test",
        "ASSAY_NAMESPACE": "default",
        "ASSAY_RUN_SPEC": json.dumps(spec.to_wire()),
        "ASSAY_SHARDS": "1",
        "ASSAY_EVIDENCE_DIR": str(evidence_dir),
        **LOOPBACK_EGRESS,  # as the operator hands it on to the Job
        **extra,
    }


def start(env: dict[str, str]) -> subprocess.Popen[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("ASSAY_")} | env
    return subprocess.Popen(
        [sys.executable, "-m", "assay.evaluator"], env=full, cwd=REPO, stderr=subprocess.PIPE, text=True
    )


def wait_for_chunk(directory: pathlib.Path, name: str, proc: subprocess.Popen[str], *, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not (directory / name).exists():
        assert proc.poll() is None, f"evaluator exited early: {proc.stderr.read() if proc.stderr else ''}"
        assert time.monotonic() < deadline, f"{name} never appeared"
        time.sleep(0.01)


def test_job_completes_a_shard_and_exits_0(slow_sim, tmp_path):
    spec = make_spec(slow_sim.base_url, write_jsonl(tmp_path / "d.jsonl", simulator.make_dataset(20, seed=2)))
    proc = start(job_env(spec, tmp_path / "ev", JOB_COMPLETION_INDEX="0"))
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == errors.EXIT_COMPLETE, stderr
    status = json.loads((tmp_path / "ev" / "shard-0.json").read_text())
    assert status["done"] and status["written"] == status["positions"] == len(evidence(tmp_path / "ev"))
    assert "complete" in stderr
    assert "What should" not in stderr and "Explain how" not in stderr  # no prompt text in logs


def test_killed_with_sigkill_and_restarted_the_shard_has_no_duplicate_and_no_gap(slow_sim, tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", simulator.make_dataset(150, seed=6))
    spec = make_spec(slow_sim.base_url, path, execution={"concurrency": 6, "chunkSize": 10})
    env = job_env(spec, tmp_path / "ev")
    proc = start(env)
    wait_for_chunk(tmp_path / "ev", "evidence-0-0001.jsonl", proc)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=10)
    killed_at = len(evidence(tmp_path / "ev"))
    assert killed_at < 150
    restarted = start(env)
    _, stderr = restarted.communicate(timeout=120)
    assert restarted.returncode == 0, stderr
    records = evidence(tmp_path / "ev")
    assert [r["seq"] for r in records] == list(range(len(records)))
    reference = start(job_env(spec, tmp_path / "reference"))
    reference.communicate(timeout=120)
    assert without_latency(records) == without_latency(evidence(tmp_path / "reference"))


def test_sigterm_stops_promptly_leaving_an_in_order_prefix(slow_sim, tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", simulator.make_dataset(300, seed=6))
    spec = make_spec(slow_sim.base_url, path, execution={"concurrency": 6, "chunkSize": 10})
    proc = start(job_env(spec, tmp_path / "ev"))
    wait_for_chunk(tmp_path / "ev", "evidence-0-0001.jsonl", proc)
    signalled = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=10)
    assert time.monotonic() - signalled < 5.0  # well inside the Job's 10 s termination grace period
    assert proc.returncode == errors.EXIT_TRANSIENT
    assert "Stopped" in stderr
    records = evidence(tmp_path / "ev")
    assert [r["seq"] for r in records] == list(range(len(records)))
    status = json.loads((tmp_path / "ev" / "shard-0.json").read_text())
    assert not status["done"] and status["written"] == len(records) < status["positions"]


def test_missing_dataset_exits_2_and_names_it_in_the_termination_log(tmp_path):
    termination_log = tmp_path / "termination-log"
    termination_log.touch()  # Kubernetes mounts this file; main() writes it only when it exists
    missing = tmp_path / "absent.jsonl"
    spec = make_spec("http://127.0.0.1:9/v1", missing)
    code = job.main(job_env(spec, tmp_path / "ev"), termination_log=str(termination_log))
    assert code == errors.EXIT_PERMANENT
    message = termination_log.read_text()
    assert message.startswith("DatasetNotFound:") and str(missing) in message
    status = json.loads((tmp_path / "ev" / "shard-0.json").read_text())
    assert status["error_reason"] == "DatasetNotFound" and str(missing) in status["error"]


def test_invalid_spec_exits_2_naming_the_field(tmp_path):
    env = job_env(make_spec("http://127.0.0.1:9/v1", tmp_path / "d.jsonl"), tmp_path / "ev")
    wire = json.loads(env["ASSAY_RUN_SPEC"])
    wire["test"]["margin"] = 0.7
    env["ASSAY_RUN_SPEC"] = json.dumps(wire)
    assert job.main(env, termination_log=str(tmp_path / "absent")) == errors.EXIT_PERMANENT
    assert not (tmp_path / "absent").exists()


def test_shard_index_outside_the_shard_count_is_a_config_error(tmp_path):
    spec = make_spec("http://127.0.0.1:9/v1", write_jsonl(tmp_path / "d.jsonl", simulator.make_dataset(3, seed=1)))
    env = job_env(spec, tmp_path / "ev", ASSAY_SHARDS="2", JOB_COMPLETION_INDEX="2")
    assert job.main(env, termination_log=str(tmp_path / "absent")) == errors.EXIT_PERMANENT
