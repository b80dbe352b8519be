"""The gateway adapter contract: what every adapter promises, the data it exchanges, and its errors.

An adapter owns a few entries of one gateway route (a LiteLLM alias, or the weights of some backendRefs in
one rule) and nothing else. It reads them, writes them atomically under a guard, and puts a snapshot back
in one write. Everything here is plain data: no Kubernetes and no HTTP.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import hashlib
import json
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar, Protocol

from assay.api import routepolicy

# --- errors -------------------------------------------------------------------------------------------------


class GatewayError(Exception):
    """A gateway operation failed. `reason` is a CamelCase word for conditions and Events; `retryable` says
    whether the same call may succeed later (the operator retries those with backoff)."""

    reason: ClassVar[str] = "GatewayError"
    default_retryable: ClassVar[bool] = False

    def __init__(self, message: str, *, retryable: bool | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = self.default_retryable if retryable is None else retryable


class GatewayUnreachable(GatewayError):
    """The gateway (or the kube-apiserver holding its objects) did not answer, timed out or answered 5xx."""

    reason = "GatewayUnreachable"
    default_retryable = True


class GatewayForbidden(GatewayError):
    """The gateway refused assay's credentials (401/403): fix the key or the RBAC rule the message names."""

    reason = "GatewayForbidden"


class GatewayRejected(GatewayError):
    """The gateway understood the write and refused it; the message carries the gateway's own words."""

    reason = "GatewayRejected"


class SecretNotFound(GatewayError):
    """A Secret or key the gateway spec references does not exist."""

    reason = "SecretNotFound"


class InvalidGatewayConfig(GatewayError):
    """The gateway's configuration cannot be read as expected (bad YAML, wrong shape, duplicate names)."""

    reason = "InvalidGatewayConfig"


class RouteNotFound(GatewayError):
    """The object holding the route, or the route inside it, does not exist."""

    reason = "RouteNotFound"


class ModelGroupNotFound(GatewayError):
    """The model group a LiteLLM alias should point at is not defined in the gateway."""

    reason = "ModelGroupNotFound"


class BackendNotFound(GatewayError):
    """A backend named in a weight split is not among the rule's backendRefs."""

    reason = "BackendNotFound"


class WriteNotApplied(GatewayError):
    """The gateway accepted a write but reading it back does not show it (yet)."""

    reason = "WriteNotApplied"
    default_retryable = True


class GatewayConflict(GatewayError):
    """Someone else wrote the object between assay's read and write (resourceVersion conflict)."""

    reason = "GatewayConflict"
    default_retryable = True


class CanaryNotSupported(GatewayError):
    """The gateway can only switch a route all at once; a partial weight was asked for."""

    reason = "CanaryNotSupported"


class PromptNotServable(GatewayError):
    """The arm carries a system prompt this gateway cannot apply on that arm alone."""

    reason = "PromptNotServable"


class SnapshotMismatch(GatewayError):
    """A snapshot was taken from another gateway kind or object than the one asked to restore it."""

    reason = "SnapshotMismatch"


class RouteChangedExternally(GatewayError):
    """The live route differs from what assay last wrote or read: someone edited it by hand. assay does not
    overwrite it silently; the operator reports it and waits for a human (or re-reads on purpose)."""

    reason = "RouteChangedExternally"

    def __init__(self, message: str, *, live: RouteSnapshot, expected: RouteSnapshot) -> None:
        super().__init__(message)
        self.live = live
        self.expected = expected


# --- data ---------------------------------------------------------------------------------------------------


def _without_nulls(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def fingerprint(entries: Mapping[str, Any]) -> str:
    """A stable hash of the owned entries only: equal entries give equal fingerprints whatever the key order,
    and an edit to anything assay does not own leaves it unchanged. A null entry counts as absent: status
    (a Kubernetes object) cannot tell them apart, and a snapshot read back from status must match the live
    route it was taken from."""
    canonical = json.dumps(_without_nulls(entries), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()[:16]


def prompt_digest(text: str) -> str:
    """The content hash that names a system prompt in config, status and evidence (never the text itself)."""
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclasses.dataclass(frozen=True)
class RouteTarget:
    """Where a write sends the route: all of it to one LiteLLM model group, or a weight split over backends
    (canary steps are successive splits, e.g. {baseline: 90, candidate: 10} then 50/50 then 0/100)."""

    model_group: str | None = None
    weights: Mapping[str, int] | None = None
    # The system prompt the arm was qualified with, applied by the gateway on that arm only (model groups only).
    system_prompt: str | None = None

    def __post_init__(self) -> None:
        if (self.model_group is None) == (self.weights is None):
            raise ValueError("RouteTarget needs exactly one of model_group or weights")
        if self.system_prompt is not None and self.model_group is None:
            raise ValueError("RouteTarget.system_prompt applies to a model group, not a weight split")
        if self.weights is not None:
            if not self.weights:
                raise ValueError("RouteTarget.weights must name at least one backend")
            for backend, weight in self.weights.items():
                if not isinstance(weight, int) or weight < 0 or weight > 1_000_000:
                    raise ValueError(f"RouteTarget.weights[{backend!r}] = {weight!r}: must be an int in [0, 1000000]")
            if sum(self.weights.values()) == 0:
                raise ValueError("RouteTarget.weights are all 0: the route would serve no traffic")

    @classmethod
    def to_model(cls, model_group: str, *, system_prompt: str | None = None) -> RouteTarget:
        return cls(model_group=model_group, system_prompt=system_prompt or None)

    @classmethod
    def split(cls, weights: Mapping[str, int]) -> RouteTarget:
        return cls(weights=dict(weights))

    def describe(self) -> str:
        if self.model_group is not None:
            prompt = f" with system prompt {prompt_digest(self.system_prompt)}" if self.system_prompt else ""
            return f"model group {self.model_group}{prompt}"
        assert self.weights is not None
        return "weights " + ", ".join(f"{name}={weight}" for name, weight in self.weights.items())


@dataclasses.dataclass(frozen=True)
class RouteSnapshot:
    """The owned entries of a route as read (or written), exactly enough to put them back in one write.

    `entries` is JSON-able and adapter-specific; `model` / `weights` are the readable view of it. `version`
    is the object's resourceVersion at the read: used to guard the next write, never persisted.
    """

    kind: str
    location: str
    entries: Mapping[str, Any]
    model: str | None = None
    weights: Mapping[str, int] = dataclasses.field(default_factory=dict)
    version: str | None = dataclasses.field(default=None, compare=False)

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.entries)

    def to_state(
        self, *, candidate: str | None = None, observed_at: datetime.datetime | None = None
    ) -> routepolicy.RouteState:
        """The status form (RoutePolicy status.activeRoute / lastKnownGood)."""
        return routepolicy.RouteState(
            model=self.model,
            candidate=candidate,
            weights=dict(self.weights),
            snapshot={"kind": self.kind, "location": self.location, "entries": json.loads(json.dumps(self.entries))},
            fingerprint=self.fingerprint,
            observed_at=observed_at or datetime.datetime.now(datetime.UTC),
        )

    @classmethod
    def from_state(cls, state: routepolicy.RouteState) -> RouteSnapshot:
        """Rebuild a snapshot from status; raises SnapshotMismatch if status holds no usable snapshot."""
        snapshot = state.snapshot
        if not isinstance(snapshot.get("entries"), dict) or not isinstance(snapshot.get("kind"), str):
            raise SnapshotMismatch(
                "status route state has no adapter snapshot (snapshot.kind / snapshot.entries missing): "
                "it cannot be restored; re-read the gateway route"
            )
        return cls(
            kind=snapshot["kind"],
            location=str(snapshot.get("location", "")),
            entries=snapshot["entries"],
            model=state.model,
            weights=dict(state.weights),
        )


class SecretReader(Protocol):
    """Reads one key of a Secret; raises SecretNotFound when the Secret or the key does not exist."""

    def __call__(self, *, namespace: str, name: str, key: str) -> str: ...


class Gateway(Protocol):
    """One gateway route that assay reads, switches and restores. Calls are synchronous and blocking (the
    operator runs them in a thread); every error is a GatewayError."""

    kind: str
    restarts_gateway: bool  # True when a switch takes effect only after the gateway restarts
    supports_weights: bool  # True when partial weights (canary steps) are possible

    def read(self) -> RouteSnapshot:
        """The live state of the owned entries."""
        ...

    def write(self, target: RouteTarget, *, expected: RouteSnapshot | None) -> RouteSnapshot:
        """Point the route at `target` in one guarded write and return the new state. When `expected` is
        given and the live entries differ from it, raise RouteChangedExternally and write nothing. Writing
        the state the route is already in is a no-op (but still completes any follow-up, e.g. a restart)."""
        ...

    def restore(self, snapshot: RouteSnapshot) -> RouteSnapshot:
        """Put back exactly the snapshot's entries in one write, whatever the live state (rollback wins)."""
        ...

    def describe(self) -> str:
        """A one-line human description: kind, object and route."""
        ...


def check_expected(live: RouteSnapshot, expected: RouteSnapshot | None) -> None:
    """Raise RouteChangedExternally when `expected` is given and the live entries differ from it."""
    if expected is None or live.fingerprint == expected.fingerprint:
        return
    raise RouteChangedExternally(
        f"{live.location} was changed outside assay: expected {_render(expected.entries)} "
        f"({expected.fingerprint}), found {_render(live.entries)} ({live.fingerprint}); "
        "assay will not overwrite it. Restore it by hand or re-read the route to accept the change",
        live=live,
        expected=expected,
    )


def check_same_route(gateway_kind: str, location: str, snapshot: RouteSnapshot) -> None:
    """Raise SnapshotMismatch unless the snapshot was taken from this kind of gateway at this location."""
    if snapshot.kind != gateway_kind or snapshot.location != location:
        raise SnapshotMismatch(
            f"cannot restore a snapshot of {snapshot.kind} {snapshot.location!r} onto {gateway_kind} "
            f"{location!r}: spec.gateway changed since the snapshot was taken"
        )


def _render(entries: Mapping[str, Any]) -> str:
    return json.dumps(entries, sort_keys=True, separators=(",", ":"))


@contextlib.contextmanager
def about(where: str) -> Iterator[None]:
    """Prefix the message of any GatewayError raised inside the block with `where` (the object it is about)."""
    try:
        yield
    except GatewayError as exc:
        exc.message = f"{where}: {exc.message}"
        exc.args = (exc.message,)
        raise
