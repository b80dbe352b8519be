"""The live quality watch's evidence in ConfigMaps: samples recorded in status.watch are batched in memory and
stored as chunks (assay.watch.evidence decides what a chunk holds), and read back for `assay report` and
`assay analyze`.

Each policy holds at most `evidence.SLOTS` ConfigMaps `<policy>-watch-<slot>` (labels assay.dev/kind
watch-evidence, assay.dev/policy-uid, assay.dev/promotion), owned by the RoutePolicy so the garbage collector
deletes them with it. A chunk is created once, extended by patch while its samples come in, and overwritten
when its slot is reused by a later chunk or promotion (the operator's RBAC grants configmaps get, list,
create and patch, not delete). Pending samples are stored every `FLUSH_SAMPLES` samples, when a sample proves
a drift, and when the oldest has waited `FLUSH_SECONDS` (the watch check timer asks): a crash loses at most
that many samples' evidence, never their counts in status.watch, which stay authoritative.
"""

from __future__ import annotations

import datetime
import logging
import threading
import time
from typing import Any

from kubernetes import client

from assay import GROUP
from assay import kube as kube_api
from assay.controllers import manifests
from assay.watch import evidence, state

logger = logging.getLogger("assay.watch")
LABEL_KIND = f"{GROUP}/kind"
LABEL_POLICY_UID = f"{GROUP}/policy-uid"
LABEL_PROMOTION = f"{GROUP}/promotion"
KIND_WATCH_EVIDENCE = "watch-evidence"
DATA_KEY = "watch.jsonl"
FLUSH_SAMPLES = 20
FLUSH_SECONDS = 600.0


def configmap_name(policy: str, slot: int) -> str:
    suffix = f"-watch-{slot:02d}"
    return policy[: 253 - len(suffix)].rstrip("-.") + suffix


class _Policy:
    def __init__(self, namespace: str, name: str, uid: str) -> None:
        self.namespace, self.name, self.uid = namespace, name, uid
        self.pending = evidence.Pending()
        self.headers: dict[str, dict[str, Any]] = {}


class Store:
    """Pending samples per policy, and their writing (one flush at a time: the operator is the only writer)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._policies: dict[str, _Policy] = {}

    def add(
        self,
        *,
        namespace: str,
        name: str,
        uid: str,
        candidate: str,
        promoted_at: datetime.datetime,
        settings: state.Settings,
        before: dict[str, Any],
        sample: evidence.Sample,
    ) -> None:
        """Keep one recorded sample until the next flush."""
        promotion = evidence.promotion_key(candidate, promoted_at)
        with self._lock:
            policy = self._policies.setdefault(uid, _Policy(namespace, name, uid))
            policy.headers[promotion] = evidence.header(
                policy=f"{namespace}/{name}", candidate=candidate, promoted_at=promoted_at, chunk=0, settings=settings
            )
            policy.pending.add(promotion, before, sample, at=time.monotonic())

    def flush(self, uid: str, *, force: bool = False) -> None:
        """Store the policy's pending samples if due (or `force`); a failed write drops them, with a warning."""
        with self._lock:
            policy = self._policies.get(uid)
            if policy is None:
                return
            due = policy.pending.due(now=time.monotonic(), samples=FLUSH_SAMPLES, seconds=FLUSH_SECONDS)
            if not (force and len(policy.pending)) and not due:
                return
            taken, headers = policy.pending.take(), dict(policy.headers)
        with self._flush_lock:
            api = kube_api.core()
            for (promotion, chunk), segments in sorted(taken.items()):
                head = {**headers[promotion], "chunk": chunk}
                try:
                    _write(api, policy, head, segments)
                except client.ApiException as exc:
                    kept = sum(len(s.samples) for s in segments)
                    logger.warning(
                        "watch evidence of %s/%s: %d samples not stored (HTTP %s %s); status.watch still counts them",
                        policy.namespace,
                        policy.name,
                        kept,
                        exc.status,
                        exc.reason,
                    )

    def forget(self, uid: str) -> None:
        with self._lock:
            self._policies.pop(uid, None)


def _write(api: client.CoreV1Api, policy: _Policy, head: dict[str, Any], segments: list[evidence.Segment]) -> None:
    name = configmap_name(policy.name, evidence.slot_of(int(head["chunk"])))
    text = evidence.encode_chunk(head, segments)
    body: Any = {  # the client takes a plain dict as well as a V1ConfigMap
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "namespace": policy.namespace,
            "labels": {
                LABEL_KIND: KIND_WATCH_EVIDENCE,
                LABEL_POLICY_UID: policy.uid,
                LABEL_PROMOTION: head["promotion"],
            },
            "ownerReferences": [
                manifests.owner_reference(kind="RoutePolicy", name=policy.name, uid=policy.uid, controller=False)
            ],
        },
        "data": {DATA_KEY: text},
    }
    try:
        api.create_namespaced_config_map(policy.namespace, body, _request_timeout=kube_api.REQUEST_TIMEOUT)
        return
    except client.ApiException as exc:
        if exc.status != 409:
            raise
    existing: Any = api.read_namespaced_config_map(name, policy.namespace, _request_timeout=kube_api.REQUEST_TIMEOUT)
    labels = existing.metadata.labels or {}
    if labels.get(LABEL_POLICY_UID) != policy.uid:
        logger.warning("watch evidence ConfigMap %s/%s belongs to another object; not written", policy.namespace, name)
        return
    old = (existing.data or {}).get(DATA_KEY, "")
    try:
        found = evidence.decode_chunk(old, source=f"ConfigMap {policy.namespace}/{name}").header
    except evidence.WatchEvidenceError:
        found = {}
    same = found.get("promotion") == head["promotion"] and found.get("chunk") == head["chunk"]
    if same:
        text = old + "".join(evidence.encode_segment(s) for s in segments)
    patch = {
        "metadata": {
            "labels": {LABEL_PROMOTION: head["promotion"]},
            "resourceVersion": existing.metadata.resource_version,
        },
        "data": {DATA_KEY: text},
    }
    api.patch_namespaced_config_map(name, policy.namespace, patch, _request_timeout=kube_api.REQUEST_TIMEOUT)


def read(api: client.CoreV1Api, namespace: str, uid: str) -> list[evidence.Chunk]:
    """Every readable watch evidence chunk of the policy with this uid (a chunk that cannot be read is skipped
    with a warning: the replay then shows its samples missing)."""
    found: Any = api.list_namespaced_config_map(
        namespace,
        label_selector=f"{LABEL_KIND}={KIND_WATCH_EVIDENCE},{LABEL_POLICY_UID}={uid}",
        _request_timeout=kube_api.REQUEST_TIMEOUT,
    )
    chunks = []
    for item in found.items:
        source = f"ConfigMap {namespace}/{item.metadata.name}"
        try:
            chunks.append(evidence.decode_chunk((item.data or {}).get(DATA_KEY, ""), source=source))
        except evidence.WatchEvidenceError as exc:
            logger.warning("%s", exc)
    return chunks


STORE = Store()
