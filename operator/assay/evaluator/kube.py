"""The evaluator's Kubernetes I/O: evidence and shard status ConfigMaps, the dataset ConfigMap key, and the
client setup. Uses the synchronous kubernetes client; async callers wrap calls in asyncio.to_thread.

Names and labels (the operator reads them back with read_evidence_configmaps):
- `<run>-ev-<shard>-<chunk, 4 digits>`: data `evidence.jsonl`, labels assay.dev/run, assay.dev/shard,
  assay.dev/kind=evidence;
- `<run>-shard-<shard>`: data `status.json`, labels assay.dev/run, assay.dev/shard, assay.dev/kind=shard-status;
both owned by the QualificationRun, so deleting the run deletes its evidence.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from kubernetes import client, config
from kubernetes.client import exceptions as k8s_exceptions

from assay import API_VERSION, GROUP
from assay import kube as kube_api
from assay.api import common
from assay.evaluator import errors, sinks, sources

LABEL_RUN = f"{GROUP}/run"
LABEL_SHARD = f"{GROUP}/shard"
LABEL_KIND = f"{GROUP}/kind"
KIND_EVIDENCE = "evidence"
KIND_SHARD_STATUS = "shard-status"
EVIDENCE_KEY = "evidence.jsonl"
STATUS_KEY = "status.json"


def evidence_configmap_name(run_name: str, shard: int, chunk: int) -> str:
    return f"{run_name}-ev-{shard}-{chunk:04d}"


def status_configmap_name(run_name: str, shard: int) -> str:
    return f"{run_name}-shard-{shard}"


def owner_reference(run_name: str, run_uid: str) -> client.V1OwnerReference:
    """An ownerReference to the QualificationRun: the garbage collector deletes the evidence with the run."""
    return client.V1OwnerReference(api_version=API_VERSION, kind="QualificationRun", name=run_name, uid=run_uid)


def core_v1_api() -> client.CoreV1Api:
    """A CoreV1Api from the pod's ServiceAccount in a cluster, else from KUBECONFIG / ~/.kube/config."""
    try:
        config.load_incluster_config()
    except config.ConfigException:
        try:
            config.load_kube_config()
        except (config.ConfigException, OSError) as exc:
            raise errors.ConfigError(
                f"no Kubernetes access: not in a cluster and no usable kubeconfig ({exc}); set KUBECONFIG "
                "or ASSAY_EVIDENCE_DIR for offline runs",
                reason="NoKubernetesAccess",
            ) from None
    return client.CoreV1Api()


def _api_error(exc: k8s_exceptions.ApiException, *, what: str) -> errors.EvaluatorError:
    if exc.status == 403:
        return errors.ConfigError(
            f"{what}: forbidden (HTTP 403); the Job's ServiceAccount needs RBAC for configmaps",
            reason="Forbidden",
        )
    if exc.status == 422:
        return errors.ConfigError(f"{what}: rejected as invalid (HTTP 422): {exc.reason}", reason="InvalidObject")
    return errors.EvidenceStoreError(f"{what}: HTTP {exc.status} {exc.reason}", reason="KubernetesAPIError")


def _list_config_maps(api: client.CoreV1Api, namespace: str, selector: str) -> list[Any]:
    items: list[Any] = []
    token: str | None = None
    while True:
        kwargs: dict[str, Any] = {"label_selector": selector, "limit": 500}
        if token:
            kwargs["_continue"] = token
        page = api.list_namespaced_config_map(namespace, **kwargs, _request_timeout=kube_api.REQUEST_TIMEOUT)
        items.extend(page.items)
        token = page.metadata._continue if page.metadata else None
        if not token:
            return items


_CHUNK_SUFFIX = re.compile(r"-ev-(\d+)-(\d{4,})$")


class ConfigMapSink:
    """Evidence chunks and the shard status as ConfigMaps owned by the QualificationRun."""

    def __init__(
        self, core_v1_api: client.CoreV1Api, namespace: str, run_name: str, run_uid: str | None, shard: int
    ) -> None:
        self.api = core_v1_api
        self.namespace = namespace
        self.run_name = run_name
        self.run_uid = run_uid
        self.shard = shard
        self._next_chunk: int | None = None
        self._status_exists = False

    def _config_map(self, name: str, kind: str, data: dict[str, str]) -> client.V1ConfigMap:
        owners = [owner_reference(self.run_name, self.run_uid)] if self.run_uid else None
        metadata = client.V1ObjectMeta(
            name=name,
            namespace=self.namespace,
            labels={LABEL_RUN: self.run_name, LABEL_SHARD: str(self.shard), LABEL_KIND: kind},
            owner_references=owners,
        )
        return client.V1ConfigMap(metadata=metadata, data=data)

    def existing_max_seq(self) -> int | None:
        selector = f"{LABEL_RUN}={self.run_name},{LABEL_SHARD}={self.shard},{LABEL_KIND}={KIND_EVIDENCE}"
        try:
            items = _list_config_maps(self.api, self.namespace, selector)
        except k8s_exceptions.ApiException as exc:
            raise _api_error(exc, what=f"listing evidence of shard {self.shard}") from None
        chunks: list[int] = [-1]
        seqs: list[int] = []
        for item in items:
            if match := _CHUNK_SUFFIX.search(item.metadata.name):
                chunks.append(int(match.group(2)))
            text = (item.data or {}).get(EVIDENCE_KEY, "")
            seqs.extend(r["seq"] for r in sinks.decode_chunk(text, source=f"ConfigMap {item.metadata.name}"))
        self._next_chunk = max(chunks) + 1
        return max(seqs, default=None)

    def write_chunk(self, records: Sequence[Mapping[str, Any]]) -> None:
        if self._next_chunk is None:
            self.existing_max_seq()
        assert self._next_chunk is not None
        name = evidence_configmap_name(self.run_name, self.shard, self._next_chunk)
        body = self._config_map(name, KIND_EVIDENCE, {EVIDENCE_KEY: sinks.encode_chunk(records)})
        try:
            self.api.create_namespaced_config_map(self.namespace, body, _request_timeout=kube_api.REQUEST_TIMEOUT)
        except k8s_exceptions.ApiException as exc:
            if exc.status != 409:
                raise _api_error(exc, what=f"writing evidence ConfigMap {name}") from None
            # Written by an earlier attempt that did not live to know it. Found by list: the evaluator's Role
            # grants get only on the dataset ConfigMap (chunk names are not known when the Role is made).
            (existing,) = self.api.list_namespaced_config_map(
                self.namespace, field_selector=f"metadata.name={name}", _request_timeout=kube_api.REQUEST_TIMEOUT
            ).items
            text = (existing.data or {}).get(EVIDENCE_KEY, "")
            sinks.check_rewrite(
                sinks.decode_chunk(text, source=f"ConfigMap {name}"), records, source=f"ConfigMap {name}"
            )
        self._next_chunk += 1

    def write_status(self, status: Mapping[str, Any]) -> None:
        name = status_configmap_name(self.run_name, self.shard)
        data = {STATUS_KEY: json.dumps(status, indent=1)}
        try:
            if self._status_exists:
                self.api.patch_namespaced_config_map(
                    name, self.namespace, {"data": data}, _request_timeout=kube_api.REQUEST_TIMEOUT
                )
                return
            try:
                self.api.create_namespaced_config_map(
                    self.namespace,
                    self._config_map(name, KIND_SHARD_STATUS, data),
                    _request_timeout=kube_api.REQUEST_TIMEOUT,
                )
            except k8s_exceptions.ApiException as exc:
                if exc.status != 409:
                    raise
                self.api.patch_namespaced_config_map(
                    name, self.namespace, {"data": data}, _request_timeout=kube_api.REQUEST_TIMEOUT
                )
            self._status_exists = True
        except k8s_exceptions.ApiException as exc:
            raise _api_error(exc, what=f"writing shard status ConfigMap {name}") from None


def read_evidence_configmaps(
    core_v1_api: client.CoreV1Api, namespace: str, run_name: str
) -> tuple[dict[int, list[dict[str, Any]]], dict[int, dict[str, Any]]]:
    """Every shard's evidence records (sorted by seq) and shard statuses of one run, by shard index."""
    records: dict[int, list[dict[str, Any]]] = {}
    statuses: dict[int, dict[str, Any]] = {}
    for item in _list_config_maps(core_v1_api, namespace, f"{LABEL_RUN}={run_name}"):
        labels = item.metadata.labels or {}
        data = item.data or {}
        try:
            shard = int(labels.get(LABEL_SHARD, ""))
        except ValueError:
            continue
        if labels.get(LABEL_KIND) == KIND_EVIDENCE:
            source = f"ConfigMap {item.metadata.name}"
            records.setdefault(shard, []).extend(sinks.decode_chunk(data.get(EVIDENCE_KEY, ""), source=source))
        elif labels.get(LABEL_KIND) == KIND_SHARD_STATUS and STATUS_KEY in data:
            status = json.loads(data[STATUS_KEY])
            statuses[int(status.get("shard", shard))] = status
    for shard_records in records.values():
        shard_records.sort(key=lambda r: r["seq"])
    return records, statuses


_METADATA_ONLY = {"Accept": "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"}


@dataclasses.dataclass(frozen=True)
class Listed:
    """A ConfigMap of a run, as metadata: what it is (evidence or shard status), of which shard, at which version."""

    name: str
    version: str
    kind: str
    shard: int


def list_run_config_maps(core_v1_api: client.CoreV1Api, namespace: str, run_name: str) -> list[Listed]:
    """The run's evidence and shard status ConfigMaps, metadata only (no data): one request, small whatever the
    evidence holds."""
    items: list[Listed] = []
    token: str | None = None
    while True:
        kwargs: dict[str, Any] = {"label_selector": f"{LABEL_RUN}={run_name}", "limit": 500}
        if token:
            kwargs["_continue"] = token
        response: Any = core_v1_api.list_namespaced_config_map(  # a urllib3 response (_preload_content=False)
            namespace,
            **kwargs,
            _preload_content=False,
            _headers=_METADATA_ONLY,
            _request_timeout=kube_api.REQUEST_TIMEOUT,
        )
        page = json.loads(response.data)
        for item in page.get("items") or []:
            meta = item.get("metadata") or {}
            labels = meta.get("labels") or {}
            try:
                shard = int(labels.get(LABEL_SHARD, ""))
            except ValueError:
                continue
            kind = labels.get(LABEL_KIND)
            if kind in (KIND_EVIDENCE, KIND_SHARD_STATUS):
                items.append(Listed(meta["name"], str(meta.get("resourceVersion") or ""), kind, shard))
        token = (page.get("metadata") or {}).get("continue")
        if not token:
            return items


def read_run_config_map(core_v1_api: client.CoreV1Api, namespace: str, listed: Listed) -> Any:
    """One evidence chunk's records, or one shard status, by name; None if it is gone (the run was deleted)."""
    try:
        item = core_v1_api.read_namespaced_config_map(listed.name, namespace, _request_timeout=kube_api.REQUEST_TIMEOUT)
    except k8s_exceptions.ApiException as exc:
        if exc.status == 404:
            return None
        raise
    data = item.data or {}
    if listed.kind == KIND_EVIDENCE:
        return sinks.decode_chunk(data.get(EVIDENCE_KEY, ""), source=f"ConfigMap {listed.name}")
    return json.loads(data[STATUS_KEY]) if STATUS_KEY in data else None


def config_map_reader(core_v1_api: client.CoreV1Api, namespace: str) -> sources.ConfigMapReader:
    """Reads dataset.configMapRef through the API (data, or binaryData decoded as UTF-8)."""

    def read(ref: common.ConfigMapKeyRef) -> str:
        where = f"dataset.configMapRef {namespace}/{ref.name} key {ref.key!r}"
        try:
            item = core_v1_api.read_namespaced_config_map(
                ref.name, namespace, _request_timeout=kube_api.REQUEST_TIMEOUT
            )
        except k8s_exceptions.ApiException as exc:
            if exc.status == 404:
                raise errors.DatasetSourceError(
                    f"{where}: ConfigMap not found; create it or fix the reference", reason="DatasetNotFound"
                ) from None
            raise _api_error(exc, what=f"reading {where}") from None
        data, binary_data = item.data or {}, item.binary_data or {}
        if ref.key in data:
            return data[ref.key]
        if ref.key in binary_data:
            try:
                return base64.b64decode(binary_data[ref.key]).decode("utf-8")
            except (ValueError, UnicodeDecodeError):
                raise errors.DatasetSourceError(f"{where}: not UTF-8 text", reason="DatasetUnreadable") from None
        keys = ", ".join(sorted({*data, *binary_data})) or "none"
        raise errors.DatasetSourceError(
            f"{where}: the ConfigMap has no such key (keys: {keys})", reason="DatasetNotFound"
        )

    async def read_async(ref: common.ConfigMapKeyRef) -> str:
        return await asyncio.to_thread(read, ref)

    return read_async
