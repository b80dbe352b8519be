"""Which Secrets, ConfigMaps and route backends a spec depends on, and what is wrong when one is missing. Pure:
the caller looks the objects up and hands in what it found."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Literal

import pydantic

from assay.api import common, qualificationrun, routepolicy
from assay.controllers import manifests

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

    reason: str  # SecretNotFound, SecretKeyNotFound, ConfigMapNotFound, ConfigMapKeyNotFound, RouteNotFound, ...
    message: str


RESOLVED = Problem("ReferencesResolved", "All referenced Secrets, ConfigMaps and route backends exist.")
WEIGHTED_KINDS = ("EnvoyAIGatewayRoute", "HTTPRoute")


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


@dataclasses.dataclass(frozen=True)
class BackendRef:
    """A backendRef a weight gateway's route rule must hold: the baseline's or a candidate's."""

    name: str
    field: str  # e.g. spec.candidates[0].backend (or .model, when the backend defaults to the model)


def backends_of_policy(spec: routepolicy.RoutePolicySpec) -> list[BackendRef]:
    """The backends the policy moves weights between; none unless the gateway splits traffic by weight."""
    if spec.gateway.kind not in WEIGHTED_KINDS:
        return []
    sides = [("spec.baseline", spec.baseline)] + [(f"spec.candidates[{i}]", c) for i, c in enumerate(spec.candidates)]
    return [
        BackendRef(side.backend, f"{where}.backend") if side.backend else BackendRef(side.model, f"{where}.model")
        for where, side in sides
    ]


def check_backends(
    spec: routepolicy.RoutePolicySpec, *, backends_in_route: Callable[[], list[str] | None]
) -> Problem | None:
    """The first backend the route's rule lacks. `backends_in_route()` returns the backendRef names of rule
    spec.gateway.ruleIndex of the route object, or None when the object or that rule does not exist; it is
    called only for weight gateways. Admission cannot see the route object, so this says it at once."""
    wanted = backends_of_policy(spec)
    if not wanted or spec.gateway.route_ref is None:
        return None
    route = f"{spec.gateway.kind} {spec.gateway.route_ref.name!r}"
    rule = spec.gateway.rule_index
    present = backends_in_route()
    if present is None:
        return Problem(
            "RouteNotFound",
            f"{route} (from spec.gateway.routeRef) does not exist or has no rule {rule} (spec.gateway.ruleIndex)",
        )
    for ref in wanted:
        if ref.name not in present:
            return Problem(
                "BackendNotFound",
                f"{route} rules[{rule}] has no backendRef {ref.name!r} (from {ref.field}); it has: "
                + (", ".join(present) or "none")
                + f". Add a backendRef for it (weight 0) or set {ref.field.rsplit('.', 1)[0]}.backend to one of them",
            )
    return None


# Gateway kinds whose adapter applies a candidate's systemPrompt on that candidate's arm when it routes to it
# (LiteLLMConfigMap: a model_list group with litellm_system_prompt). Elsewhere a candidate's prompt is refused
# before anything moves.
PROMPT_KINDS: frozenset[str] = frozenset({"LiteLLMConfigMap"})


def check_servable(spec: routepolicy.RoutePolicySpec) -> Problem | None:
    """The first model arm the gateway could not serve as it is qualified, refused naming the field.

    The evaluation sends each arm's systemPrompt. The baseline is the route as it serves now: a prompt on it
    would be measured but never served (a rollback restores the route as it was, not a prompt), so it is refused
    on every gateway; the app's own messages (in the dataset) carry what the baseline runs under. A candidate's
    prompt is served on its arm by the PROMPT_KINDS adapters; the others route by model only, so a promotion
    would serve the model without the prompt that qualified it."""
    if spec.baseline.system_prompt:
        return Problem(
            "PromptNotServable",
            "spec.baseline.systemPrompt is set, but the baseline is qualified as the route serves it now and no "
            "gateway adapter adds a prompt to the baseline's arm (a rollback restores the route as it was). Remove "
            "it: the dataset's messages carry the app's own system message",
        )
    if spec.gateway.kind in PROMPT_KINDS:
        return None
    for i, candidate in enumerate(spec.candidates):
        if candidate.system_prompt:
            return Problem(
                "PromptNotServable",
                f"spec.candidates[{i}].systemPrompt is set, but the {spec.gateway.kind} gateway adapter cannot "
                f"apply a per-model system prompt: promoting would serve {candidate.model!r} without the prompt it "
                "was qualified with. Remove systemPrompt (qualify the model as the gateway serves it), bake the "
                "prompt into the model group the gateway routes to, or use gateway.kind LiteLLMConfigMap",
            )
    return None


def check_image(image: str, *, allowed: list[str]) -> Problem | None:
    """An evaluator image outside the operator's allow-list (spec.execution.image): the Job would run it with
    the run's API keys, so it is not created."""
    if manifests.image_allowed(image, allowed):
        return None
    return Problem(
        "ImageNotAllowed",
        f"spec.execution.image {image!r} is not an allowed evaluator image (allowed: {', '.join(allowed)}); omit it "
        "to use the operator's own image, or have the operator's admin add it to evaluator.allowedImages",
    )
