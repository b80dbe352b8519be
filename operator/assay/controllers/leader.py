"""Leader election on a coordination.k8s.io/v1 Lease, as client-go's leaderelection does it.

Only the leader acts: it runs kopf, the route writer and the alert webhook, and only it reports ready (so the
Service reaches the leader only). A standby polls the Lease every `retry` seconds and takes it once the holder has
not renewed for `duration` seconds, measured on the standby's own clock from when it last saw the Lease change
(so clock skew between nodes does not matter). A leader that cannot renew within `renew_deadline` stops leading:
the operator process exits and restarts as a standby, so a deposed leader never acts next to a new one.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import os
import socket
import threading
import time
import uuid
from typing import Any

from kubernetes import client

from assay import clock, kube

logger = logging.getLogger("assay.leader")


@dataclasses.dataclass(frozen=True)
class LeaseSettings:
    namespace: str
    name: str = "assay-operator"
    duration: float = 15.0
    renew_deadline: float = 10.0
    retry: float = 2.0

    @classmethod
    def from_env(cls) -> LeaseSettings | None:
        """From ASSAY_LEADER_ELECTION (true to elect), ASSAY_LEASE_NAMESPACE (else POD_NAMESPACE), ASSAY_LEASE_NAME,
        ASSAY_LEASE_DURATION, ASSAY_LEASE_RENEW_DEADLINE, ASSAY_LEASE_RETRY (seconds). None when off."""
        if os.environ.get("ASSAY_LEADER_ELECTION", "").strip().lower() not in ("1", "true", "yes"):
            return None
        namespace = os.environ.get("ASSAY_LEASE_NAMESPACE") or os.environ.get("POD_NAMESPACE") or "default"
        settings = cls(
            namespace=namespace,
            name=os.environ.get("ASSAY_LEASE_NAME", "assay-operator"),
            duration=float(os.environ.get("ASSAY_LEASE_DURATION", "15")),
            renew_deadline=float(os.environ.get("ASSAY_LEASE_RENEW_DEADLINE", "10")),
            retry=float(os.environ.get("ASSAY_LEASE_RETRY", "2")),
        )
        if not settings.retry < settings.renew_deadline < settings.duration:
            raise SystemExit(
                "leader election needs ASSAY_LEASE_RETRY < ASSAY_LEASE_RENEW_DEADLINE < ASSAY_LEASE_DURATION "
                f"(got {settings.retry}, {settings.renew_deadline}, {settings.duration})"
            )
        return settings


class Elector:
    """Acquires and renews one Lease for this process (identity: host name plus a random suffix)."""

    def __init__(self, settings: LeaseSettings, *, identity: str | None = None) -> None:
        self.settings = settings
        self.identity = identity or f"{socket.gethostname()}_{uuid.uuid4().hex[:8]}"
        self._observed: tuple[Any, ...] | None = None
        self._observed_at = 0.0
        self.leading_since: float | None = None
        self.where = f"{settings.namespace}/{settings.name}"
        self._stopping = threading.Event()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def stop(self) -> None:
        """End `acquire` and `keep` at their next poll (a clean shutdown; the event loop waits for their thread)."""
        self._stopping.set()

    def _api(self) -> client.CoordinationV1Api:
        return client.CoordinationV1Api(kube.api_client())

    def try_acquire_or_renew(self) -> bool:
        """One round: True if this process holds the Lease afterwards."""
        api = self._api()
        now = clock.now()
        settings = self.settings
        try:
            lease: Any = api.read_namespaced_lease(
                settings.name, settings.namespace, _request_timeout=kube.REQUEST_TIMEOUT
            )
        except client.ApiException as exc:
            if exc.status != 404:
                logger.warning("reading Lease %s/%s failed: %s", settings.namespace, settings.name, exc.reason)
                return False
            body = {
                "metadata": {"name": settings.name, "namespace": settings.namespace},
                "spec": self._spec(now, acquire=now, transitions=0),
            }
            try:
                api.create_namespaced_lease(
                    settings.namespace,
                    body,  # type: ignore[arg-type]
                    _request_timeout=kube.REQUEST_TIMEOUT,
                )
            except client.ApiException as create_exc:
                logger.info(
                    "creating Lease %s/%s lost a race: %s", settings.namespace, settings.name, create_exc.reason
                )
                return False
            return True
        except Exception as exc:  # a timeout or a refused connection: this round fails
            logger.warning("reading Lease %s/%s failed: %s", settings.namespace, settings.name, exc)
            return False
        spec = lease.spec
        holder = spec.holder_identity if spec else None
        record = (holder, spec.renew_time if spec else None, spec.lease_transitions if spec else None)
        if record != self._observed:
            self._observed = record
            self._observed_at = time.monotonic()
        held_by_other = holder not in (None, "", self.identity)
        if held_by_other and time.monotonic() - self._observed_at < settings.duration:
            return False
        transitions = int((spec.lease_transitions if spec else 0) or 0) + (0 if holder == self.identity else 1)
        acquire = spec.acquire_time if spec and holder == self.identity and spec.acquire_time else now
        body = {
            "metadata": {
                "name": settings.name,
                "namespace": settings.namespace,
                "resourceVersion": lease.metadata.resource_version,
            },
            "spec": self._spec(now, acquire=acquire, transitions=transitions),
        }
        try:
            api.replace_namespaced_lease(
                settings.name,
                settings.namespace,
                body,  # type: ignore[arg-type]
                _request_timeout=kube.REQUEST_TIMEOUT,
            )
        except Exception as exc:  # 409: someone else renewed or took it first
            logger.info("updating Lease %s/%s failed: %s", settings.namespace, settings.name, exc)
            return False
        return True

    def _spec(self, now: datetime.datetime, *, acquire: Any, transitions: int) -> dict[str, Any]:
        acquired = acquire if isinstance(acquire, datetime.datetime) else now
        return {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": max(1, round(self.settings.duration)),
            "acquireTime": _micro(acquired),
            "renewTime": _micro(now),
            "leaseTransitions": transitions,
        }

    def acquire(self) -> None:
        """Block until this process leads (a standby waits here)."""
        logger.info(
            "waiting to lead (Lease %s/%s, identity %s)", self.settings.namespace, self.settings.name, self.identity
        )
        while not self.try_acquire_or_renew():
            if self._stopping.wait(self.settings.retry):
                return
        self.leading_since = time.monotonic()
        logger.info("leading (Lease %s, identity %s)", self.where, self.identity)

    def keep(self) -> None:
        """Renew every `retry` seconds; return (leadership lost) when no renewal succeeded for `renew_deadline`."""
        last = time.monotonic()
        while not self._stopping.wait(self.settings.retry):
            if self.try_acquire_or_renew():
                last = time.monotonic()
            elif time.monotonic() - last >= self.settings.renew_deadline:
                logger.error(
                    "lost the Lease %s/%s: could not renew it in %.0fs",
                    self.settings.namespace,
                    self.settings.name,
                    self.settings.renew_deadline,
                )
                return


def release(elector: Elector) -> None:
    """Hand the Lease back on a clean stop (a rollout, a drain), so a standby takes over at its next poll instead
    of waiting for the Lease to expire. Best effort: an expired Lease is taken over anyway."""
    elector.stop()
    api = elector._api()
    try:
        lease: Any = api.read_namespaced_lease(
            elector.settings.name, elector.settings.namespace, _request_timeout=kube.REQUEST_TIMEOUT
        )
        if lease.spec is None or lease.spec.holder_identity != elector.identity:
            return
        body = {
            "metadata": {"resourceVersion": lease.metadata.resource_version},
            "spec": {"holderIdentity": "", "leaseDurationSeconds": 1, "renewTime": _micro(clock.now())},
        }
        api.patch_namespaced_lease(
            elector.settings.name,
            elector.settings.namespace,
            body,
            _request_timeout=kube.REQUEST_TIMEOUT,
        )
        logger.info("released the Lease %s", elector.where)
    except Exception as exc:
        logger.warning("releasing the Lease %s failed: %s", elector.where, exc)


def _micro(moment: datetime.datetime) -> str:
    """metav1.MicroTime: RFC 3339 with exactly six fractional digits."""
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclasses.dataclass(frozen=True)
class WebhookEndpoint:
    """The EndpointSlice of the webhook Service (a Service without a selector, so it reaches the leader only):
    the leader writes its own pod address there once its alert index is warm, and re-asserts it while it leads
    (a `helm upgrade` re-applies the chart's empty slice)."""

    namespace: str
    name: str
    address: str
    port: int

    @classmethod
    def from_env(cls, *, port: int | None) -> WebhookEndpoint | None:
        """From ASSAY_WEBHOOK_ENDPOINTSLICE, POD_IP and ASSAY_LEASE_NAMESPACE / POD_NAMESPACE; None when unset."""
        name, address = os.environ.get("ASSAY_WEBHOOK_ENDPOINTSLICE"), os.environ.get("POD_IP")
        if not name or not address or not port:
            return None
        namespace = os.environ.get("ASSAY_LEASE_NAMESPACE") or os.environ.get("POD_NAMESPACE") or "default"
        return cls(namespace=namespace, name=name, address=address, port=port)

    def wanted(self) -> list[dict[str, Any]]:
        return [{"addresses": [self.address], "conditions": {"ready": True}}]

    def publish(self) -> bool:
        """Point the slice at this pod if it does not already; True when it does afterwards."""
        api = client.DiscoveryV1Api(kube.api_client())
        try:
            current: Any = api.read_namespaced_endpoint_slice(
                self.name, self.namespace, _request_timeout=kube.REQUEST_TIMEOUT
            )
            endpoints = [
                {
                    "addresses": list(e.addresses or []),
                    "conditions": {"ready": bool(e.conditions and e.conditions.ready)},
                }
                for e in current.endpoints or []
            ]
            ports = [(p.name, p.port) for p in current.ports or []]
            if endpoints == self.wanted() and ("http-webhook", self.port) in ports:
                return True
            patch = {
                "endpoints": self.wanted(),
                "ports": [{"name": "http-webhook", "port": self.port, "protocol": "TCP"}],
            }
            api.patch_namespaced_endpoint_slice(self.name, self.namespace, patch, _request_timeout=kube.REQUEST_TIMEOUT)
            logger.info("webhook EndpointSlice %s/%s points at this leader", self.namespace, self.name)
            return True
        except Exception as exc:  # retried on the next renewal
            logger.warning("publishing the webhook endpoint in %s/%s failed: %s", self.namespace, self.name, exc)
            return False
