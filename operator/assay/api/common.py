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


# Admission rules shared by many fields. Each is a list of CEL rules, one message each: the apiserver prefixes
# the field's path, so a message says only what is wrong and what is allowed. Strings carrying them need a
# maxLength (the apiserver's cost estimator refuses unbounded regexes).

# Pieces of the URL rules, as RE2 without backslashes (CEL string escapes stay out of the way). Regexes over the
# string itself, not url(self).getHostname(): the apiserver cannot bound the cost of the latter.
_HOST = "(?i)^[a-z][a-z0-9+.-]*://([^/?#]*@)?"  # up to the host, past any user:password@
_PORT_THEN_PATH = "(:[0-9]*)?([/?#]|$)"
_NUMERIC_HOST = "(0x[0-9a-f]*|[0-9]+)([.](0x[0-9a-f]*|[0-9]*))*"  # what inet_aton reads as an address
_OCTET = "(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4 = f"({_OCTET}[.]){{3}}{_OCTET}"
_BLOCKED_IPV4 = "(169[.]254[.][0-9.]*|0[.]0[.]0[.]0|100[.]100[.]100[.]200|2(2[4-9]|3[0-9])[.][0-9.]*)"
_BLOCKED_IPV6 = "[[](fe[89ab][0-9a-f]*:[0-9a-f:]*|ff[0-9a-f]*:[0-9a-f:]*|[0:]+|fd00:ec2:(0*:)*:?0*254)[]]"

# A URL assay sends requests (and credentials) to. The literal-address part of the egress rule: what can be
# decided from the text alone. Resolved addresses are checked at call time by assay.egress.
URL_RULES: list[JsonDict] = [
    cel("!self.matches('[[:cntrl:] ]')", "must not contain spaces or control characters (CR, LF, tab)"),
    cel(
        "isURL(self) && url(self).getScheme() in ['http', 'https']",
        "must be an absolute http:// or https:// URL, e.g. http://litellm.llm.svc:4000",
    ),
    cel("!isURL(self) || url(self).getHostname() != ''", "must name a host, e.g. http://litellm.llm.svc:4000"),
    cel(
        "!self.matches('^[^:/?#]*://[^/?#]*@')",
        "must not carry credentials (user:password@host): reference a Secret through the SecretKeyRef field",
    ),
    cel(
        f"!self.matches('{_HOST}{_NUMERIC_HOST}{_PORT_THEN_PATH}') || self.matches('{_HOST}{_IPV4}{_PORT_THEN_PATH}')",
        "must spell an IPv4 address as four decimal numbers without leading zeros, e.g. 10.0.0.7",
    ),
    cel(
        f"!self.matches('{_HOST}[[][^]]*[%.]') && !self.matches('{_HOST}[[][0:]*:ffff:')",
        "must spell an IPv6 address plainly, in brackets: no zone (%) and no IPv4-mapped form",
    ),
    cel(
        f"!self.matches('{_HOST}{_BLOCKED_IPV4}{_PORT_THEN_PATH}') && "
        f"!self.matches('{_HOST}{_BLOCKED_IPV6}{_PORT_THEN_PATH}')",
        "must not address a link-local, cloud-metadata, multicast or unspecified IP (169.254.0.0/16, fe80::/10, "
        "fd00:ec2::254, 100.100.100.200, 224.0.0.0/4, ff00::/8, 0.0.0.0, ::)",
    ),
    cel(
        f"!self.matches('{_HOST}(metadata|metadata[.]google[.]internal|metadata[.]goog)[.]?{_PORT_THEN_PATH}')",
        "must not address a cloud metadata service",
    ),
]

# A key of a ConfigMap's or Secret's data, as Kubernetes itself validates it (no '/', so no path).
DATA_KEY_RULES: list[JsonDict] = [
    cel(
        "self.matches('^[-._a-zA-Z0-9]+$') && self != '.' && !self.startsWith('..')",
        "must be a data key: letters, digits, '-', '_' and '.' only (no '/', no spaces), not '.' or '..'",
    )
]

# A model name as a gateway knows it: compared for equality (the judge is not a contestant), so no blank,
# padded or invisible variants of the same name.
MODEL_NAME_RULES: list[JsonDict] = [
    cel(
        "self.matches('^[^[:space:][:cntrl:]]([^[:cntrl:]]*[^[:space:][:cntrl:]])?$')",
        "must not be blank, begin or end with whitespace, or contain control characters",
    )
]


def validations(*rules: list[JsonDict]) -> JsonDict:
    """The `x-kubernetes-validations` extension of a field, from rule lists such as URL_RULES."""
    return {"x-kubernetes-validations": [rule for group in rules for rule in group]}


class SecretKeyRef(ApiModel):
    """A key in a Secret in the same namespace. Secret values never appear in specs, status or logs."""

    name: str = pydantic.Field(description="Name of the Secret.", max_length=253, pattern=DNS_NAME_PATTERN)
    key: str = pydantic.Field(
        description="Key in the Secret's data.",
        min_length=1,
        max_length=253,
        json_schema_extra=validations(DATA_KEY_RULES),
    )


class ConfigMapKeyRef(ApiModel):
    """A key in a ConfigMap in the same namespace."""

    name: str = pydantic.Field(description="Name of the ConfigMap.", max_length=253, pattern=DNS_NAME_PATTERN)
    key: str = pydantic.Field(
        description="Key in the ConfigMap's data.",
        min_length=1,
        max_length=253,
        json_schema_extra=validations(DATA_KEY_RULES),
    )


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
