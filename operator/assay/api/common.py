"""Types shared by both kinds: references, conditions, the base model and its CRD hints."""

from __future__ import annotations

import datetime
from typing import Any, Literal

import pydantic
from pydantic import alias_generators
from pydantic.config import JsonDict

# metav1.Condition's reason pattern, checked by the apiserver for built-in types and by our CRD schema.
CONDITION_REASON_PATTERN = r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"
DNS_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"


class ApiModel(pydantic.BaseModel):
    """Base of every API type: camelCase on the wire, snake_case in Python.

    Unknown fields are ignored when parsing objects read from the cluster (the apiserver already pruned
    what the CRD does not declare; a newer CRD may carry fields this operator does not know yet).
    """

    model_config = pydantic.ConfigDict(
        alias_generator=alias_generators.to_camel,
        populate_by_name=True,
        extra="ignore",
        use_enum_values=True,
    )

    def to_wire(self) -> dict[str, Any]:
        """The JSON form as the apiserver stores it: camelCase, no unset optional fields."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


def cel(rule: str, message: str, *, field_path: str | None = None, reason: str | None = None) -> JsonDict:
    """One `x-kubernetes-validations` entry (a CEL rule the apiserver checks at admission)."""
    entry: JsonDict = {"rule": rule, "message": message}
    if field_path:
        entry["fieldPath"] = field_path
    if reason:
        entry["reason"] = reason
    return entry


def nested(model: type[pydantic.BaseModel], description: str) -> Any:
    """A sub-object that defaults to its own defaults, in pydantic and in the CRD.

    The CRD default is the fully expanded object (not `{}`): the apiserver checks CEL rules against the
    default as written, before nested defaults would fill it in.
    """
    expanded = model().model_dump(by_alias=True, exclude_none=True, mode="json")
    return pydantic.Field(default_factory=model, description=description, json_schema_extra={"default": expanded})


def list_map(*keys: str) -> dict[str, Any]:
    """CRD hint: a list of named objects merged by key (server-side apply, strategic merge)."""
    return {"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": list(keys)}


class SecretKeyRef(ApiModel):
    """A key in a Secret in the same namespace. Secret values never appear in specs, status or logs."""

    name: str = pydantic.Field(description="Name of the Secret.", max_length=253, pattern=DNS_NAME_PATTERN)
    key: str = pydantic.Field(description="Key in the Secret's data.", min_length=1, max_length=253)


class ConfigMapKeyRef(ApiModel):
    """A key in a ConfigMap in the same namespace."""

    name: str = pydantic.Field(description="Name of the ConfigMap.", max_length=253, pattern=DNS_NAME_PATTERN)
    key: str = pydantic.Field(description="Key in the ConfigMap's data.", min_length=1, max_length=253)


class LocalObjectRef(ApiModel):
    """A reference to an object by name in the same namespace."""

    name: str = pydantic.Field(description="Name of the object.", max_length=253, pattern=DNS_NAME_PATTERN)


ConditionStatus = Literal["True", "False", "Unknown"]


class Condition(ApiModel):
    """The metav1.Condition shape: one aspect of the object's state, with why and since when."""

    type: str = pydantic.Field(description="Type of condition in CamelCase, e.g. Ready.", max_length=316)
    status: ConditionStatus = pydantic.Field(description="True, False or Unknown.")
    observed_generation: int | None = pydantic.Field(
        default=None, ge=0, description="The .metadata.generation the condition was set from."
    )
    last_transition_time: datetime.datetime = pydantic.Field(
        description="When the condition last changed status (RFC 3339)."
    )
    reason: str = pydantic.Field(
        description="A programmatic CamelCase reason for the last transition.",
        min_length=1,
        max_length=1024,
        pattern=CONDITION_REASON_PATTERN,
    )
    message: str = pydantic.Field(
        default="", max_length=32768, description="A human readable message about the transition."
    )
