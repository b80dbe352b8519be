"""Cost and latency per request from evidence records' measured tokens, and savings. Pure."""

from __future__ import annotations

import dataclasses
import importlib.resources
import statistics
from collections.abc import Iterable, Mapping
from typing import Any

import yaml


@dataclasses.dataclass(frozen=True)
class Price:
    """US dollars per million tokens."""

    input_per_million: float
    output_per_million: float

    def cost(self, prompt_tokens: float, completion_tokens: float) -> float:
        return (prompt_tokens * self.input_per_million + completion_tokens * self.output_per_million) / 1e6


def default_prices() -> dict[str, Price]:
    """assay's built-in price table (operator/assay/data/prices.yaml); spec.pricing overrides it."""
    text = importlib.resources.files("assay").joinpath("data/prices.yaml").read_text()
    table = yaml.safe_load(text) or {}
    return {
        model: Price(float(p["inputPerMillion"]), float(p["outputPerMillion"]))
        for model, p in (table.get("models") or {}).items()
    }


def price_table(pricing: Iterable[Any]) -> dict[str, Price]:
    """The built-in table overlaid with a spec's pricing entries (objects with model and per-million prices)."""
    table = default_prices()
    for entry in pricing:
        table[entry.model] = Price(entry.input_per_million, entry.output_per_million)
    return table


def _lookup(table: Mapping[str, Price], model: str) -> Price | None:
    if model in table:
        return table[model]
    # "openai/gpt-4o" and "gpt-4o" name the same model.
    short = model.rsplit("/", 1)[-1]
    return table.get(short)


def _mean(values: list[float]) -> float | None:
    return statistics.fmean(values) if values else None


def per_request(
    records: Iterable[Mapping[str, Any]], *, baseline_model: str, candidate_model: str, prices: Mapping[str, Price]
) -> dict[str, Any]:
    """Mean tokens, cost and median latency per request for each side, over non-control records."""
    tokens: dict[str, list[tuple[float, float]]] = {"baseline": [], "candidate": []}
    latency: dict[str, list[float]] = {"baseline": [], "candidate": []}
    for record in records:
        if record.get("control"):
            continue
        for side in ("baseline", "candidate"):
            used = (record.get("tokens") or {}).get(side)
            if used and used.get("prompt") is not None and used.get("completion") is not None:
                tokens[side].append((float(used["prompt"]), float(used["completion"])))
            ms = (record.get("latency_ms") or {}).get(side)
            if ms is not None:
                latency[side].append(float(ms))
    result: dict[str, Any] = {"tokens": {}, "cost": {}, "latency_ms": {}}
    for side, model in (("baseline", baseline_model), ("candidate", candidate_model)):
        prompt = _mean([t[0] for t in tokens[side]])
        completion = _mean([t[1] for t in tokens[side]])
        result["tokens"][side] = None if prompt is None or completion is None else prompt + completion
        price = _lookup(prices, model)
        result["cost"][side] = (
            None if price is None or prompt is None or completion is None else price.cost(prompt, completion)
        )
        result["latency_ms"][side] = statistics.median(latency[side]) if latency[side] else None
    return result


def savings(baseline_cost: float | None, candidate_cost: float | None) -> tuple[float | None, float | None]:
    """(percent saved, USD saved per 1,000 requests) of the candidate against the baseline."""
    if baseline_cost is None or candidate_cost is None or baseline_cost <= 0:
        return None, None
    return 100 * (baseline_cost - candidate_cost) / baseline_cost, 1000 * (baseline_cost - candidate_cost)
