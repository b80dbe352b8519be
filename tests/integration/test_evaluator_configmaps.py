"""The evaluator's Kubernetes side against a real kube-apiserver: evidence and status ConfigMaps (names,
labels, owner), resume from what the API holds, read-back for the operator, the dataset from a ConfigMap,
and `python -m assay.evaluator` as the Job runs it."""

from __future__ import annotations

import asyncio
import json
import os
import pathlib
import re
import subprocess
import sys
from typing import Any

import pytest
from kubernetes import client

from assay import GROUP, VERSION, httpclient
from assay.api import QualificationRunSpec, common
from assay.evaluator import errors, sinks, sources
from assay.evaluator import kube as evaluator_kube  # `kube` is the control plane fixture
from assay.evaluator.shard import evaluate_shard
from assaylab import simulator
from assaylab.operator_process import LOOPBACK_EGRESS
from conftest import wait_for

pytestmark = pytest.mark.integration

REPO = pathlib.Path(__file__).resolve().parents[2]
MODELS = {
    "seed": 3,
    "models": {"base-model": {"quality": 0.8}, "cheap-model": {"quality": 0.6}, "judge-model": {"role": "judge"}},
}


def run_wire(dataset_name: str, url: str = "http://127.0.0.1:9/v1") -> dict[str, Any]:
    return {
        "endpoint": {"url": url},
        "baseline": {"model": "base-model"},
        "candidate": {"name": "cheap", "model": "cheap-model"},
        "dataset": {"configMapRef": {"name": dataset_name, "key": "prompts.jsonl"}},
        "judge": {"model": "judge-model"},
        "test": {"seed": 9, "controlShare": 0.1},
        "execution": {"concurrency": 8, "chunkSize": 6, "parallelism": 2},
    }


def create_run(kube: Any, namespace: str, name: str, wire: dict[str, Any]) -> str:
    """A QualificationRun object (the owner of the evidence); returns its uid."""
    api = client.CustomObjectsApi(kube.api_client())
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "QualificationRun", "metadata": {"name": name}, "spec": wire}
    created = api.create_namespaced_custom_object(GROUP, VERSION, namespace, "qualificationruns", body)
    return str(created["metadata"]["uid"])


def create_dataset(core: client.CoreV1Api, namespace: str, name: str, records: list[dict[str, Any]]) -> None:
    text = "".join(json.dumps(r) + "\n" for r in records)
    core.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name), data={"prompts.jsonl": text})
    )


def test_config_map_sink_writes_owned_labelled_chunks_and_resumes(kube, namespace):
    core = client.CoreV1Api(kube.api_client())
    uid = create_run(kube, namespace, "qr-sink", run_wire("unused"))
    sink = evaluator_kube.ConfigMapSink(core, namespace, "qr-sink", uid, 1)
    assert sink.existing_max_seq() is None
    sink.write_chunk([{"seq": 1, "id": "a"}, {"seq": 3, "id": "b"}])
    sink.write_chunk([{"seq": 5, "id": "c"}])
    sink.write_status({"shard": 1, "shards": 2, "done": False})
    sink.write_status({"shard": 1, "shards": 2, "done": True})

    chunk = core.read_namespaced_config_map("qr-sink-ev-1-0000", namespace)
    assert chunk.metadata.labels == {"assay.dev/run": "qr-sink", "assay.dev/shard": "1", "assay.dev/kind": "evidence"}
    [owner] = chunk.metadata.owner_references
    assert (owner.api_version, owner.kind, owner.name, owner.uid) == (
        "assay.dev/v1alpha1",
        "QualificationRun",
        "qr-sink",
        uid,
    )
    assert [json.loads(line)["seq"] for line in chunk.data["evidence.jsonl"].splitlines()] == [1, 3]
    status = core.read_namespaced_config_map("qr-sink-shard-1", namespace)
    assert status.metadata.labels["assay.dev/kind"] == "shard-status"
    assert json.loads(status.data["status.json"])["done"] is True

    restarted = evaluator_kube.ConfigMapSink(core, namespace, "qr-sink", uid, 1)
    assert restarted.existing_max_seq() == 5
    restarted.write_chunk([{"seq": 7, "id": "d"}])
    assert json.loads(core.read_namespaced_config_map("qr-sink-ev-1-0002", namespace).data["evidence.jsonl"]) == {
        "seq": 7,
        "id": "d",
    }
    # Two attempts of one shard racing from the same point: the second finds the chunk written (409)
    # with the same positions and skips it...
    racing = evaluator_kube.ConfigMapSink(core, namespace, "qr-sink", uid, 1)
    racing.existing_max_seq()
    restarted.write_chunk([{"seq": 9, "id": "e"}])
    racing.write_chunk([{"seq": 9, "id": "e"}])
    # ...but refuses a chunk name holding other positions: the shard restarts and resumes after them.
    late = evaluator_kube.ConfigMapSink(core, namespace, "qr-sink", uid, 1)
    late.existing_max_seq()
    restarted.write_chunk([{"seq": 11, "id": "f"}])
    with pytest.raises(errors.EvidenceStoreError, match="other positions"):
        late.write_chunk([{"seq": 13, "id": "g"}])
    records, statuses = evaluator_kube.read_evidence_configmaps(core, namespace, "qr-sink")
    assert [r["seq"] for r in records[1]] == [1, 3, 5, 7, 9, 11]
    assert statuses == {1: {"shard": 1, "shards": 2, "done": True}}


async def test_two_shards_evaluate_a_config_map_dataset_and_the_operator_reads_the_full_prefix(kube, namespace):
    core = client.CoreV1Api(kube.api_client())
    create_dataset(core, namespace, "prompts", simulator.make_dataset(40, seed=4))
    async with simulator.SimulatorServer(MODELS) as sim:
        wire = run_wire("prompts", sim.base_url)
        uid = create_run(kube, namespace, "qr-eval", wire)
        spec = QualificationRunSpec.model_validate(wire)
        loader = sources.make_loader(read_config_map=evaluator_kube.config_map_reader(core, namespace))
        results = [
            await evaluate_shard(
                spec,
                shard=k,
                shards=2,
                sink=evaluator_kube.ConfigMapSink(core, namespace, "qr-eval", uid, k),
                api_key=None,
                judge_api_key=None,
                dataset_loader=loader,
                retry_policy=httpclient.RetryPolicy(base_delay=0.001),
            )
            for k in range(2)
        ]
    records_by_shard, statuses = evaluator_kube.read_evidence_configmaps(core, namespace, "qr-eval")
    total = results[0].total_positions
    assert set(statuses) == {0, 1} and all(s["done"] and s["total_positions"] == total for s in statuses.values())
    assert [r["seq"] for r in records_by_shard[0]] == list(range(0, total, 2))
    prefix = sinks.longest_complete_prefix(records_by_shard, 2)
    assert [r["seq"] for r in prefix] == list(range(total))
    assert sum(not r["control"] for r in prefix) == 40


def test_missing_dataset_config_map_is_a_permanent_error_naming_it(kube, namespace):
    core = client.CoreV1Api(kube.api_client())
    read = evaluator_kube.config_map_reader(core, namespace)
    expected = re.escape(f"{namespace}/absent key 'prompts.jsonl': ConfigMap not found")
    with pytest.raises(errors.DatasetSourceError, match=expected):
        asyncio.run(read(common.ConfigMapKeyRef(name="absent", key="prompts.jsonl")))
    create_dataset(core, namespace, "other-key", [])
    with pytest.raises(errors.DatasetSourceError, match="no such key"):
        asyncio.run(read(common.ConfigMapKeyRef(name="other-key", key="missing.jsonl")))


def test_evaluator_job_writes_evidence_configmaps_for_each_shard(kube, namespace):
    core = client.CoreV1Api(kube.api_client())
    create_dataset(core, namespace, "prompts", simulator.make_dataset(12, seed=5))
    with simulator.BackgroundSimulator(MODELS) as sim:
        wire = run_wire("prompts", sim.base_url)
        uid = create_run(kube, namespace, "qr-job", wire)
        env = {k: v for k, v in os.environ.items() if not k.startswith("ASSAY_")} | {
            "KUBECONFIG": str(kube.kubeconfig),
            "ASSAY_RUN_NAME": "qr-job",
            "ASSAY_NAMESPACE": namespace,
            "ASSAY_RUN_UID": uid,
            "ASSAY_RUN_SPEC": json.dumps(wire),
            "ASSAY_SHARDS": "2",
            **LOOPBACK_EGRESS,  # as the operator hands it on to the Job; the simulator listens on loopback
        }
        for index in ("0", "1"):
            done = subprocess.run(
                [sys.executable, "-m", "assay.evaluator"],
                env=env | {"JOB_COMPLETION_INDEX": index},
                cwd=REPO,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert done.returncode == 0, done.stderr
    records_by_shard, statuses = evaluator_kube.read_evidence_configmaps(core, namespace, "qr-job")
    assert statuses[0]["done"] and statuses[1]["done"]
    assert len(sinks.longest_complete_prefix(records_by_shard, 2)) == statuses[0]["total_positions"]


@pytest.mark.slow  # the garbage collector discovers the CRD's resource only on its 30 s resync
def test_deleting_the_run_garbage_collects_its_evidence(kube, namespace):
    core = client.CoreV1Api(kube.api_client())
    uid = create_run(kube, namespace, "qr-gc", run_wire("unused"))
    sink = evaluator_kube.ConfigMapSink(core, namespace, "qr-gc", uid, 0)
    sink.write_chunk([{"seq": 0, "id": "a"}])
    sink.write_status({"shard": 0, "shards": 1, "done": True})
    client.CustomObjectsApi(kube.api_client()).delete_namespaced_custom_object(
        GROUP, VERSION, namespace, "qualificationruns", "qr-gc"
    )
    wait_for(
        lambda: not core.list_namespaced_config_map(namespace, label_selector="assay.dev/run=qr-gc").items,
        timeout=90,
        what="evidence ConfigMaps garbage-collected with their run",
    )
