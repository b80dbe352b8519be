"""Which Secrets and ConfigMaps a spec depends on, and what is wrong when one is missing. Pure: the caller
looks the objects up and hands in what it found."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Literal

import pydantic

from assay.api import common, qualificationrun, routepolicy

Kind = Literal["Secret", "ConfigMap"]


@dataclasses.dataclass(frozen=True)
class Reference:
    """A key of a Secret or ConfigMap that a spec field points at."""

    kind: Kind
    name: str
    key: str
    field: str  # where in the spec, e.g. spec.qualification.endpoint.apiKeySecretRef


@dataclasses.dataclass(frozen=True)
class Problem:
    """A reference that does not resolve, phrased for a condition."""

    reason: str  # SecretNotFound, SecretKeyNotFound, ConfigMapNotFound, ConfigMapKeyNotFound
    message: str


RESOLVED = Problem("ReferencesResolved", "All referenced Secrets and ConfigMaps exist.")


def invalid_spec(exc: pydantic.ValidationError) -> Problem:
    """The first validation error of a spec, naming its field (the CRD schema normally rejects these first)."""
    first = exc.errors()[0]
    return Problem("InvalidSpec", "spec." + ".".join(map(str, first["loc"])) + ": " + first["msg"])


def _collect(*candidates: tuple[Kind, common.SecretKeyRef | common.ConfigMapKeyRef | None, str]) -> list[Reference]:
    return [Reference(kind, ref.name, ref.key, field) for kind, ref, field in candidates if ref is not None]


def of_policy(spec: routepolicy.RoutePolicySpec) -> list[Reference]:
    q = spec.qualification
    return _collect(
        ("Secret", q.endpoint.api_key_secret_ref, "spec.qualification.endpoint.apiKeySecretRef"),
        (
            "Secret",
            q.judge.endpoint.api_key_secret_ref if q.judge.endpoint else None,
            "spec.qualification.judge.endpoint.apiKeySecretRef",
        ),
        ("ConfigMap", q.dataset.config_map_ref, "spec.qualification.dataset.configMapRef"),
        ("ConfigMap", spec.gateway.config_map_ref, "spec.gateway.configMapRef"),
        ("Secret", spec.gateway.master_key_secret_ref, "spec.gateway.masterKeySecretRef"),
    )


def of_run(spec: qualificationrun.QualificationRunSpec) -> list[Reference]:
    return _collect(
        ("Secret", spec.endpoint.api_key_secret_ref, "spec.endpoint.apiKeySecretRef"),
        (
            "Secret",
            spec.judge.endpoint.api_key_secret_ref if spec.judge.endpoint else None,
            "spec.judge.endpoint.apiKeySecretRef",
        ),
        ("ConfigMap", spec.dataset.config_map_ref, "spec.dataset.configMapRef"),
    )


def check(refs: list[Reference], *, keys_of: Callable[[Kind, str], set[str] | None]) -> Problem | None:
    """The first unresolved reference. `keys_of(kind, name)` returns the object's data keys, or None if the
    object does not exist. Only key names are looked at, never values."""
    for ref in refs:
        keys = keys_of(ref.kind, ref.name)
        if keys is None:
            return Problem(f"{ref.kind}NotFound", f"{ref.kind} {ref.name!r} (from {ref.field}) does not exist")
        if ref.key not in keys:
            return Problem(
                f"{ref.kind}KeyNotFound",
                f"{ref.kind} {ref.name!r} has no key {ref.key!r} (from {ref.field}); it has: "
                + (", ".join(sorted(keys)) or "no keys"),
            )
    return None
