"""Pure rewriting of a route rule's backendRefs weights (Gateway API HTTPRoute, Envoy AI Gateway AIGatewayRoute).

The baseline's and the candidates' backendRefs stay in the rule; a switch or a canary step changes only their
`weight` fields. Other backends, and every other field of every ref, are left as they are. A weight that is
not set is recorded as None (both APIs default it to 1), so a snapshot puts back exactly what it found.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from assay.gateways import interface

DEFAULT_WEIGHT = 1  # the default of backendRefs[].weight in both Gateway API and Envoy AI Gateway


def _index(refs: Sequence[Mapping[str, Any]], *, where: str) -> dict[str, int]:
    positions: dict[str, int] = {}
    for position, ref in enumerate(refs):
        name = ref.get("name")
        if not isinstance(name, str):
            raise interface.InvalidGatewayConfig(f"{where}[{position}] has no name")
        if name in positions:
            raise interface.InvalidGatewayConfig(
                f"{where} names backend {name!r} twice (positions {positions[name]} and {position}): assay cannot "
                "tell which one to reweight; give each backend its own name"
            )
        positions[name] = position
    return positions


def backend_weights(
    refs: Sequence[Mapping[str, Any]], names: Iterable[str], *, where: str = "backendRefs"
) -> dict[str, int | None]:
    """The exact weights of the named backends that are present in `refs` (None when unset), by name."""
    positions = _index(refs, where=where)
    found: dict[str, int | None] = {}
    for name in names:
        if name in positions:
            weight = refs[positions[name]].get("weight")
            found[name] = None if weight is None else int(weight)
    return found


def effective(weights: Mapping[str, int | None]) -> dict[str, int]:
    """The weights as the gateway applies them (unset means the default of 1)."""
    return {name: DEFAULT_WEIGHT if weight is None else weight for name, weight in weights.items()}


def set_weights(
    refs: Sequence[Mapping[str, Any]], weights: Mapping[str, int | None], *, where: str = "backendRefs"
) -> list[dict[str, Any]]:
    """A copy of `refs` with the named backends' weights set (None unsets the field); other refs and fields
    are unchanged. Raises BackendNotFound when a named backend is not in `refs`."""
    positions = _index(refs, where=where)
    missing = [name for name in weights if name not in positions]
    if missing:
        present = ", ".join(positions) or "none"
        raise interface.BackendNotFound(
            f"{where} has no backend named {', '.join(repr(m) for m in missing)} (present: {present}); add a "
            "backendRef for it (weight 0) or set spec.baseline/candidates[].backend to the backendRef's name"
        )
    rewritten = [copy.deepcopy(dict(ref)) for ref in refs]
    for name, weight in weights.items():
        ref = rewritten[positions[name]]
        if weight is None:
            ref.pop("weight", None)
        else:
            ref["weight"] = weight
    return rewritten
