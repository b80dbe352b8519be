"""The live quality watch's evidence against a real kube-apiserver: batches stored as ConfigMap chunks owned by
the RoutePolicy (a second batch of the same chunk extends it), read back by `assay analyze --watch`, whose
replay reproduces status.watch; deleting the policy lets the garbage collector delete the chunks."""

from __future__ import annotations

import datetime
import io
import json
import os
import pathlib
import random

import pytest
import yaml
from kubernetes import client

from assay import GROUP, VERSION
from assay import kube as kube_api
from assay.api import routepolicy
from assay.controllers import watch_evidence
from assay.qualification import analyze
from assay.watch import evidence, state
from conftest import wait_for

pytestmark = pytest.mark.integration

EXAMPLE = pathlib.Path(__file__).resolve().parents[2] / "examples" / "routepolicy-litellm.yaml"
PROMOTED = datetime.datetime(2026, 12, 4, 6, 0, tzinfo=datetime.UTC)


def test_watch_evidence_is_kept_owned_by_the_policy_and_reproduces_status(kube, namespace):
    os.environ["KUBECONFIG"] = str(kube.kubeconfig)
    custom = client.CustomObjectsApi(kube.api_client())
    core = client.CoreV1Api(kube.api_client())
    body = next(d for d in yaml.safe_load_all(EXAMPLE.read_text()) if d and d.get("kind") == "RoutePolicy")
    created = custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "routepolicies", body)
    name, uid = created["metadata"]["name"], created["metadata"]["uid"]
    settings = state.Settings.from_spec(
        routepolicy.Watch.model_validate({"meanDaysBetweenFalseAlarms": 1, "maxSamplesPerDay": 500}),
        qualification_margin=0.05,
    )
    watch = state.start(candidate="mini", promoted_at=PROMOTED, settings=settings)
    store = watch_evidence.Store()
    rng = random.Random(5)
    now = PROMOTED
    for i in range(260):  # two chunks; the first is written in two batches
        score = rng.choice([0.0, 0.5, 0.5, 1.0, 1.0] if i < 120 else [0.0, 0.0, 0.0, 0.25, 0.5, 1.0])
        now += datetime.timedelta(seconds=30)
        before = evidence.snapshot(watch)
        state.record(watch, settings, score=score, cost_usd=0.01, now=now)
        if watch.samples > before["samples"]:
            sample = evidence.sample_after(watch, t=now, score=score)
            store.add(
                namespace=namespace,
                name=name,
                uid=uid,
                candidate="mini",
                promoted_at=PROMOTED,
                settings=settings,
                before=before,
                sample=sample,
            )
        if i in (99, 259):
            store.flush(uid, force=True)
    kube_api.patch_status("RoutePolicy", namespace, name, {"watch": watch.to_wire()})

    chunks = core.list_namespaced_config_map(namespace, label_selector=f"{watch_evidence.LABEL_POLICY_UID}={uid}")
    assert sorted(c.metadata.name for c in chunks.items) == [f"{name}-watch-00", f"{name}-watch-01"]
    for item in chunks.items:
        (owner,) = item.metadata.owner_references
        assert (owner.kind, owner.name, owner.uid) == ("RoutePolicy", name, uid)
        assert "prompt" not in item.data[watch_evidence.DATA_KEY]

    out = io.StringIO()
    assert analyze.main(["--watch", name, "-n", namespace, "--json"], stdout=out) == 0
    line = json.loads(out.getvalue())
    assert line["matches"] and line["complete"], line["message"]
    assert (line["kept"], line["e_value"], line["alarmed_at"]) == (watch.samples, watch.e_value, watch.alarmed_at)

    custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, "routepolicies", name)
    wait_for(
        lambda: (
            not core.list_namespaced_config_map(
                namespace, label_selector=f"{watch_evidence.LABEL_POLICY_UID}={uid}"
            ).items
        ),
        timeout=120,
        what="the garbage collector deleting the watch evidence with its policy",
    )
